"""The tamper-evident ledger's tables, and outbox.ledger_index.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Until this revision the engine created the ledger's tables itself at start-up
(``ledger_adapter.sql.create_tables``).  A store that already has them (made
by that start-up path, with the very same definitions) keeps them and its
log; a store without them gets them here.  Types are spelled out rather than
imported, so later changes to ``ledger_adapter.sql`` cannot change what this
revision does.

``outbox.ledger_index`` is the index of the newest ``delivery`` record of the
row (nullable: no outcome yet, or no ledger configured).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_LEDGER = ("ledger_head", "ledger_entries", "ledger_tiles", "ledger_checkpoints", "ledger_keys")


def _instant(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _create(name: str, have: set[str], *columns: sa.Column[object]) -> None:
    if name not in have:
        op.create_table(name, *columns)


def upgrade() -> None:
    have = set(sa.inspect(op.get_bind()).get_table_names())
    _create("ledger_head", have,
            sa.Column("id", sa.SmallInteger(), primary_key=True, autoincrement=False),
            sa.Column("origin", sa.String(300), nullable=False),
            sa.Column("size", sa.BigInteger(), nullable=False),
            sa.Column("root", sa.LargeBinary(32), nullable=False),
            sa.Column("key_id", sa.String(8), nullable=False))
    _create("ledger_entries", have,
            sa.Column("idx", _ID, primary_key=True, autoincrement=False),
            sa.Column("kind", sa.String(20), nullable=False),
            sa.Column("instance_id", sa.String(200), nullable=True),
            sa.Column("record", sa.LargeBinary(), nullable=False),
            sa.Column("salt", sa.LargeBinary(32), nullable=False),
            sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
            _instant("created_at"))
    _create("ledger_tiles", have,
            sa.Column("level", sa.SmallInteger(), primary_key=True, autoincrement=False),
            sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
            sa.Column("width", sa.SmallInteger(), nullable=False),
            sa.Column("hashes", sa.LargeBinary(), nullable=False),
            sa.Column("nodes", sa.LargeBinary(), nullable=False))
    _create("ledger_checkpoints", have,
            sa.Column("size", _ID, primary_key=True, autoincrement=False),
            sa.Column("root", sa.LargeBinary(32), nullable=False),
            sa.Column("note", sa.Text(), nullable=False),
            sa.Column("cosignatures", sa.Text(), nullable=False),
            _instant("created_at"))
    _create("ledger_keys", have,
            sa.Column("key_id", sa.String(8), primary_key=True),
            sa.Column("name", sa.String(300), nullable=False),
            sa.Column("public_key", sa.LargeBinary(32), nullable=False),
            sa.Column("valid_from", sa.BigInteger(), nullable=False),
            sa.Column("valid_to", sa.BigInteger(), nullable=True),
            sa.Column("retired", sa.Boolean(), nullable=False),
            _instant("created_at"))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("ledger_index", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("ledger_index")
    for name in reversed(_LEDGER):
        op.drop_table(name)
