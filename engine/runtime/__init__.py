"""The durable runtime: store, scheduler, dispatcher (see docs/architecture.md)."""
