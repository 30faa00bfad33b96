"""The running service: engine, ledger, group writer, scheduler and dispatcher, together.

:func:`open_runtime` builds them from a :class:`ServeConfig`; :meth:`Runtime.start`
starts the background work and :meth:`Runtime.stop` stops it gracefully: no
new events, the queued ones applied, the scheduler's run in progress and
the dispatcher's delivery in progress finished, then the store closed.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.api.admin import Administration
from engine.api.auth import Authenticator
from engine.api.config import ConfigError, ServeConfig, load_delivery
from engine.api.metrics import Metrics
from engine.api.signatures import record_signatures
from engine.api.writer import GroupWriter
from engine.runtime.clock import Clock
from engine.runtime.service import EngineService

__all__ = ["Runtime", "load_ledger_signer", "open_runtime"]

log = logging.getLogger("jrule.serve")


@dataclass
class Runtime:
    config: ServeConfig
    service: EngineService
    writer: GroupWriter
    authenticator: Authenticator
    admin: Administration
    metrics: Metrics
    scheduler: Any = None
    dispatcher: Any = None
    witnesses: tuple[Any, ...] = ()
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    started: bool = False

    @property
    def ledger(self) -> Any:
        return self.service.ledger

    def start(self) -> None:
        if self.started:
            return
        self.started = True
        self.writer.start()
        if self.scheduler is not None:
            self.scheduler.start()
        if self.dispatcher is not None:
            t = threading.Thread(target=self.dispatcher.run_forever, args=(self._stop, 1.0),
                                 name="jrule-dispatcher", daemon=True)
            t.start()
            self._threads.append(t)
            self.service.subscribe(lambda _due: self.dispatcher.wake())

    def stop(self) -> None:
        """Finish in-flight work, then close the store."""
        self.writer.close()
        self._stop.set()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
        for t in self._threads:
            t.join(30)
        self.service.close()
        log.info("stopped: queued events applied, scheduler and dispatcher finished")


def load_ledger_signer(config: ServeConfig) -> Any:
    """The ledger's signing key: read from ``ledger_key``; made on first start only in
    embedded mode (in production a key made by one process would fork the log)."""
    from ledger_adapter.note import Ed25519Signer, generate_skey

    path = config.ledger_key_path
    if not path.exists():
        if config.production:
            raise ConfigError(f"the ledger signing key {path} does not exist; in production "
                              "make it once (jrule admin ledger-key FILE) and give every "
                              "server the same file (JRULE_LEDGER_KEY)")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(generate_skey(config.ledger_origin) + "\n")
        log.info("made a new ledger signing key at %s", path)
    try:
        return Ed25519Signer.from_skey(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the ledger signing key {path}: {exc}") from None


def _witnesses(vkeys: tuple[str, ...], verifier: Any, error: type[Exception]) -> tuple[Any, ...]:
    """The configured witnesses' verifiers, or a ConfigError naming the bad key."""
    out = []
    for vkey in vkeys:
        try:
            out.append(verifier.from_vkey(vkey))
        except error as exc:
            raise ConfigError(f"witnesses: {vkey!r} is not a witness key: {exc}") from None
    return tuple(out)


def _dispatcher(config: ServeConfig, service: EngineService, clock: Clock | None) -> Any:
    if not config.delivery:
        log.warning("no delivery targets configured (delivery / JRULE_DELIVERY): triggered "
                    "actions wait in the outbox")
        return None
    from engine.runtime.dispatcher import Dispatcher
    from engine.runtime.handlers import RoutingHandler
    from engine.runtime.webhook import WebhookHandler, load_private_key, write_key_pair

    key_path = config.webhook_key_path
    if not key_path.exists():
        made, _ = write_key_pair(key_path.parent, key_path.stem)
        key_path = made
    try:
        key = load_private_key(key_path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"webhook_key: cannot use {key_path} as the webhook signing key "
                          f"(an Ed25519 private key in PEM): {exc}") from None
    targets = load_delivery(config.delivery)

    def make(target: Any) -> Any:
        return WebhookHandler(str(target["url"]), key, str(target.get("key_id", "jrule")),
                              timeout=float(target.get("timeout", 10)), clock=clock)

    try:
        handler = RoutingHandler.from_config(targets, make)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"{config.delivery}: {exc}") from None
    # delivery outcomes go on the ledger with the change they record; production retries
    # longer (15 attempts, about an hour) than a sandbox before opening an incident
    return Dispatcher(service.db, handler, clock, ledger=service.ledger,
                      mode="production" if service.mode == "production" else "sandbox")


