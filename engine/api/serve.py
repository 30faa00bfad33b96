"""``jrule serve``: the engine as an HTTP service.

With no configuration it runs the embedded default: a SQLite file in
``./jrule-data``, the in-process scheduler and dispatcher, the embedded
ledger (its signing key made on first start), and prints where the API and
its documentation are.  On the first start it also creates a court
``default`` and an ``admin`` principal and prints its API key, once.
Settings: :mod:`engine.api.config` (``--config FILE``, ``JRULE_*``).
"""

from __future__ import annotations

import argparse
import errno
import socket
import sys
from typing import Any, TextIO

from engine.runtime.errors import EngineError

__all__ = ["HELP", "add_arguments", "bootstrap", "listen", "pin_cpu", "run", "serve_app"]

HELP = "run the engine as an HTTP service (embedded default: SQLite in ./jrule-data)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="TOML configuration file")
    parser.add_argument("--data", default=None, help="data directory (default jrule-data)")
    parser.add_argument("--db", default=None, help="database URL (postgresql://... for "
                                                   "production; default SQLite in --data)")
    parser.add_argument("--host", default=None, help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (8640)")


def bootstrap(runtime: Any, out: TextIO) -> None:
    """First start of an embedded store: a ``default`` court and an ``admin`` key."""
    from engine.api.admin import AdminError

    admin = runtime.admin
    if admin.has_principals():
        return
    if runtime.config.production:
        out.write("no principals yet: create them with `jrule admin` (see docs/api.md)\n")
        return
    try:
        admin.create_court("default", "default court", "jrule serve")
        admin.add_principal("admin", "user", None, ["admin", "reviewer", "rule_author"],
                            "jrule serve")
        key, _ = admin.issue_key("admin", "jrule serve")
    except AdminError:
        return  # another process bootstrapped it first
    out.write(f"first start: created principal `admin` (roles admin, reviewer, rule_author); "
              f"its API key, shown only now:\n  {key}\n")


def pin_cpu(setting: str) -> int | None:
    """Pin the calling thread, and the threads it starts from now on, to one CPU.

    ``setting`` is the ``cpu`` setting: ``""`` or ``"off"`` (leave it to the kernel: None),
    ``"auto"`` (the CPU this thread is running on) or a CPU number.  Why: the
    event loop and the group writer hand the interpreter lock to each other
    for every commit group; on two CPUs each hand-over moves the work to a
    cold core (a third more CPU per event in ``bench/bench_api.py``), and only
    one of them can run Python at a time anyway.
    """
    import os

    from engine.api.config import ConfigError

    if not setting or setting == "off":
        return None
    allowed = os.sched_getaffinity(0)
    cpu = os.sched_getcpu() if setting == "auto" and hasattr(os, "sched_getcpu") else \
        (min(allowed) if setting == "auto" else int(setting))
    if cpu not in allowed:
        raise ConfigError(f"`cpu` = {setting}: this process may only run on CPUs "
                          f"{', '.join(map(str, sorted(allowed)))}")
    os.sched_setaffinity(0, {cpu})
    return cpu


def listen(host: str, port: int) -> socket.socket:
    """Bind the API's listening socket, or say plainly why it cannot be bound.

    Bound before anything is printed or opened, so that a taken port is reported as
    such (not after the addresses were announced, as one JSON log line from uvicorn).
    """
    if not 0 <= port <= 65535:
        raise EngineError(f"cannot listen on {host}:{port}: a port is 0 to 65535 "
                          "(choose another with --port or `port` in the configuration)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        # listening now, not when uvicorn starts: two sockets may both *bind* one address
        # with SO_REUSEADDR, only one can listen; 2048 is uvicorn's own backlog
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = "it is in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise EngineError(f"cannot listen on {host}:{port}: {reason} "
                          "(choose another with --port or `port` in the configuration)") from None
    sock.set_inheritable(True)
    return sock


def serve_app(app: Any, sock: socket.socket) -> None:
    """Run ``app`` with uvicorn on ``sock`` until SIGINT/SIGTERM, then shut down gracefully."""
    import gc

    import uvicorn

    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=30, lifespan="on")
    # Everything loaded so far (modules, compiled grammar, contracts, the app) lives as long
    # as the process: move it out of the cyclic collector's reach, so each collection only
    # scans what requests create (bench_durable --gc-freeze: a quarter of a group
    # commit's CPU was the collector re-scanning these).
    gc.collect()
    gc.freeze()
    uvicorn.Server(config).run(sockets=[sock])


def run(args: argparse.Namespace, out: TextIO | None = None,
        err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    from engine.api.app import create_app
    from engine.api.config import load_config
    from engine.api.logs import configure_logging
    from engine.api.runtime import open_runtime
    try:
        config = load_config(args.config, data_dir=args.data, database_url=args.db,
                             host=args.host, port=args.port)
        configure_logging(config.log_level)
        sock = listen(config.host, config.port)
    except EngineError as exc:
        err.write(f"jrule serve: error: {exc.message}\n")
        return 2
    try:
        # unset: one process on SQLite (embedded) pins itself; production servers, often
        # several on a host, leave placement to the kernel unless told
        cpu = pin_cpu(config.cpu or ("off" if config.production else "auto"))
        runtime = open_runtime(config)
    except EngineError as exc:
        sock.close()
        err.write(f"jrule serve: error: {exc.message}\n")
        return 2
    bootstrap(runtime, out)
    base = f"http://{config.host}:{sock.getsockname()[1]}"
    mode = "production (PostgreSQL)" if config.production else \
        f"embedded (SQLite in {config.data_dir}/)"
    if cpu is not None:
        out.write(f"jrule serve: serving threads pinned to CPU {cpu}\n")
    out.write(f"jrule serve: {mode}\n  API      {base}/\n  docs     {base}/docs\n"
              f"  OpenAPI  {base}/openapi.json\n  health   {base}/health\n")
    out.flush()
    serve_app(create_app(runtime), sock)
    return 0
