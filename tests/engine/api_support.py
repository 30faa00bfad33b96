"""Helpers for the HTTP service tests: a store with principals, and real server processes.

:func:`prepare_store` creates courts and one principal per role (and a few
for the object-level checks) directly on the store, before any server runs;
:class:`Server` runs ``jrule serve`` as a separate process on loopback
(uvicorn, a free port) and waits for ``/health``.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine.api.admin import Administration
from engine.api.config import load_config
from engine.api.policy import ROLES
from engine.api.runtime import load_ledger_signer
from engine.runtime.db import open_database

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "test.jrule.local/ledger"


@dataclass
class Store:
    url: str
    data_dir: Path
    keys: dict[str, str] = field(default_factory=dict)
    org_private: Ed25519PrivateKey | None = None
    org_key_id: str = ""
    vkey: str = ""

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


def write_config(store: Store, port: int, **extra: Any) -> Path:
    """A server's TOML settings.  The deployment gate is off unless a test asks for it
    (``deploy_gate=True``): most API tests deploy small rule sets that have no tests."""
    extra.setdefault("deploy_gate", False)
    lines = [f'database_url = "{store.url}"', f'data_dir = "{store.data_dir}"',
             f"port = {port}", f'ledger_origin = "{ORIGIN}"',
             f'ledger_key = "{store.data_dir / "ledger.skey"}"', "sweep_seconds = 0.5",
             "access_log = false"]
    for k, v in extra.items():
        lines.append(f"{k} = {v!r}" if not isinstance(v, bool) else f"{k} = {str(v).lower()}")
    path = store.data_dir / f"serve-{port}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def prepare_store(url: str, data_dir: Path) -> Store:
    """Courts c1, c2; one principal per role in c1 (orgs and parties with party ids);
    ``clerk2`` in c2; ``party2`` a party of nobody; ``all`` holding every staff role."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(url, data_dir)
    config = load_config(env={}, database_url=url, data_dir=str(data_dir),
                         ledger_origin=ORIGIN, ledger_key=str(data_dir / "ledger.skey"))
    key_file = data_dir / "ledger.skey"
    if not key_file.exists():
        from ledger_adapter.note import generate_skey

        key_file.write_text(generate_skey(ORIGIN) + "\n", encoding="ascii")
    signer = load_ledger_signer(config)
    store.vkey = signer.vkey
    db = open_database(url, engine_lock=False)
    try:
        from ledger_adapter.sql import SqlLedger

        ledger = SqlLedger(db.engine, ORIGIN, signer)
        ledger.initialize()
        admin = Administration(db, ledger)
        admin.create_court("c1", "第一法院", "test")
        admin.create_court("c2", "第二法院", "test")
        for role in ROLES:
            kind = "org" if role in ("mediation_centre", "bank") else "user"
            party = {"party": "p-1", "mediation_centre": "med-1"}.get(role)
            court = None if role == "admin" else "c1"
            admin.add_principal(role, kind, court, [role], "test", party)
            store.keys[role], _ = admin.issue_key(role, "test")
        extra = {"clerk2": ("user", "c2", ["clerk"], None),
                 "party2": ("user", "c1", ["party"], "p-2"),
                 "med2": ("org", None, ["mediation_centre"], "med-2"),
                 "all": ("user", "c1", ["rule_author", "reviewer", "clerk", "judge",
                                        "enforcement_officer", "admin"], None)}
        for name, (kind, court, roles, party) in extra.items():
            admin.add_principal(name, kind, court, roles, "test", party)
            store.keys[name], _ = admin.issue_key(name, "test")
        store.org_private = Ed25519PrivateKey.generate()
        raw = store.org_private.public_key().public_bytes(serialization.Encoding.Raw,
                                                          serialization.PublicFormat.Raw)
        store.org_key_id = admin.register_org_key("mediation_centre",
                                                  base64.b64encode(raw).decode(),
                                                  "test")["key_id"]
    finally:
        db.close()
    return store


def open_minimal_case(client: httpx.Client, parties: dict[str, str] | None = None) -> None:
    """As ``client``: deploy the minimal mediation contract and open its case ``case-1``
    (1000.00 due 2025-09-30, judicially confirmed; ``parties`` by role, if any)."""
    from runtime_support import MINIMAL

    src = {"source": MINIMAL.read_text(encoding="utf-8"), "filename": "m.jrule"}
    assert client.post("/contracts/deploy", json=src).status_code == 201
    terms = {"金额": "1000.00", "履行期限": "2025-09-30", "司法确认": True}
    body: dict[str, Any] = {"contract": "调解协议", "instance": "case-1", "terms": terms}
    if parties is not None:
        body["parties"] = parties
    made = client.post("/instances", json=body)
    assert made.status_code == 201, made.text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``jrule serve`` in its own process, on loopback."""

    def __init__(self, store: Store, **config: Any) -> None:
        self.store = store
        self.port = free_port()
        self.config_path = write_config(store, self.port, **config)
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = store.data_dir / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Server:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rules_dsl.cli", "serve", "--config",
                 str(self.config_path)], cwd=self.store.data_dir, env=env,
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not start: {self.log.read_text()}")

    def client(self, who: str | None = None) -> httpx.Client:
        headers = self.store.headers(who) if who else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30)

    def stop(self) -> int:
        """SIGTERM (graceful shutdown) and wait; the exit status."""
        assert self.proc is not None
        self.proc.terminate()
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