def open_runtime(config: ServeConfig, *, clock: Clock | None = None,
                 service: EngineService | None = None, scheduler: bool = True,
                 dispatcher: Any = None) -> Runtime:
    """Open the store (migrating it), the ledger, and build the service's parts.

    ``service`` (with its ledger) may be given by a caller that already has one
    (``jrule run``'s sandbox); otherwise it is opened from ``config``.
    """
    from contracts_lib.calendar import CalendarError, load_calendar
    from engine.runtime.db import open_database
    from ledger_adapter.cosign import CosignatureVerifier
    from ledger_adapter.errors import LedgerError
    from ledger_adapter.sql import SqlLedger

    if service is None and clock is None and config.virtual_clock:
        import datetime as dt

        from engine.runtime.clock import VirtualClock

        try:
            start = dt.datetime.fromisoformat(config.virtual_clock.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"virtual_clock must be an ISO 8601 instant, not "
                              f"{config.virtual_clock!r}") from None
        if start.tzinfo is None:
            raise ConfigError("virtual_clock needs a time zone (e.g. 2025-09-01T02:00:00Z)")
        clock = VirtualClock(start)
        config = replace(config, sandbox=True)
    if service is None:
        if not config.production:
            Path(config.data_dir).mkdir(parents=True, exist_ok=True)
        signer = load_ledger_signer(config)
        try:
            calendars = [load_calendar(c) for c in config.calendars] or [load_calendar("cn")]
        except CalendarError as exc:
            raise ConfigError(f"calendars: {exc}") from None
        db = open_database(config.url)
        try:
            ledger = SqlLedger(db.engine, config.ledger_origin, signer)
            mode = "sandbox" if config.sandbox else "production"
            service = EngineService(config.url, clock, calendars[0], mode=mode,
                                    calendars=calendars[1:], db=db, ledger=ledger)
        except LedgerError as exc:  # a key of another log, or one rotated out
            db.close()
            raise ConfigError(f"ledger_key {config.ledger_key_path}: {exc.message}") from None
        except BaseException:
            db.close()
            raise
    try:
        if config.deploy_gate and service.deploy_gate is None:
            # deployments through the API run the rule set's tests first (issue 6's gate);
            # the service's own calendar is the one its instances will run on
            from engine.testing.gate import make_gate

            if config.gate_examples < 1:
                raise ConfigError("gate_examples must be at least 1 (timelines per property)")
            service.deploy_gate = make_gate(service.calendar, examples=config.gate_examples)
        service.on_transaction(record_signatures(service))
        metrics = Metrics(service)
        holder: list[Any] = []

        def applied(outcomes: list[Any]) -> None:
            metrics.events_applied(outcomes)
            if holder and holder[0].dispatcher is not None \
                    and any(o.actions for o in outcomes if o.accepted):
                holder[0].dispatcher.wake()  # new outbox rows: deliver now, not at the poll

        writer = GroupWriter(service, on_applied=applied)
        runtime = Runtime(
            config=config, service=service, writer=writer,
            authenticator=Authenticator(service.db, config.auth_cache_seconds),
            admin=Administration(service.db, service.ledger), metrics=metrics,
            witnesses=_witnesses(config.witnesses, CosignatureVerifier, LedgerError))
        holder.append(runtime)
        if scheduler:
            from engine.runtime.scheduler import EngineScheduler

            runtime.scheduler = EngineScheduler(service, sweep_seconds=config.sweep_seconds)
        runtime.dispatcher = dispatcher if dispatcher is not None else \
            _dispatcher(config, service, clock)
    except BaseException:
        service.close()
        raise
    return runtime
