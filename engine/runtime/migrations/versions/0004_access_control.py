"""Access control for the HTTP service: courts, principals, roles, API keys, org keys.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

``courts``            the courts an engine serves (code, name)
``principals``        users and external organisations (name, kind, court, party id)
``principal_roles``   the roles a principal holds (rule_author, reviewer, clerk, ...)
``api_keys``          API keys: key id and the SHA-256 of the secret (never the secret)
``org_keys``          external organisations' Ed25519 public keys (event signatures)
``event_signatures``  signed events: the signature kept with the input-log row and the
                      ledger index of the ``signed_event`` record that carries it
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _utc(name: str, nullable: bool = False) -> sa.Column[dt.datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "courts",
        sa.Column("code", sa.String(100), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        _utc("created_at"),
    )
    op.create_table(
        "principals",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("court", sa.String(100), sa.ForeignKey("courts.code"), nullable=True),
        sa.Column("party_id", sa.String(200), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        _utc("created_at"),
    )
    op.create_table(
        "principal_roles",
        sa.Column("principal", sa.String(200), sa.ForeignKey("principals.name"),
                  primary_key=True),
        sa.Column("role", sa.String(40), primary_key=True),
        _utc("granted_at"),
        sa.Column("granted_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("principal", sa.String(200), sa.ForeignKey("principals.name"),
                  nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        _utc("created_at"),
        _utc("revoked_at", nullable=True),
    )
    op.create_index("ix_api_keys_principal", "api_keys", ["principal"])
    op.create_table(
        "org_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("principal", sa.String(200), sa.ForeignKey("principals.name"),
                  nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        _utc("created_at"),
        _utc("revoked_at", nullable=True),
    )
    op.create_table(
        "event_signatures",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("instance_id", sa.String(200), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(100), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=True),
        _utc("created_at"),
        sa.UniqueConstraint("instance_id", "seq", name="uq_event_signatures_input"),
    )


def downgrade() -> None:
    for table in ("event_signatures", "org_keys", "api_keys", "principal_roles", "principals",
                  "courts"):
        op.drop_table(table)
