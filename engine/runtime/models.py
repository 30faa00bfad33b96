"""The durable store: SQLAlchemy 2 models (schema owned by Alembic migrations).

One schema for SQLite (the embedded default, WAL) and PostgreSQL (production).
Instants are stored as timezone-aware UTC; JSON documents are stored as text
in their canonical encoding so what is hashed is exactly what is stored.

Tables
------
contract_versions  deployed contracts (IR by hash), newest per name wins for new instances
instances          one per case obligation, pinned to a contract version
inputs             append-only input log (replay source), idempotency keys unique
timers             armed deadlines and approval timeouts, due instant indexed
outbox             actions to deliver exactly once (key = idempotency key)
approvals          actions waiting for a named role's confirmation
incidents          what needs a person (failed deliveries, faulting deadlines)
migrations         instance moves between contract versions, with who/when/how
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "T_APPROVALS",
    "T_COURTS",
    "T_INCIDENTS",
    "T_INPUTS",
    "T_INSTANCES",
    "T_KEYS",
    "T_MIGRATIONS",
    "T_ORG_KEYS",
    "T_OUTBOX",
    "T_PRINCIPALS",
    "T_ROLES",
    "T_SIGNATURES",
    "T_TIMERS",
    "T_VERSIONS",
    "ApiKey",
    "Approval",
    "Base",
    "ContractVersion",
    "Court",
    "EventSignature",
    "Incident",
    "InputLog",
    "Instance",
    "Migration",
    "OrgKey",
    "Outbox",
    "Principal",
    "PrincipalRole",
    "TimerRow",
    "UTCDateTime",
]

_ID = String(200)
_HASH = String(64)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC instant on every backend (SQLite keeps no zone: store UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use UTC instants")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None,
                             dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


_UTC = UTCDateTime()


class Base(DeclarativeBase):
    pass


class ContractVersion(Base):
    __tablename__ = "contract_versions"

    id: Mapped[str] = mapped_column(_HASH, primary_key=True)  # contract id (sha256)
    ruleset_id: Mapped[str] = mapped_column(_HASH, index=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(Text)
    ir: Mapped[str] = mapped_column(Text)  # the contract's canonical IR JSON
    ruleset_ir: Mapped[str] = mapped_column(Text)  # the whole rule set's canonical IR
    source: Mapped[str] = mapped_column(Text)
    deploy_seq: Mapped[int] = mapped_column(Integer, index=True)
    deployed_at: Mapped[dt.datetime] = mapped_column(_UTC)
    deployed_by: Mapped[str] = mapped_column(String(200))
    report_hash: Mapped[str | None] = mapped_column(_HASH, nullable=True)
    #: the passing test report (canonical JSON) and the reviewer (migration 0005)
    test_report: Mapped[str | None] = mapped_column(Text, nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    report_ledger_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Instance(Base):
    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    contract_name: Mapped[str] = mapped_column(String(200), index=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("contract_versions.id"), index=True)
    calendar_version: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(200))  # current state name
    status: Mapped[str] = mapped_column(String(20), default="active")  # active|ended|faulted
    seq: Mapped[int] = mapped_column(Integer)
    document: Mapped[str] = mapped_column(Text)  # canonical jrule-state/1 JSON
    state_hash: Mapped[str] = mapped_column(_HASH)
    court: Mapped[str | None] = mapped_column(String(100), nullable=True)
    parties: Mapped[str] = mapped_column(Text, default="{}")  # JSON {role: party id}
    created_at: Mapped[dt.datetime] = mapped_column(_UTC)
    updated_at: Mapped[dt.datetime] = mapped_column(_UTC)


class InputLog(Base):
    __tablename__ = "inputs"
    __table_args__ = (
        UniqueConstraint("instance_id", "seq", name="uq_inputs_instance_seq"),
        UniqueConstraint("instance_id", "idempotency_key", name="uq_inputs_key"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))  # create|event|tick|decision|migrate|recalendar
    body: Mapped[str] = mapped_column(Text)  # canonical input JSON (engine.state.input_to_json)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    result: Mapped[str] = mapped_column(Text)  # JSON response returned for this input
    state_hash: Mapped[str] = mapped_column(_HASH)  # state after applying it
    at: Mapped[dt.datetime] = mapped_column(_UTC)  # the input's instant (legal time)
    recorded_at: Mapped[dt.datetime] = mapped_column(_UTC)  # wall clock when stored
    #: index of its ``transition`` record in the ledger (None: no ledger configured)
    ledger_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class TimerRow(Base):
    __tablename__ = "timers"
    __table_args__ = (Index("ix_timers_pending_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # deadline|approval
    name: Mapped[str] = mapped_column(String(200))  # deadline name or approval id
    due_at: Mapped[dt.datetime] = mapped_column(_UTC)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|fired|cancelled
    fired_at: Mapped[dt.datetime | None] = mapped_column(_UTC, nullable=True)
    late_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Outbox(Base):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)  # idempotency key
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"), index=True)
    action: Mapped[str] = mapped_column(String(100))
    args: Mapped[str] = mapped_column(Text)  # canonical JSON object
    cite: Mapped[str | None] = mapped_column(Text, nullable=True)
    rule_span: Mapped[str] = mapped_column(String(300))
    # pending | delivering | delivered | incident
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(_UTC)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    receipt: Mapped[str | None] = mapped_column(Text, nullable=True)  # receiver's JSON reply
    created_at: Mapped[dt.datetime] = mapped_column(_UTC)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(_UTC, nullable=True)
    #: index of its newest ``delivery`` record in the ledger (None: no outcome logged)
    ledger_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Approval(Base):
    __tablename__ = "approvals"

    id: Mapped[str] = mapped_column(String(300), primary_key=True)  # engine approval id
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"), index=True)
    action: Mapped[str] = mapped_column(String(100))
    args: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(200))
    # pending | approved | rejected | timeout | lapsed
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    requested_at: Mapped[dt.datetime] = mapped_column(_UTC)
    due_at: Mapped[dt.datetime] = mapped_column(_UTC)
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(_UTC, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Incident(Base):
    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))  # delivery_failed|deadline_fault|...
    instance_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"), nullable=True)
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)  # open|resolved
    created_at: Mapped[dt.datetime] = mapped_column(_UTC)
    resolved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(_UTC, nullable=True)
    resolution: Mapped[str | None] = mapped_column(Text, nullable=True)  # retried|resolved+note


class Migration(Base):
    __tablename__ = "migrations"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"), index=True)
    from_contract: Mapped[str] = mapped_column(_HASH)
    to_contract: Mapped[str] = mapped_column(_HASH)
    by: Mapped[str] = mapped_column(String(200))
    at: Mapped[dt.datetime] = mapped_column(_UTC)
    timers: Mapped[str] = mapped_column(Text)  # JSON: how each running timer was carried over
    active: Mapped[bool] = mapped_column(Boolean, default=True)


# --- access control of the HTTP service (engine/api; migration 0004) -------------------


class Court(Base):
    __tablename__ = "courts"

    code: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(_UTC)


class Principal(Base):
    """A user (court staff, a party) or an external organisation (mediation centre, bank)."""

    __tablename__ = "principals"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # user|org
    court: Mapped[str | None] = mapped_column(ForeignKey("courts.code"), nullable=True)
    party_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(_UTC)


class PrincipalRole(Base):
    __tablename__ = "principal_roles"

    principal: Mapped[str] = mapped_column(ForeignKey("principals.name"), primary_key=True)
    role: Mapped[str] = mapped_column(String(40), primary_key=True)
    granted_at: Mapped[dt.datetime] = mapped_column(_UTC)
    granted_by: Mapped[str] = mapped_column(String(200))


class ApiKey(Base):
    """An API key: its public id and the SHA-256 of its secret (the secret is never stored)."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    principal: Mapped[str] = mapped_column(ForeignKey("principals.name"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(_UTC)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(_UTC, nullable=True)


