"""Prometheus metrics (``GET /metrics``, text exposition format).

Counted by this process (since it started):

``jrule_events_total{outcome}``            events submitted through the API: applied,
                                           duplicate, refused
``jrule_http_requests_total{method,status}``  and ``jrule_http_request_seconds``

Read from the store at each scrape (so every server behind a load balancer
reports the same, whole-system figures):

``jrule_inputs{kind}``                     input-log rows by kind (create, event, decision, ...)
``jrule_deadlines_fired``                  deadlines and approval timeouts fired
``jrule_deadline_lateness_seconds``        histogram of how late they fired (due -> fired)
``jrule_deadlines_pending``                deadlines waiting to fall due
``jrule_actions{status}``                  outbox rows: pending, delivering, delivered, incident
``jrule_incidents_open``                   incidents waiting for a person
``jrule_ledger_size``                      entries in the ledger
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from sqlalchemy import case, func, select

from engine.runtime.models import T_INCIDENTS, T_INPUTS, T_OUTBOX, T_TIMERS
from engine.runtime.results import Outcome
from engine.runtime.service import EngineService

__all__ = ["CONTENT_TYPE", "LATENESS_BUCKETS", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENESS_BUCKETS = (0, 1, 5, 30, 60, 300, 3600, 86400)

# no *_created series: they only confuse dashboards
disable_created_metrics()  # type: ignore[no-untyped-call]


class _StoreCollector:
    def __init__(self, service: EngineService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        t, o, n, i = T_TIMERS.c, T_OUTBOX.c, T_INCIDENTS.c, T_INPUTS.c
        with self.service.db.read() as conn:
            inputs = conn.execute(select(i.kind, func.count()).group_by(i.kind)).all()
            buckets = conn.execute(select(
                func.count(), func.coalesce(func.sum(t.late_seconds), 0),
                *[func.coalesce(func.sum(case((t.late_seconds <= b, 1), else_=0)), 0)
                  for b in LATENESS_BUCKETS],
            ).where(t.status == "fired")).one()
            pending = conn.scalar(select(func.count()).where(t.status == "pending")
                                  .select_from(T_TIMERS)) or 0
            actions = conn.execute(select(o.status, func.count()).group_by(o.status)).all()
            incidents = conn.scalar(select(func.count()).select_from(T_INCIDENTS)
                                    .where(n.status == "open")) or 0
        g = GaugeMetricFamily("jrule_inputs", "input-log rows by kind", labels=["kind"])
        for kind, count in inputs:
            g.add_metric([kind], count)
        yield g
        fired, total_late = int(buckets[0]), float(buckets[1])
        yield GaugeMetricFamily("jrule_deadlines_fired",
                                "deadlines and approval timeouts fired", value=fired)
        yield HistogramMetricFamily(
            "jrule_deadline_lateness_seconds", "how late deadlines fired after falling due",
            buckets=[(str(b), int(c)) for b, c in zip(LATENESS_BUCKETS, buckets[2:],
                                                      strict=True)] + [("+Inf", fired)],
            sum_value=total_late)
        yield GaugeMetricFamily("jrule_deadlines_pending", "deadlines waiting to fall due",
                                value=pending)
        a = GaugeMetricFamily("jrule_actions", "outbox rows by delivery status",
                              labels=["status"])
        for status in ("pending", "delivering", "delivered", "incident"):
            counts = {str(r[0]): int(r[1]) for r in actions}
            a.add_metric([status], counts.get(status, 0))
        yield a
        yield GaugeMetricFamily("jrule_incidents_open", "incidents waiting for a person",
                                value=incidents)
        ledger = self.service.ledger
        yield GaugeMetricFamily("jrule_ledger_size", "entries in the ledger",
                                value=ledger.size() if ledger is not None else 0)


class Metrics:
    """The service's metrics registry."""

    def __init__(self, service: EngineService) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.events = Counter("jrule_events", "events submitted through the API",
                              ["outcome"], registry=self.registry)
        self.requests = Counter("jrule_http_requests", "HTTP requests answered",
                                ["method", "status"], registry=self.registry)
        self.latency = Histogram("jrule_http_request_seconds", "HTTP request duration",
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5, 1, 2.5), registry=self.registry)
        self.registry.register(_StoreCollector(service))
        self._applied = self.events.labels("applied")
        self._duplicate = self.events.labels("duplicate")
        self._refused = self.events.labels("refused")
        self._by_answer: dict[tuple[str, int], Any] = {}  # (method, status) -> its counter

    def events_applied(self, outcomes: list[Outcome]) -> None:
        for o in outcomes:
            (self._duplicate if o.duplicate else self._applied if o.accepted
             else self._refused).inc()

    def request(self, method: str, status: int, seconds: float) -> None:
        counter = self._by_answer.get((method, status))
        if counter is None:  # labels() validates and looks up under a lock: once per pair
            counter = self._by_answer[(method, status)] = self.requests.labels(method,
                                                                               str(status))
        counter.inc()
        self.latency.observe(seconds)

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))


