"""contract_versions: the test report a deployment passed, and who reviewed it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

``report_hash`` (from 0001) is the SHA-256 of the canonical test report; this
adds the report itself (``test_report``, canonical JSON), the reviewer who
approved the deployment (``reviewed_by``) and the ledger index of the
``admin``/``test_report`` record that logged both.  All nullable: versions
deployed before the gate, or by a service without one, have none.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contract_versions") as batch:
        batch.add_column(sa.Column("test_report", sa.Text(), nullable=True))
        batch.add_column(sa.Column("reviewed_by", sa.String(200), nullable=True))
        batch.add_column(sa.Column("report_ledger_index", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contract_versions") as batch:
        batch.drop_column("report_ledger_index")
        batch.drop_column("reviewed_by")
        batch.drop_column("test_report")
