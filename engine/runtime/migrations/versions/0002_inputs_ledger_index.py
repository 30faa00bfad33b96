"""inputs.ledger_index: the input's transition record in the tamper-evident ledger.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Nullable: stores run without a ledger, and rows logged before it was
configured have no entry.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inputs") as batch:
        batch.add_column(sa.Column("ledger_index", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inputs") as batch:
        batch.drop_column("ledger_index")
