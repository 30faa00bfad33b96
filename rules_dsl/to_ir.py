"""Stage 4: checked AST -> contract IR (format ``jrule-ir/1``).

The IR is plain JSON data with one canonical byte form (see docs/ir.md):
UTF-8, keys sorted, no insignificant whitespace, no floats (numbers that are
not small integers are strings).  A rule set's id is the SHA-256 of those
bytes; each contract inside also has its own id, the SHA-256 of its canonical
form without the ``id`` key.  Same source and compiler -> same bytes, on any
machine: nothing here depends on paths, time, hash seeds or dict order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contracts_lib.actions import ACTIONS, BUILTIN_ENUMS, find_action
from rules_dsl import ast
from rules_dsl.check import CheckedFile
from rules_dsl.check_structure import applicable_states
from rules_dsl.check_types import ExprEnv, infer, resolve_type
from rules_dsl.scope import ContractScope

__all__ = [
    "COMPILER_VERSION",
    "IR_FORMAT",
    "RuleSetIR",
    "canonical_json",
    "catalogue_hash",
    "from_checked",
]

IR_FORMAT = "jrule-ir/1"
COMPILER_VERSION = "0.1.0"

JSON = Any


def canonical_json(value: JSON) -> bytes:
    """The one byte encoding of IR data (keys sorted, compact, UTF-8)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def catalogue_hash() -> str:
    """Hash of the action catalogue and built-in enums the IR was checked against."""
    data = {
        "actions": [
            {
                "name": a.name,
                "alias": a.alias,
                "params": [[p.name, p.type, p.required] for p in a.params],
                "needs_approval": a.needs_approval,
                "returns": [[p.name, p.type] for p in a.returns],
            }
            for a in ACTIONS.values()
        ],
        "enums": {n: [v for v, _ in e.variants] for n, e in BUILTIN_ENUMS.items()},
    }
    return _sha256(canonical_json(data))


@dataclass(frozen=True)
class RuleSetIR:
    """A compiled rule set: its canonical bytes and id.  Immutable."""

    canonical: bytes

    @property
    def id(self) -> str:
        return _sha256(self.canonical)

    def to_data(self) -> JSON:
        """A fresh copy of the IR as JSON data."""
        return json.loads(self.canonical)

    def contract_ids(self) -> dict[str, str]:
        return {c["name"]: c["id"] for c in self.to_data()["contracts"]}

    def pretty(self) -> str:
        return json.dumps(self.to_data(), sort_keys=True, ensure_ascii=False, indent=2)


