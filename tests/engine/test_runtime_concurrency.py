"""Concurrent callers (threads; on PostgreSQL, two engines) never apply an event twice."""

from __future__ import annotations

import threading
from collections import Counter

from runtime_support import MINIMAL, deploy, minimal_terms, mirror_ok

from engine.runtime.clock import VirtualClock
from engine.runtime.service import EngineService, EventSubmission


def test_racing_submissions_apply_each_key_once(svc: EngineService, store_url: str,
                                                vclock: VirtualClock) -> None:
    deploy(svc, MINIMAL)
    for i in range(3):
        svc.create_instance("调解协议", f"r{i}", minimal_terms(amount="100000.00"))
    # on PostgreSQL a second engine (its own pool) races the first; SQLite allows one
    engines = [svc] if svc.db.is_sqlite else \
        [svc, EngineService(store_url, vclock, mode="test")]
    outcomes: list[tuple[str, int | None, bool]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        engine = engines[n % len(engines)]
        try:
            for k in range(30):
                key = f"k{k}"  # every worker sends the same 30 keys per instance
                iid = f"r{k % 3}"
                if n % 2:
                    o = engine.submit_event(iid, "付款", "被申请人", {"数额": "1.00"}, key)
                    got = [o]
                else:
                    got = engine.submit_events([EventSubmission(iid, "付款", "被申请人",
                                                                {"数额": "1.00"}, key)])
                with lock:
                    outcomes.extend((f"{iid}/{key}", o.seq, o.duplicate) for o in got)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for engine in engines[1:]:
        engine.close()
    assert not errors, errors
    applied = Counter(key for key, _, dup in outcomes if not dup)
    assert len(applied) == 30 and set(applied.values()) == {1}
    seqs: dict[str, set[int | None]] = {}
    for key, seq, _ in outcomes:
        seqs.setdefault(key, set()).add(seq)
    assert all(len(s) == 1 for s in seqs.values())  # every caller got the first result
    for i in range(3):
        st = svc.state(f"r{i}")
        assert st["seq"] == 11 and st["document"]["vars"] == [["已付", "10.00"]]
        assert svc.replay(f"r{i}") and mirror_ok(svc, f"r{i}")
