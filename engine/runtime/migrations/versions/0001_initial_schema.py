"""The runtime schema as first released (engine/runtime/models.py at 988eede).

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Types are spelled out here rather than imported from models.py, so later
changes to the models cannot change what this revision does.  Instants are
``DateTime(timezone=True)`` (``TIMESTAMP WITH TIME ZONE`` on PostgreSQL; on
SQLite the models store UTC without a zone).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_HASH = sa.String(64)


def _utc(name: str, nullable: bool = False) -> sa.Column[dt.datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "contract_versions",
        sa.Column("id", _HASH, primary_key=True),
        sa.Column("ruleset_id", _HASH, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("ir", sa.Text(), nullable=False),
        sa.Column("ruleset_ir", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("deploy_seq", sa.Integer(), nullable=False),
        _utc("deployed_at"),
        sa.Column("deployed_by", sa.String(200), nullable=False),
        sa.Column("report_hash", _HASH, nullable=True),
    )
    op.create_index("ix_contract_versions_deploy_seq", "contract_versions", ["deploy_seq"])
    op.create_index("ix_contract_versions_name", "contract_versions", ["name"])
    op.create_index("ix_contract_versions_ruleset_id", "contract_versions", ["ruleset_id"])

    op.create_table(
        "instances",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("contract_name", sa.String(200), nullable=False),
        sa.Column("contract_id", _HASH, sa.ForeignKey("contract_versions.id"), nullable=False),
        sa.Column("calendar_version", sa.String(100), nullable=False),
        sa.Column("state", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("state_hash", _HASH, nullable=False),
        sa.Column("court", sa.String(100), nullable=True),
        sa.Column("parties", sa.Text(), nullable=False),
        _utc("created_at"),
        _utc("updated_at"),
    )
    op.create_index("ix_instances_contract_id", "instances", ["contract_id"])
    op.create_index("ix_instances_contract_name", "instances", ["contract_name"])

    op.create_table(
        "approvals",
        sa.Column("id", sa.String(300), primary_key=True),
        sa.Column("instance_id", sa.String(200), sa.ForeignKey("instances.id"), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("args", sa.Text(), nullable=False),
        sa.Column("role", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        _utc("requested_at"),
        _utc("due_at"),
        sa.Column("decided_by", sa.String(200), nullable=True),
        _utc("decided_at", nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_approvals_instance_id", "approvals", ["instance_id"])
    op.create_index("ix_approvals_status", "approvals", ["status"])

    op.create_table(
        "inputs",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("instance_id", sa.String(200), sa.ForeignKey("instances.id"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("state_hash", _HASH, nullable=False),
        _utc("at"),
        _utc("recorded_at"),
        sa.UniqueConstraint("instance_id", "idempotency_key", name="uq_inputs_key"),
        sa.UniqueConstraint("instance_id", "seq", name="uq_inputs_instance_seq"),
    )
    op.create_index("ix_inputs_instance_id", "inputs", ["instance_id"])

    op.create_table(
        "migrations",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("instance_id", sa.String(200), sa.ForeignKey("instances.id"), nullable=False),
        sa.Column("from_contract", _HASH, nullable=False),
        sa.Column("to_contract", _HASH, nullable=False),
        sa.Column("by", sa.String(200), nullable=False),
        _utc("at"),
        sa.Column("timers", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_migrations_instance_id", "migrations", ["instance_id"])

    op.create_table(
        "outbox",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(300), nullable=False, unique=True),
        sa.Column("instance_id", sa.String(200), sa.ForeignKey("instances.id"), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("args", sa.Text(), nullable=False),
        sa.Column("cite", sa.Text(), nullable=True),
        sa.Column("rule_span", sa.String(300), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _utc("next_attempt_at"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("receipt", sa.Text(), nullable=True),
        _utc("created_at"),
        _utc("delivered_at", nullable=True),
    )
    op.create_index("ix_outbox_instance_id", "outbox", ["instance_id"])
    op.create_index("ix_outbox_pending", "outbox", ["status", "next_attempt_at"])

    op.create_table(
        "timers",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("instance_id", sa.String(200), sa.ForeignKey("instances.id"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        _utc("due_at"),
        sa.Column("status", sa.String(20), nullable=False),
        _utc("fired_at", nullable=True),
        sa.Column("late_seconds", sa.Integer(), nullable=True),
    )
    op.create_index("ix_timers_instance_id", "timers", ["instance_id"])
    op.create_index("ix_timers_pending_due", "timers", ["status", "due_at"])

    op.create_table(
        "incidents",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("instance_id", sa.String(200), nullable=True),
        sa.Column("outbox_id", _ID, sa.ForeignKey("outbox.id"), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        _utc("created_at"),
        sa.Column("resolved_by", sa.String(200), nullable=True),
        _utc("resolved_at", nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
    )
    op.create_index("ix_incidents_instance_id", "incidents", ["instance_id"])
    op.create_index("ix_incidents_status", "incidents", ["status"])


def downgrade() -> None:
    for table in ("incidents", "timers", "outbox", "migrations", "inputs", "approvals",
                  "instances", "contract_versions"):
        op.drop_table(table)