class _Lower:
    def __init__(self, scope: ContractScope) -> None:
        self.scope = scope

    def span(self, span: ast.Span) -> str:
        return span.compact()

    # --- expressions ---------------------------------------------------------
    def type_of(self, expr: ast.Expr, event: ast.EventDecl | None, timing: bool) -> str:
        env = ExprEnv(self.scope, [], event=event, in_timing=timing)
        return infer(expr, env).to_ir()

    def expr(self, e: ast.Expr, event: ast.EventDecl | None = None, timing: bool = False) -> JSON:
        scope = self.scope
        out: dict[str, JSON]
        match e:
            case ast.IntLit(value=v):
                out = {"expr": "literal", "type": "Int", "value": v}
            case ast.DecimalLit(text=t):
                out = {"expr": "literal", "type": "Decimal", "value": t}
            case ast.MoneyLit(text=t):
                out = {"expr": "literal", "type": "Money", "value": t}
            case ast.DateLit(iso=t):
                out = {"expr": "literal", "type": "Date", "value": t}
            case ast.DateTimeLit(iso=t):
                out = {"expr": "literal", "type": "DateTime", "value": t}
            case ast.StringLit(value=t):
                out = {"expr": "literal", "type": "Text", "value": t}
            case ast.BoolLit(value=v):
                out = {"expr": "literal", "type": "Bool", "value": v}
            case ast.NameRef(name=n):
                if n in scope.vars:
                    out = {"expr": "var", "name": n}
                elif n in scope.terms:
                    out = {"expr": "term", "name": n}
                elif n in scope.roles:
                    out = {"expr": "role", "name": n}
                elif n in scope.deadlines:
                    out = {"expr": "deadline_last_day", "deadline": n}
                elif n in scope.events:
                    out = {"expr": "event_date", "event": n}
                elif n in ("today", "now"):
                    out = {"expr": n}
                else:
                    out = {"expr": "rounding", "mode": n}
            case ast.FieldAccess(obj=obj, field=f):
                if isinstance(obj, ast.NameRef) and obj.name in scope.enums:
                    out = {"expr": "enum", "enum": obj.name, "value": f.name}
                elif isinstance(obj, ast.NameRef) and obj.name in scope.events:
                    kind = "payload" if not timing else "last_payload"
                    out = {"expr": kind, "event": obj.name, "field": f.name}
                else:
                    out = {"expr": "field", "of": self.expr(obj, event, timing), "field": f.name}
            case ast.IndexAccess(obj=obj, index=i):
                out = {
                    "expr": "index",
                    "of": self.expr(obj, event, timing),
                    "index": self.expr(i, event, timing),
                }
            case ast.FuncCall(func=f, args=args):
                out = {
                    "expr": "call",
                    "function": f.name,
                    "args": [self.expr(a, event, timing) for a in args],
                }
            case ast.BinaryOp(op=op, left=left, right=right):
                out = {
                    "expr": "binary",
                    "op": op,
                    "left": self.expr(left, event, timing),
                    "right": self.expr(right, event, timing),
                }
            case ast.UnaryOp(op=op, operand=operand):
                out = {"expr": "unary", "op": op, "operand": self.expr(operand, event, timing)}
            case ast.ListLit(items=items):
                out = {"expr": "list", "items": [self.expr(i, event, timing) for i in items]}
            case ast.LegalDate(period=p, direction=direction, anchor=anchor):
                out = {
                    "expr": "legal_date",
                    "direction": direction,
                    "period": self.period(p, event, timing),
                    "anchor": self.expr(anchor, event, timing),
                }
        out["type"] = self.type_of(e, event, timing)
        out["span"] = self.span(e.span)
        return out

    def period(
        self, p: ast.Period, event: ast.EventDecl | None = None, timing: bool = False
    ) -> JSON:
        return {
            "amount": self.expr(p.amount, event, timing),
            "unit": p.unit,
            "span": self.span(p.span),
        }

    # --- statements ------------------------------------------------------------
    def block(self, b: ast.Block, event: ast.EventDecl | None) -> list[JSON]:
        return [self.stmt(s, event) for s in b.stmts]

    def stmt(self, s: ast.Stmt, event: ast.EventDecl | None) -> JSON:
        out: dict[str, JSON]
        match s:
            case ast.SetStmt(target=t, value=v):
                out = {"stmt": "set", "var": t.name, "value": self.expr(v, event)}
            case ast.DoStmt(call=call, approval=approval):
                spec = find_action(call.action.name)
                assert spec is not None
                given = {a.name.name: a for a in call.args}
                args = [
                    {"name": p.name, "value": self.expr(given[p.name].value, event)}
                    for p in spec.params
                    if p.name in given
                ]
                out = {
                    "stmt": "do",
                    "action": spec.name,
                    "args": args,
                    "needs_approval": spec.needs_approval,
                    "approval": None,
                }
                if approval is not None:
                    branches = {b.outcome: self.block(b.body, event) for b in approval.branches}
                    out["approval"] = {
                        "role": approval.role.name,
                        "within": self.period(approval.within, event),
                        "on_approved": branches.get("approved", []),
                        "on_rejected": branches.get("rejected", []),
                        "on_timeout": branches.get("timeout", []),
                        "span": self.span(approval.span),
                    }
            case ast.GotoStmt(state=st):
                out = {"stmt": "goto", "state": st.name}
            case ast.IfStmt(branches=branches, otherwise=otherwise):
                out = {
                    "stmt": "if",
                    "branches": [
                        {"condition": self.expr(b.condition, event), "body": self.block(b.body,
                                                                                        event)}
                        for b in branches
                    ],
                    "otherwise": None if otherwise is None else self.block(otherwise, event),
                }
            case ast.PeriodStmt(op=op, deadline=d):
                out = {"stmt": op, "deadline": d.name}
        out["span"] = self.span(s.span)
        return out

    # --- rules -----------------------------------------------------------------
    def anchor(self, a: ast.Expr | ast.AnchorEntering) -> JSON:
        if isinstance(a, ast.AnchorEntering):
            return {"expr": "entering", "type": "Date", "span": self.span(a.span)}
        return self.expr(a, None, timing=True)

    def timing(self, t: ast.Timing) -> JSON:
        match t:
            case ast.TimingBy(date=d):
                out: dict[str, JSON] = {"kind": "by", "date": self.expr(d, None, timing=True)}
            case ast.TimingAfter(period=p, anchor=a):
                out = {"kind": "after", "period": self.period(p), "anchor": self.anchor(a)}
            case ast.TimingBefore(period=p, anchor=a):
                out = {"kind": "before", "period": self.period(p), "anchor": self.anchor(a)}
            case ast.TimingEvery(period=p, anchor=a, limit=lim):
                out = {
                    "kind": "every",
                    "period": self.period(p),
                    "anchor": self.anchor(a),
                    "limit": None if lim is None else self.period(lim),
                }
        out["span"] = self.span(t.span)
        return out

    def contract(self) -> JSON:
        scope = self.scope
        c = scope.contract

        def fields(fs: tuple[ast.FieldDecl, ...]) -> list[JSON]:
            return [
                {
                    "name": f.name.name,
                    "type": resolve_type(f.type, scope, []).to_ir(),
                    "title": f.title,
                    "span": self.span(f.span),
                }
                for f in fs
            ]

        user_enums = [m for m in scope.members if isinstance(m, ast.EnumDecl)]
        data: dict[str, JSON] = {
            "name": c.name.name,
            "title": c.title,
            "version": c.version,
            "span": self.span(c.span),
            "roles": [
                {"name": r.name.name, "title": r.title, "span": self.span(r.span)}
                for r in scope.roles.values()
            ],
            "enums": [
                {
                    "name": e.name.name,
                    "title": e.title,
                    "variants": [{"name": v.name.name, "title": v.title} for v in e.variants],
                    "span": self.span(e.span),
                }
                for e in user_enums
            ],
            "records": [
                {"name": r.name.name, "title": r.title, "fields": fields(r.fields),
                 "span": self.span(r.span)}
                for r in scope.records.values()
            ],
            "terms": [
                {
                    "name": t.name.name,
                    "type": resolve_type(t.type, scope, []).to_ir(),
                    "title": t.title,
                    "span": self.span(t.span),
                }
                for t in scope.terms.values()
            ],
            "vars": [
                {
                    "name": v.name.name,
                    "type": resolve_type(v.type, scope, []).to_ir(),
                    "init": self.expr(v.init),
                    "title": v.title,
                    "span": self.span(v.span),
                }
                for v in scope.vars.values()
            ],
            "states": [
                {
                    "name": s.name.name,
                    "title": s.title,
                    "initial": s.initial,
                    "terminal": s.terminal,
                    "span": self.span(s.span),
                }
                for s in scope.states.values()
            ],
            "initial_state": scope.initial,
            "events": [
                {
                    "name": e.name.name,
                    "title": e.title,
                    "by": [r.name for r in e.by],
                    "fields": fields(e.fields),
                    "span": self.span(e.span),
                }
                for e in scope.events.values()
            ],
            "transitions": [self.transition(i, t) for i, t in enumerate(scope.transitions)],
            "deadlines": [self.deadline(d) for d in scope.deadline_list],
            "time_rules": {
                "start_day_counted": False,
                "last_day_on_rest_day": "next_working_day",
                "before_on_rest_day": "previous_working_day",
                "month_end": "clamp",
                "due_at": "end_of_last_day",
            },
        }
        data["id"] = _sha256(canonical_json(data))
        return data

    def transition(self, index: int, t: ast.Transition) -> JSON:
        event = self.scope.events.get(t.event.name)
        return {
            "index": index,
            "event": t.event.name,
            "states": applicable_states(t, self.scope),
            "guard": None if t.guard is None else self.expr(t.guard, event),
            "priority": None if t.priority is None else t.priority.value,
            "cite": None if t.cite is None else t.cite.value,
            "body": self.block(t.body, event),
            "span": self.span(t.span),
        }

    def deadline(self, d: ast.Deadline) -> JSON:
        return {
            "name": d.name.name,
            "title": d.title,
            "states": [s.name for s in d.states],
            "timing": self.timing(d.timing),
            "priority": None if d.priority is None else d.priority.value,
            "cite": None if d.cite is None else d.cite.value,
            "body": self.block(d.body, None),
            "span": self.span(d.span),
        }


def from_checked(checked: CheckedFile) -> RuleSetIR:
    """Lower a checked file (which must have no errors) to its IR."""
    if not checked.ok:
        raise ValueError("cannot lower a file with errors")
    source = checked.source
    modules: Mapping[str, str] = {}
    module_list: list[JSON] = []
    for scope in checked.contracts:
        for m in scope.modules:
            if m.decl.name.name not in modules and m.path != source.path:
                modules = {**modules, m.decl.name.name: m.sha256}
                module_list.append({"name": m.decl.name.name, "file": m.path, "sha256": m.sha256})
    text = checked.sources[source.path]
    data = {
        "format": IR_FORMAT,
        "compiler": {"name": "jrule", "version": COMPILER_VERSION},
        "catalogue": catalogue_hash(),
        "source": {
            "file": source.path,
            "sha256": _sha256(text.encode("utf-8")),
            "modules": sorted(module_list, key=lambda m: str(m["name"])),
        },
        "contracts": [_Lower(scope).contract() for scope in checked.contracts],
    }
    return RuleSetIR(canonical_json(data))
