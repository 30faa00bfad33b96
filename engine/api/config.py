"""The service's settings: defaults, then a TOML file, then ``JRULE_*`` environment variables.

=====================  ==========================  ======================================
setting                environment variable        default
=====================  ==========================  ======================================
data_dir               ``JRULE_DATA_DIR``          ``jrule-data``
database_url           ``JRULE_DATABASE_URL``      ``sqlite:///<data_dir>/jrule.sqlite3``
host                   ``JRULE_HOST``              ``127.0.0.1``
port                   ``JRULE_PORT``              ``8640``
ledger_origin          ``JRULE_LEDGER_ORIGIN``     ``jrule.local/ledger``
ledger_key             ``JRULE_LEDGER_KEY``        ``<data_dir>/ledger.skey`` (made on first
                                                   start in embedded mode only)
calendars              ``JRULE_CALENDARS``         ``cn`` (comma-separated names or files;
                                                   the first is used for new instances)
delivery               ``JRULE_DELIVERY``          none: a JSON/TOML file of webhook targets
                                                   (``{"default": {"url": ...}, "routes":
                                                   {...}}``)
webhook_key            ``JRULE_WEBHOOK_KEY``       ``<data_dir>/webhook.key`` (made if missing)
witnesses              ``JRULE_WITNESSES``         none: witness vkeys whose cosignatures
                                                   the witness endpoint accepts
mediation_contracts    ``JRULE_MEDIATION_CONTRACTS``  ``调解协议履行,调解协议``
bank_events            ``JRULE_BANK_EVENTS``       ``付款,payment,property_report,
                                                   property_found``
require_org_signatures ``JRULE_REQUIRE_ORG_SIGNATURES``  ``false``
auth_cache_seconds     ``JRULE_AUTH_CACHE_SECONDS``  ``5``
sweep_seconds          ``JRULE_SWEEP_SECONDS``     ``5``
access_log             ``JRULE_ACCESS_LOG``        ``true`` (one JSON line per request)
log_level              ``JRULE_LOG_LEVEL``         ``INFO``
deploy_gate            ``JRULE_DEPLOY_GATE``       ``true``: every deployment through the API runs
                                                   the rule set's scenario tests and properties
                                                   first and is refused on any failure
gate_examples          ``JRULE_GATE_EXAMPLES``     ``200`` generated timelines per property
virtual_clock          ``JRULE_VIRTUAL_CLOCK``     none: an ISO instant; runs a *sandbox* on
                                                   a virtual clock standing there (moved by
                                                   ``POST /sandbox/clock``), for rehearsals
cpu                    ``JRULE_CPU``               by mode: ``auto`` in the embedded mode,
                                                   ``off`` in production; ``auto`` (the CPU it
                                                   starts on) or a CPU number pins the serving
                                                   threads to one CPU, ``off`` leaves them to
                                                   the kernel (see docs/operations.md)
=====================  ==========================  ======================================

The mode follows the database: SQLite is the *embedded* mode (one process),
PostgreSQL the *production* mode (several processes may share it; the ledger
key must be given, never generated).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from engine.runtime.errors import EngineError

__all__ = ["ConfigError", "ServeConfig", "load_config"]

_LISTS = ("calendars", "witnesses", "mediation_contracts", "bank_events")
_INTS = ("port", "gate_examples")
_FLOATS = ("auth_cache_seconds", "sweep_seconds")
_BOOLS = ("require_org_signatures", "access_log", "deploy_gate")


class ConfigError(EngineError):
    code = "config_error"


@dataclass(frozen=True)
class ServeConfig:
    data_dir: str = "jrule-data"
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8640
    ledger_origin: str = "jrule.local/ledger"
    ledger_key: str = ""
    calendars: tuple[str, ...] = ("cn",)
    delivery: str = ""
    webhook_key: str = ""
    witnesses: tuple[str, ...] = ()
    mediation_contracts: tuple[str, ...] = ("调解协议履行", "调解协议")
    bank_events: tuple[str, ...] = ("付款", "payment", "property_report", "property_found")
    require_org_signatures: bool = False
    auth_cache_seconds: float = 5.0
    sweep_seconds: float = 5.0
    access_log: bool = True
    deploy_gate: bool = True
    gate_examples: int = 200
    log_level: str = "INFO"
    virtual_clock: str = ""
    cpu: str = ""
    #: not configurable from files: set by ``jrule run`` for its sandbox
    sandbox: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{Path(self.data_dir) / 'jrule.sqlite3'}"

    @property
    def production(self) -> bool:
        return self.url.startswith(("postgresql", "postgres"))

    @property
    def ledger_key_path(self) -> Path:
        return Path(self.ledger_key) if self.ledger_key else Path(self.data_dir) / "ledger.skey"

    @property
    def webhook_key_path(self) -> Path:
        return Path(self.webhook_key) if self.webhook_key else \
            Path(self.data_dir) / "webhook.key"


def _coerce(name: str, value: Any, where: str) -> Any:
    try:
        if name in _LISTS:
            if isinstance(value, str):
                return tuple(v.strip() for v in value.split(",") if v.strip())
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return tuple(value)
            raise ValueError("a list of strings")
        if name in _INTS:
            try:
                return int(value)
            except ValueError:
                raise ValueError("a whole number") from None
        if name in _FLOATS:
            try:
                return float(value)
            except ValueError:
                raise ValueError("a number") from None
        if name in _BOOLS:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError("true or false")
        if name == "cpu":
            text = str(value).strip().lower()
            if text not in ("", "auto", "off") and not text.isdigit():
                raise ValueError('"auto", "off" or a CPU number')
            return text
        if not isinstance(value, str):
            raise ValueError("a string")
        return value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: `{name}` must be {exc}: got {value!r}") from None


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None,
                **overrides: Any) -> ServeConfig:
    """Defaults, then the TOML file at ``path`` (its ``[serve]`` table or top level), then
    ``JRULE_*`` variables from ``env`` (default ``os.environ``), then ``overrides``."""
    env = os.environ if env is None else env
    names = {f.name for f in fields(ServeConfig)} - {"sandbox", "extra"}
    values: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read the configuration file {path}: "
                              f"{exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        table = data.get("serve", data)
        unknown = sorted(set(table) - names)
        if unknown:
            raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: "
                              f"{', '.join(sorted(names))}")
        for k, v in table.items():
            values[k] = _coerce(k, v, str(path))
    for name in names:
        var = f"JRULE_{name.upper()}"
        if var in env:
            values[name] = _coerce(name, env[var], f"environment variable {var}")
    for k, v in overrides.items():
        if v is not None:
            values[k] = v
    return replace(ServeConfig(), **values)


def load_delivery(path: str) -> dict[str, Any]:
    """The webhook targets file (JSON or TOML)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the delivery file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the delivery file is not UTF-8 text (JSON or TOML)") from None
    try:
        data = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of delivery targets")
    return data
