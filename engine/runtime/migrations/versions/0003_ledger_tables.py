"""The tamper-evident ledger's tables, and outbox.ledger_index.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Until this revision the engine created the ledger's tables itself at start-up
(``ledger_adapter.sql.create_tables``).  A store that already has them (made
by that start-up path) keeps them and its log; a store without them gets them
here.  ``ledger_entries`` now holds runs of entries (up to 256 per row, see
``ledger_adapter.sql.pack_runs``) instead of one row per entry: a log made by
the start-up path is copied into runs (a gap or a change of ``created_at``
starts a new run).  Types are spelled out rather than
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
    old_layout = "ledger_entries" in have and "kind" in {
        c["name"] for c in sa.inspect(op.get_bind()).get_columns("ledger_entries")}
    if old_layout:
        op.rename_table("ledger_entries", "ledger_entries_0002")
        have.discard("ledger_entries")
    _create("ledger_entries", have,
            sa.Column("idx", _ID, primary_key=True, autoincrement=False),
            sa.Column("width", sa.SmallInteger(), nullable=False),
            sa.Column("records", sa.LargeBinary(), nullable=False),
            sa.Column("lengths", sa.LargeBinary(), nullable=False),
            sa.Column("salts", sa.LargeBinary(), nullable=False),
            sa.Column("leaf_hashes", sa.LargeBinary(), nullable=False),
            _instant("created_at"))
    if old_layout:
        _entries_to_runs()
        op.drop_table("ledger_entries_0002")
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


def _entries_to_runs(chunk: int = 10_000) -> None:
    """Copy the start-up path's one-row-per-entry ``ledger_entries`` into runs.

    A run never crosses a multiple of 256 entries, and holds entries of one
    ``created_at`` (one append).  Read and written a chunk at a time.
    """
    conn = op.get_bind()
    old = sa.table("ledger_entries_0002", sa.column("idx"), sa.column("record"),
                   sa.column("salt"), sa.column("leaf_hash"),
                   sa.column("created_at", sa.DateTime(timezone=True)))
    new = sa.table("ledger_entries", sa.column("idx"), sa.column("width"),
                   sa.column("records"), sa.column("lengths"), sa.column("salts"),
                   sa.column("leaf_hashes"), sa.column("created_at", sa.DateTime(timezone=True)))
    run: list[tuple[int, bytes, bytes, bytes, object]] = []
    after = -1

    def flush() -> None:
        if run:
            conn.execute(new.insert().values(
                idx=run[0][0], width=len(run), records=b"".join(r[1] for r in run),
                lengths=b"".join(len(r[1]).to_bytes(2, "big") for r in run),
                salts=b"".join(r[2] for r in run), leaf_hashes=b"".join(r[3] for r in run),
                created_at=run[0][4]))
            run.clear()

    while True:
        rows = conn.execute(sa.select(old.c.idx, old.c.record, old.c.salt, old.c.leaf_hash,
                                      old.c.created_at).where(old.c.idx > after)
                            .order_by(old.c.idx).limit(chunk)).all()
        if not rows:
            break
        for idx, record, salt, leaf, created in rows:
            if run and (idx % 256 == 0 or idx != run[-1][0] + 1 or created != run[0][4]):
                flush()
            run.append((idx, bytes(record), bytes(salt), bytes(leaf), created))
        after = rows[-1][0]
    flush()


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("ledger_index")
    for name in reversed(_LEDGER):
        op.drop_table(name)
