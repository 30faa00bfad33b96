"""The access policy, declared once: which roles may call which operation.

Every route names its operation (its OpenAPI ``operationId``) and asks
:data:`POLICY` whether the caller's roles allow it; the authorisation matrix
test reads the same table and checks it against real HTTP answers.  Beyond the
role, some operations look at the object (see :mod:`engine.api.auth`):

- court staff (rule authors excepted) act only on instances of their own
  court (a principal without a court, the service administrator, on all);
- a **party** reads only instances whose parties name its party id;
- a **mediation centre** reads and submits events only for its own cases
  (instances naming it among their parties) of a mediation contract
  (``mediation_contracts`` in the configuration);
- a **bank** submits only payment and property reports (``bank_events``).

Roles: ``rule_author`` (writes and compiles rule sets), ``reviewer`` (signs
off and deploys them), ``clerk``, ``judge``, ``enforcement_officer`` (court
staff), ``mediation_centre`` and ``bank`` (external organisations),
``party`` (an applicant, respondent or their lawyer), ``admin`` (the
service's operators: metrics, migrations, incidents).
"""

from __future__ import annotations

__all__ = ["COURT_STAFF", "ORG_ROLES", "POLICY", "PUBLIC", "ROLES", "allowed"]

ROLES = ("rule_author", "reviewer", "clerk", "judge", "enforcement_officer",
         "mediation_centre", "bank", "party", "admin")
ORG_ROLES = frozenset({"mediation_centre", "bank"})
COURT_STAFF = frozenset({"clerk", "judge", "enforcement_officer"})
PUBLIC: frozenset[str] = frozenset({"*"})

_STAFF = COURT_STAFF
_READERS = _STAFF | {"party", "mediation_centre", "admin"}

#: operation id -> the roles that may call it (PUBLIC: no authentication at all)
POLICY: dict[str, frozenset[str]] = {
    # operations
    "health": PUBLIC,
    "metrics": frozenset({"admin"}),
    "whoami": frozenset(ROLES),
    "sandbox_advance_clock": frozenset({"admin", "clerk", "judge"}),
    # contracts
    "compile_rule_set": frozenset({"rule_author", "reviewer"}),
    "deploy_rule_set": frozenset({"reviewer"}),
    "list_contract_versions": frozenset({"rule_author", "reviewer", "admin"} | _STAFF),
    "get_contract_version": frozenset({"rule_author", "reviewer", "admin"} | _STAFF),
    # instances
    "create_instance": frozenset({"clerk", "judge"}),
    "get_instance": _READERS,
    "get_deadlines": _READERS,
    "get_instance_approvals": _READERS,
    "get_timeline": _READERS,
    "migrate_instance": frozenset({"judge", "admin"}),
    "recalendar_instance": frozenset({"judge", "admin"}),
    # events
    "submit_event": _STAFF | {"mediation_centre", "bank"},
    # actions and approvals
    "list_outbox": _STAFF | {"admin"},
    "list_incidents": _STAFF | {"admin"},
    "retry_incident": frozenset({"clerk", "enforcement_officer", "admin"}),
    "resolve_incident": frozenset({"clerk", "enforcement_officer", "admin"}),
    "list_pending_approvals": _STAFF,
    "confirm_approval": frozenset({"judge", "enforcement_officer"}),
    "reject_approval": frozenset({"judge", "enforcement_officer"}),
    # the ledger: public, so anyone holding a record can check it
    "ledger_checkpoint": PUBLIC,
    "ledger_keys": PUBLIC,
    "ledger_receipt": PUBLIC,
    "ledger_inclusion_proof": PUBLIC,
    "ledger_consistency_proof": PUBLIC,
    "witness_add_checkpoint_request": PUBLIC,
    "witness_submit_cosignature": PUBLIC,
}


def allowed(operation: str, roles: frozenset[str] | set[str]) -> bool:
    """True when any of ``roles`` may call ``operation`` (public operations: always)."""
    permitted = POLICY[operation]
    return permitted is PUBLIC or bool(permitted & roles)
