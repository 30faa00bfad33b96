"""Deterministic contract engine (see issue: engine)."""

__all__: list[str] = []