class OrgKey(Base):
    """An external organisation's registered Ed25519 public key (base64, 32 bytes)."""

    __tablename__ = "org_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    principal: Mapped[str] = mapped_column(ForeignKey("principals.name"))
    public_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(_UTC)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(_UTC, nullable=True)


class EventSignature(Base):
    """A signed event: the organisation's signature, kept with its input-log row."""

    __tablename__ = "event_signatures"
    __table_args__ = (UniqueConstraint("instance_id", "seq", name="uq_event_signatures_input"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(String(200))
    seq: Mapped[int] = mapped_column(Integer)
    principal: Mapped[str] = mapped_column(String(200))
    key_id: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)  # the signed text (jrule-event/1)
    signature: Mapped[str] = mapped_column(String(100))  # base64
    ledger_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(_UTC)


# Core handles of the tables, for SQLAlchemy Core statements (one place for every module).
T_VERSIONS: Table = ContractVersion.__table__  # type: ignore[assignment]
T_INSTANCES: Table = Instance.__table__  # type: ignore[assignment]
T_INPUTS: Table = InputLog.__table__  # type: ignore[assignment]
T_TIMERS: Table = TimerRow.__table__  # type: ignore[assignment]
T_OUTBOX: Table = Outbox.__table__  # type: ignore[assignment]
T_APPROVALS: Table = Approval.__table__  # type: ignore[assignment]
T_INCIDENTS: Table = Incident.__table__  # type: ignore[assignment]
T_MIGRATIONS: Table = Migration.__table__  # type: ignore[assignment]
T_COURTS: Table = Court.__table__  # type: ignore[assignment]
T_PRINCIPALS: Table = Principal.__table__  # type: ignore[assignment]
T_ROLES: Table = PrincipalRole.__table__  # type: ignore[assignment]
T_KEYS: Table = ApiKey.__table__  # type: ignore[assignment]
T_ORG_KEYS: Table = OrgKey.__table__  # type: ignore[assignment]
T_SIGNATURES: Table = EventSignature.__table__  # type: ignore[assignment]
