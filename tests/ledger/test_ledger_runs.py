"""``ledger_entries`` rows hold runs of entries: packing and unpacking lose nothing."""

from __future__ import annotations

import datetime as dt
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_adapter.record import make_record
from ledger_adapter.sql import RUN_WIDTH, pack_runs, record_kind_instance, unpack_run

records_st = st.lists(st.binary(min_size=0, max_size=600), min_size=1, max_size=700)


@settings(max_examples=60, deadline=None)
@given(start=st.integers(min_value=0, max_value=5_000), records=records_st)
def test_runs_keep_every_entry_and_never_cross_a_bundle(start: int,
                                                         records: list[bytes]) -> None:
    n = len(records)
    salts = os.urandom(32 * n)
    leaves = [os.urandom(32) for _ in range(n)]
    runs = pack_runs(start, records, salts, leaves)
    got = [e for run in runs for e in unpack_run(*run)]
    assert got == [(start + i, records[i], salts[32 * i:32 * i + 32], leaves[i])
                   for i in range(n)]
    for idx, width, *_ in runs:
        assert 1 <= width <= RUN_WIDTH
        assert idx // RUN_WIDTH == (idx + width - 1) // RUN_WIDTH  # one entry bundle
    # as few rows as the bundles allow
    assert len(runs) == (start + n - 1) // RUN_WIDTH - start // RUN_WIDTH + 1


@given(cut=st.integers(min_value=0, max_value=40))
def test_a_damaged_run_reads_as_far_as_its_parts_go(cut: int) -> None:
    records = [b"r%d" % i for i in range(20)]
    (run,) = pack_runs(0, records, bytes(32 * 20), [bytes(32)] * 20)
    idx, width, recs, lengths, salts, leaves = run
    got = unpack_run(idx, width, recs, lengths[:cut], salts, leaves)
    assert [e[1] for e in got] == records[:cut // 2]


def test_kind_and_instance_are_read_from_the_record() -> None:
    at = dt.datetime(2025, 9, 1, tzinfo=dt.UTC)
    action = make_record("action", {"instance": "c1", "seq": 2, "key": "c1:2:1",
                                    "action": "remind", "args": "ab" * 32,
                                    "outcome": "triggered", "at": at})
    admin = make_record("admin", {"action": "x", "subject": "instance y", "digest": "ab" * 32,
                                  "by": "ops", "at": at})
    assert record_kind_instance(action.encode()) == ("action", "c1")
    assert record_kind_instance(admin.encode()) == ("admin", None)
    assert record_kind_instance(b"garbage") == ("", None)
