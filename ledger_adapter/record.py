"""``jrule-record/1``: the canonical encoding of a ledger record and its leaf data.

A record says what the engine did (deployed a contract, moved an instance,
triggered an action, ...).  Its *leaf data*, the bytes hashed into the log
(leaf hash = SHA-256(0x00 || leaf data), RFC 9162 §2.1.1), is::

    jrule-record/1
    kind <kind>
    <field> <value>          one line per field of that kind, in schema order
    ...
    salt <base64 of 32 random bytes>

UTF-8, every line ending in a newline, nothing else.  The salt is fresh for
every record and is stored off-chain with the row: without it nobody can test
a guess about a record against a published leaf hash, so proofs and tiles
reveal nothing about the parties.  The record without its salt line is what
the ``record`` column stores; receipts carry the whole leaf data.

Field values by type (``SCHEMA``):

``text``     1-1000 characters, no control characters, no surrounding spaces
``uint``     decimal, no leading zeroes, below 2**63
``digest``   64 lowercase hexadecimal digits (a SHA-256 hash)
``instant``  UTC ``YYYY-MM-DDTHH:MM:SSZ``, with ``.ffffff`` only if non-zero
``vkey``     a C2SP signed-note verifier key
enumerations list their words.

:func:`decode_leaf` refuses any bytes that :func:`encode_leaf` would not
produce: unknown kinds, fields out of order, missing or extra fields,
non-canonical numbers, instants, base64 or text.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from ledger_adapter.errors import FormatError

__all__ = [
    "KINDS",
    "RECORD_FORMAT",
    "SALT_SIZE",
    "SCHEMA",
    "FieldType",
    "Record",
    "check_record",
    "decode_leaf",
    "decode_record",
    "encode_leaf",
    "format_instant",
    "make_record",
    "record_instance",
]

RECORD_FORMAT = "jrule-record/1"
SALT_SIZE = 32
_CODE = "malformed_record"
_PREFIX = RECORD_FORMAT + "\nkind "
_MAX_TEXT = 1000


class FieldType(Enum):
    TEXT = "text"
    UINT = "uint"
    DIGEST = "digest"
    INSTANT = "instant"
    VKEY = "vkey"


_Spec = FieldType | tuple[str, ...]  # a type, or the allowed words of an enumeration

#: kind -> its fields, in encoding order.
SCHEMA: dict[str, tuple[tuple[str, _Spec], ...]] = {
    "deployment": (
        ("contract", FieldType.DIGEST), ("ruleset", FieldType.DIGEST),
        ("name", FieldType.TEXT), ("version", FieldType.TEXT),
        ("by", FieldType.TEXT), ("at", FieldType.INSTANT),
    ),
    "transition": (
        ("instance", FieldType.TEXT), ("seq", FieldType.UINT),
        ("contract", FieldType.DIGEST), ("input", FieldType.DIGEST),
        ("state", FieldType.DIGEST), ("effects", FieldType.DIGEST),
        ("at", FieldType.INSTANT),
    ),
    "action": (
        ("instance", FieldType.TEXT), ("seq", FieldType.UINT),
        ("key", FieldType.TEXT), ("action", FieldType.TEXT),
        ("args", FieldType.DIGEST), ("outcome", ("triggered", "delivered", "failed")),
        ("at", FieldType.INSTANT),
    ),
    "approval": (
        ("instance", FieldType.TEXT), ("seq", FieldType.UINT),
        ("approval", FieldType.TEXT),
        ("decision", ("requested", "approved", "rejected", "timeout", "lapsed")),
        ("by", FieldType.TEXT), ("at", FieldType.INSTANT),
    ),
    # An officer's decision on an approval (the ``approval`` kind has no reason field).
    "approval_decision": (
        ("instance", FieldType.TEXT), ("seq", FieldType.UINT),
        ("approval", FieldType.TEXT), ("decision", ("approved", "rejected")),
        ("by", FieldType.TEXT), ("reason", FieldType.DIGEST),
        ("at", FieldType.INSTANT),
    ),
    # The outcome of delivering a triggered action (the ``action`` kind has no reply).
    "delivery": (
        ("instance", FieldType.TEXT), ("key", FieldType.TEXT),
        ("action", FieldType.TEXT), ("attempt", FieldType.UINT),
        ("outcome", ("delivered", "failed")), ("reply", FieldType.DIGEST),
        ("error", FieldType.DIGEST), ("reference", FieldType.TEXT),
        ("at", FieldType.INSTANT),
    ),
    "migration": (
        ("instance", FieldType.TEXT), ("seq", FieldType.UINT),
        ("from", FieldType.DIGEST), ("to", FieldType.DIGEST),
        ("state", FieldType.DIGEST), ("by", FieldType.TEXT),
        ("at", FieldType.INSTANT),
    ),
    "signed_event": (
        ("instance", FieldType.TEXT), ("seq", FieldType.UINT),
        ("org", FieldType.TEXT), ("key", FieldType.TEXT),
        ("message", FieldType.DIGEST), ("signature", FieldType.TEXT),
        ("at", FieldType.INSTANT),
    ),
    "key_rotation": (
        ("old", FieldType.VKEY), ("new", FieldType.VKEY), ("at", FieldType.INSTANT),
    ),
    "admin": (
        ("action", FieldType.TEXT), ("subject", FieldType.TEXT),
        ("digest", FieldType.DIGEST), ("by", FieldType.TEXT),
        ("at", FieldType.INSTANT),
    ),
}
KINDS = tuple(SCHEMA)
#: kinds whose first field is the instance the record is about
_HAS_INSTANCE = frozenset(k for k, fields in SCHEMA.items() if fields[0][0] == "instance")
_NAMES = {k: tuple(name for name, _ in fields) for k, fields in SCHEMA.items()}

# One regular expression per field type; a record's body must match the
# concatenation of its kind's field lines exactly (names, order, syntax).
_TEXT_CHAR = r"[^\x00-\x1f\x7f-\x9f]"
_EDGE_CHAR = r"[^\s\x00-\x1f\x7f-\x9f]"
_SYNTAX: dict[FieldType, str] = {
    FieldType.TEXT: rf"{_EDGE_CHAR}(?:{_TEXT_CHAR}{{0,{_MAX_TEXT - 2}}}{_EDGE_CHAR})?",
    FieldType.UINT: r"0|[1-9][0-9]{0,18}",
    FieldType.DIGEST: r"[0-9a-f]{64}",
    FieldType.INSTANT: r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{6})?Z",
    FieldType.VKEY: r"[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*",
}


def _spec_syntax(spec: _Spec) -> str:
    return "|".join(re.escape(w) for w in spec) if isinstance(spec, tuple) else _SYNTAX[spec]


_BODY: dict[str, re.Pattern[str]] = {
    kind: re.compile("".join(f"{re.escape(name)} ({_spec_syntax(spec)})\n"
                             for name, spec in fields))
    for kind, fields in SCHEMA.items()
}


def format_instant(t: dt.datetime) -> str:
    """The canonical UTC instant: ``2025-03-01T09:30:00Z`` (microseconds if non-zero)."""
    if t.tzinfo is None:
        raise FormatError("an instant must be timezone-aware (UTC)", code=_CODE)
    if t.tzinfo is not dt.UTC:
        t = t.astimezone(dt.UTC)
    return t.isoformat().replace("+00:00", "Z")


def _check_body(kind: str, body: str, pairs: Sequence[tuple[str, str]] | None = None
                ) -> tuple[str, ...]:
    """Check a record body (field lines) for ``kind``; return the field values."""
    m = _BODY[kind].fullmatch(body)
    if m is None:
        if pairs is None:
            pairs = [(k, v) for k, _, v in (line.partition(" ") for line in body.split("\n"))]
        raise FormatError(_explain(kind, pairs), code=_CODE)
    values = m.groups()
    for i, name, check, what in _SEMANTIC[kind]:
        if not check(values[i]):
            raise FormatError(f"{kind} record: {name} {values[i]!r} is not {what}", code=_CODE)
    return values


def _explain(kind: str, pairs: Sequence[tuple[str, str]]) -> str:
    """Name the first field that does not match (for the error message)."""
    for i, (name, spec) in enumerate(SCHEMA[kind]):
        key, value = pairs[i] if i < len(pairs) else ("", "")
        if key != name:
            return f"{kind} record: expected field {name!r}, found {key!r}"
        if not re.fullmatch(_spec_syntax(spec), value) or "\n" in value:
            what = (f"one of {', '.join(spec)}" if isinstance(spec, tuple)
                    else f"a {spec.value}")
            return f"{kind} record: field {name!r} must be {what}, not {value!r}"
    return f"a {kind} record has exactly the fields {', '.join(n for n, _ in SCHEMA[kind])}"


def _valid_instant(value: str) -> bool:
    try:
        dt.datetime.fromisoformat(value[:-1])
    except ValueError:
        return False
    return len(value) == 20 or value[20:26] != "000000"


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_vkey(value: str) -> bool:
    from ledger_adapter.note import parse_vkey  # local: only key rotations need it

    try:
        parse_vkey(value)
    except FormatError:
        return False
    return True


def _small_uint(value: str) -> bool:
    return len(value) < 19 or int(value) < 1 << 63


_SEMANTIC_CHECKS: dict[FieldType, tuple[Callable[[str], bool], str]] = {
    FieldType.UINT: (_small_uint, "below 2**63"),
    FieldType.INSTANT: (_valid_instant, "a canonical UTC instant"),
    FieldType.TEXT: (_is_utf8, "valid Unicode text"),
    FieldType.VKEY: (_is_vkey, "a valid verifier key"),
}
#: kind -> the checks a field's syntax alone does not settle: (position, name, check, what).
_SEMANTIC: dict[str, tuple[tuple[int, str, Callable[[str], bool], str], ...]] = {
    kind: tuple((i, name, *_SEMANTIC_CHECKS[spec])
                for i, (name, spec) in enumerate(fields)
                if not isinstance(spec, tuple) and spec in _SEMANTIC_CHECKS)
    for kind, fields in SCHEMA.items()
}


@dataclass(frozen=True, slots=True)
class Record:
    """A ledger record: its kind and its field values (canonical text, schema order).

    Checked on construction, so every ``Record`` encodes canonically; build one
    from Python values with :func:`make_record`.
    """

    kind: str
    fields: tuple[tuple[str, str], ...]
    _bytes: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        schema = SCHEMA.get(self.kind)
        if schema is None:
            raise FormatError(f"unknown record kind {self.kind!r}; kinds are "
                              f"{', '.join(KINDS)}", code=_CODE)
        if [n for n, _ in self.fields] != [n for n, _ in schema]:
            raise FormatError(f"a {self.kind} record has the fields "
                              f"{', '.join(n for n, _ in schema)}, in that order", code=_CODE)
        body = "".join(f"{k} {v}\n" for k, v in self.fields)
        _check_body(self.kind, body, self.fields)
        object.__setattr__(self, "_bytes", f"{_PREFIX}{self.kind}\n{body}".encode())

    def get(self, name: str) -> str | None:
        for key, value in self.fields:
            if key == name:
                return value
        return None

    @property
    def instance_id(self) -> str | None:
        """The instance the record is about (``None`` for deployments, rotations, admin)."""
        return self.fields[0][1] if self.kind in _HAS_INSTANCE else None

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, **dict(self.fields)}

    def encode(self) -> bytes:
        """The record's canonical bytes without the salt line (the ``record`` column)."""
        return self._bytes


