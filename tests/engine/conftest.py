"""Fixtures of the durable-runtime tests (defined in runtime_support.py)."""

from runtime_support import store_url, svc, vclock

__all__ = ["store_url", "svc", "vclock"]
