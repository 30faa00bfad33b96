"""Tamper-evident ledger adapter (see issue: ledger)."""

__all__: list[str] = []