def make_record(kind: str, values: Mapping[str, object]) -> Record:
    """Validate and canonicalise ``values`` for ``kind`` (ints, aware datetimes, strings).

    Raises :class:`~ledger_adapter.errors.FormatError` naming the first bad field.
    """
    schema = SCHEMA.get(kind)
    if schema is None:
        raise FormatError(f"unknown record kind {kind!r}; kinds are {', '.join(KINDS)}",
                          code=_CODE)
    if len(values) != len(schema):
        _refuse_extra(kind, values)
    try:
        return _make(kind, schema, values)
    except FormatError:
        _refuse_extra(kind, values)  # an unknown field is named first, as ever
        raise


def _make(kind: str, schema: tuple[tuple[str, _Spec], ...], values: Mapping[str, object]
          ) -> Record:
    out: list[tuple[str, str]] = []
    for name, spec in schema:
        try:
            raw = values[name]
        except KeyError:
            raise FormatError(f"{kind} record: missing field {name!r}", code=_CODE) from None
        if isinstance(raw, str):  # (never a datetime, int or bytes: tested first, the usual)
            text = raw
        elif isinstance(raw, dt.datetime):
            text = format_instant(raw)
        elif isinstance(raw, bool):
            raise FormatError(f"{kind} record: field {name!r} cannot be a boolean", code=_CODE)
        elif isinstance(raw, int):
            text = str(raw)
        elif isinstance(raw, bytes) and spec is FieldType.DIGEST:
            text = raw.hex()
        else:
            raise FormatError(f"{kind} record: field {name!r} has unsupported type "
                              f"{type(raw).__name__}", code=_CODE)
        out.append((name, text))
    # The fields are the schema's, in order: only their values need the check that
    # Record.__post_init__ makes.
    body = "".join([f"{k} {v}\n" for k, v in out])
    _check_body(kind, body, out)
    record = object.__new__(Record)
    object.__setattr__(record, "kind", kind)
    object.__setattr__(record, "fields", tuple(out))
    object.__setattr__(record, "_bytes", f"{_PREFIX}{kind}\n{body}".encode())
    return record


