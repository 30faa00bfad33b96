"""The REFERENCE RECEIVING SYSTEM: a stand-in for the court's own systems.

This is not part of the engine.  It plays, for the demo and the tests, the
systems that carry actions out (case management, service, inquiry and
control, credit, case money): it receives the engine's signed webhook
requests, verifies them, deduplicates them by idempotency key, dockets
filings under case numbers such as ``(2026)京0105执1234号`` and replies as
``docs/receiving-systems.md`` requires.  It uses only what any receiving
system may use: the published contract, the action catalogue
(``contracts_lib.actions``) and the copyable ``verify_webhook`` check.

Run it with ``python -m engine.runtime.receiver --port 8089 --public-key PATH``.
"""

from engine.runtime.receiver.docket import Docket, Outcome, Refused
from engine.runtime.receiver.server import ReferenceReceiver

__all__ = ["Docket", "Outcome", "ReferenceReceiver", "Refused"]