def _refuse_extra(kind: str, values: Mapping[str, object]) -> None:
    extra = set(values) - set(_NAMES[kind])
    if extra:
        raise FormatError(f"{kind} record: unknown field(s) {', '.join(sorted(extra))}",
                          code=_CODE)


def encode_leaf(record: Record, salt: bytes) -> bytes:
    """The leaf data: the record's canonical bytes and its salt line."""
    if len(salt) != SALT_SIZE:
        raise FormatError(f"a salt is {SALT_SIZE} bytes", code=_CODE)
    return record._bytes + b"salt " + base64.b64encode(salt) + b"\n"


def check_record(data: bytes) -> tuple[str, tuple[str, ...]]:
    """Check a record's canonical bytes (without salt): its kind and field values.

    Refuses anything non-canonical; builds no :class:`Record` (the audit's fast path).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError("a record must be valid UTF-8", code=_CODE) from e
    if not text.startswith(_PREFIX):
        raise FormatError(f"a record starts with the lines {RECORD_FORMAT!r} and 'kind KIND'",
                          code=_CODE)
    end = text.find("\n", len(_PREFIX))
    kind = text[len(_PREFIX):end]
    if end < 0 or kind not in SCHEMA:
        raise FormatError(f"unknown record kind {kind!r}", code=_CODE)
    return kind, _check_body(kind, text[end + 1:])


def record_instance(kind: str, values: Sequence[str]) -> str | None:
    """The instance a checked record is about (see :attr:`Record.instance_id`)."""
    return values[0] if kind in _HAS_INSTANCE else None


def decode_record(data: bytes) -> Record:
    """Parse a record's canonical bytes (without salt); refuse anything non-canonical."""
    kind, values = check_record(data)
    record = object.__new__(Record)  # already checked: skip __post_init__
    object.__setattr__(record, "kind", kind)
    object.__setattr__(record, "fields", tuple(zip(_NAMES[kind], values, strict=True)))
    object.__setattr__(record, "_bytes", data)
    return record


def decode_leaf(data: bytes) -> tuple[Record, bytes]:
    """Parse leaf data into (record, salt); refuse anything non-canonical."""
    cut = data.rfind(b"\nsalt ")
    if cut < 0 or not data.endswith(b"\n"):
        raise FormatError("leaf data ends with the line 'salt BASE64'", code=_CODE)
    salt_b64 = data[cut + 6:-1]
    try:
        salt = base64.b64decode(salt_b64, validate=True)
    except (binascii.Error, ValueError) as e:
        raise FormatError("the salt is not valid base64", code=_CODE) from e
    if len(salt) != SALT_SIZE or base64.b64encode(salt) != salt_b64:
        raise FormatError(f"the salt is not the canonical base64 of {SALT_SIZE} bytes",
                          code=_CODE)
    return decode_record(data[:cut + 1]), salt
