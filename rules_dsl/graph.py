"""Drawing a contract's state machine: IR data -> Mermaid or Graphviz text.

Everything here is a pure function of IR data (``RuleSetIR.to_data()``): the
same IR gives the same bytes.  Nothing is looked up in the compiler; only the
keys documented in ``rules_dsl.to_ir`` are read.

The picture
-----------
* One node per declared state, in declaration order, with the ids ``s0``,
  ``s1``...; the label shows the title and the real name, ``履行中 (performing)``.
  The initial state is entered from a start dot; terminal states lead to an end
  dot (Mermaid) or are drawn as double circles (Graphviz).
* One edge per (source state, path through a rule body that ends in a goto).
  A rule applies in each of its states; its body is walked statement by
  statement.  An ``if`` whose branches end in different places is split: each
  branch becomes its own path and adds a condition to the label, ``[c]`` for
  the first branch, ``[else if c]`` for later ones, ``[else]`` for a written
  ``else`` and ``[not c]`` for the unwritten one.  Branches that fall through
  to the statements after the ``if`` are merged again into one path (the
  condition then says which branches those were), so every ``goto`` statement
  gives exactly one edge per source state.
* Labels: ``event [guard] [conditions] / actions`` for transitions and
  ``⏰ deadline (timing) [conditions] / actions`` for deadlines.  Actions are
  listed by name in order, approval-gated ones as ``freeze✔judge``;
  ``suspend d`` / ``resume d`` / ``restart d`` are listed too.  An action that
  runs only on some of several merged branches is marked ``?``.
* A path that ends without a goto is a self-loop labelled ``... (stays)``, drawn
  only when it does something (an action or a period operation).
* The bodies of ``on approved`` / ``on rejected`` / ``on timeout`` run later,
  when the officer decides or the time is up, in whatever state the instance
  is in then (docs/language.md, section 12); they are drawn from the state the
  rule that asked for the approval leaves it in (its goto target, or its own
  state: where it waits for the answer), labelled ``approved by ROLE (event →
  action)``, ``rejected by ROLE (...)`` and ``timeout of approval by ROLE
  (...)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rules_dsl import precedence

__all__ = [
    "Edge",
    "contract_edges",
    "expr_text",
    "period_text",
    "state_ids",
    "state_label",
    "timing_text",
    "to_dot",
    "to_dot_all",
    "to_mermaid",
    "to_mermaid_all",
]

IR = Mapping[str, Any]

# --- expressions -----------------------------------------------------------------

# Binding strength, loosest first, as in rules_dsl/jrule.lark.
_OR, _AND, _NOT, _COMPARE, _SUM, _PRODUCT, _UNARY, _POSTFIX, _ATOM = (
    precedence.OR, precedence.AND, precedence.NOT, precedence.COMPARE, precedence.SUM,
    precedence.PRODUCT, precedence.UNARY, precedence.POSTFIX, precedence.ATOM)
_BINARY_PREC = precedence.BINARY_LEVEL
_string_literal = precedence.quote_string


def _literal_text(e: IR) -> str:
    kind, value = e.get("type"), e.get("value")
    if kind == "Bool" or isinstance(value, bool):
        return "true" if value else "false"
    if kind == "Money":
        return f"¥{value}"
    if kind == "Text":
        return _string_literal(str(value))
    return str(value)


def _prec(e: IR) -> int:
    kind = e.get("expr")
    if kind == "binary":
        return _BINARY_PREC.get(str(e.get("op")), _OR)
    if kind == "unary":
        return _NOT if e.get("op") == "not" else _UNARY
    if kind in ("field", "index", "payload", "last_payload", "enum"):
        return _POSTFIX
    return _ATOM


def _wrap(e: IR, need: int) -> str:
    """``e`` as an operand that must bind at least as tightly as ``need``."""
    text = expr_text(e)
    return f"({text})" if _prec(e) < need else text


def expr_text(expr: IR | None) -> str:
    """An IR expression printed back in source syntax, with parentheses only
    where the grammar needs them (and around the operand of ``not`` when it is
    an operation, for the reader's sake)."""
    if not isinstance(expr, Mapping):
        return "?"
    e = expr
    kind = e.get("expr")
    if kind == "literal":
        return _literal_text(e)
    if kind in ("var", "term", "role"):
        return str(e.get("name"))
    if kind == "event_date":
        return str(e.get("event"))
    if kind == "deadline_last_day":
        return str(e.get("deadline"))
    if kind == "legal_date":
        return f"({period_text(e.get('period'))} {e.get('direction')} {expr_text(e.get('anchor'))})"
    if kind in ("today", "now", "entering"):
        return str(kind)
    if kind == "rounding":
        return str(e.get("mode"))
    if kind == "enum":
        return f"{e.get('enum')}.{e.get('value')}"
    if kind in ("payload", "last_payload"):
        return f"{e.get('event')}.{e.get('field')}"
    if kind == "field":
        return f"{_wrap(e.get('of') or {}, _POSTFIX)}.{e.get('field')}"
    if kind == "index":
        return f"{_wrap(e.get('of') or {}, _POSTFIX)}[{expr_text(e.get('index'))}]"
    if kind == "call":
        args = ", ".join(expr_text(a) for a in e.get("args") or ())
        return f"{e.get('function')}({args})"
    if kind == "list":
        return "[" + ", ".join(expr_text(i) for i in e.get("items") or ()) + "]"
    if kind == "unary":
        operand: IR = e.get("operand") or {}
        if e.get("op") == "not":
            inner = expr_text(operand)
            return f"not ({inner})" if _prec(operand) < _POSTFIX else f"not {inner}"
        # ``-(-x)`` rather than ``--x``; ``-(a + b)``; ``-x.y`` needs none.
        need = _POSTFIX if operand.get("expr") == "unary" else _UNARY
        return f"-{_wrap(operand, need)}"
    if kind == "binary":
        op = str(e.get("op"))
        prec = _BINARY_PREC.get(op, _OR)
        left: IR = e.get("left") or {}
        right: IR = e.get("right") or {}
        # Comparisons do not chain; everything else is left-associative.
        left_need = prec + 1 if prec == _COMPARE else prec
        return f"{_wrap(left, left_need)} {op} {_wrap(right, prec + 1)}"
    return "?"


# --- timing --------------------------------------------------------------------

_UNITS = {
    "days": ("day", "days"),
    "working_days": ("working day", "working days"),
    "months": ("month", "months"),
    "years": ("year", "years"),
}


def period_text(period: IR | None) -> str:
    """``15 days``, ``1 working day``, ``n months``."""
    if not isinstance(period, Mapping):
        return "?"
    amount: IR = period.get("amount") or {}
    unit = str(period.get("unit"))
    singular, plural = _UNITS.get(unit, (unit, unit))
    one = amount.get("expr") == "literal" and amount.get("value") == 1
    return f"{_wrap(amount, _POSTFIX)} {singular if one else plural}"


def timing_text(timing: IR | None) -> str:
    """``15 days after served_on``, ``by due_date``,
    ``every 6 months after entering for 5 years``."""
    if not isinstance(timing, Mapping):
        return "?"
    kind = timing.get("kind")
    if kind == "by":
        return f"by {expr_text(timing.get('date'))}"
    if kind in ("after", "before"):
        return f"{period_text(timing.get('period'))} {kind} {expr_text(timing.get('anchor'))}"
    if kind == "every":
        text = f"every {period_text(timing.get('period'))} after {expr_text(timing.get('anchor'))}"
        if timing.get("limit") is not None:
            text += f" for {period_text(timing.get('limit'))}"
        return text
    return "?"


# --- paths through rule bodies ----------------------------------------------------


@dataclass(frozen=True)
class _Approval:
    action: str
    spec: IR


@dataclass(frozen=True)
class _Path:
    """Where one way through a body has got to: conditions taken, effects so far."""

    conds: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    approvals: tuple[_Approval, ...] = ()

    def cond(self, text: str) -> _Path:
        return _Path((*self.conds, text), self.actions, self.approvals)


_OUTCOMES = (
    ("on_approved", "approved by {role}"),
    ("on_rejected", "rejected by {role}"),
    ("on_timeout", "timeout of approval by {role}"),
)


def _not(e: IR) -> IR:
    return {"expr": "unary", "op": "not", "operand": e}


def _all_of(items: Sequence[IR]) -> IR:
    out = items[0]
    for item in items[1:]:
        out = {"expr": "binary", "op": "and", "left": out, "right": item}
    return out


def _any_of(items: Sequence[IR]) -> IR:
    out = items[0]
    for item in items[1:]:
        out = {"expr": "binary", "op": "or", "left": out, "right": item}
    return out


def _falls_through(conds: Sequence[IR], taken: Sequence[int]) -> IR:
    """When an if carries on with one of the branches ``taken`` (indexes into
    ``conds``; ``len(conds)`` is the else): ``c1 or not c2`` and the like.
    Branch ``k`` is taken when ``ck`` holds and no earlier condition does; a
    ``not cj`` is left out when branch ``j`` is itself one of ``taken``
    (``a or (not a and b)`` is ``a or b``)."""
    alternatives = []
    for k in taken:
        parts = [_not(conds[j]) for j in range(k) if j not in taken]
        if k < len(conds):
            parts.append(conds[k])
        alternatives.append(_all_of(parts))
    return _any_of(alternatives)


def _merge(base: _Path, falls: list[tuple[int, _Path]], conds: Sequence[IR]) -> _Path | None:
    """Join the branches of an if that carry on after it into one path."""
    if not falls:
        return None
    if len(falls) == 1:
        return falls[0][1]
    taken = [k for k, _ in falls]
    n = len(conds)
    out = base
    if taken != list(range(n + 1)):
        first = taken[0]
        if first > 0 and taken == list(range(first, n + 1)):
            out = out.cond(expr_text(_all_of([_not(c) for c in conds[:first]])))
        else:
            out = out.cond(expr_text(_falls_through(conds, taken)))
    extras = [p.actions[len(base.actions):] for _, p in falls]
    actions = list(base.actions)
    if all(x == extras[0] for x in extras):
        actions.extend(extras[0])
    else:
        for extra in extras:
            for a in extra:
                marked = a if a.endswith("?") else a + "?"
                if marked not in actions[len(base.actions):]:
                    actions.append(marked)
    approvals = list(base.approvals)
    for _, p in falls:
        for ap in p.approvals:
            if not any(ap is seen for seen in approvals):
                approvals.append(ap)
    return _Path(out.conds, tuple(actions), tuple(approvals))


def _walk(
    stmts: Iterable[IR], cur: _Path | None
) -> tuple[list[tuple[_Path, str]], _Path | None]:
    """Paths through ``stmts`` from ``cur``: those ending in a goto (with the
    target), and at most one that falls off the end."""
    ended: list[tuple[_Path, str]] = []
    for stmt in stmts:
        if cur is None:
            break
        if not isinstance(stmt, Mapping):
            continue
        kind = stmt.get("stmt")
        if kind == "goto":
            ended.append((cur, str(stmt.get("state"))))
            cur = None
        elif kind == "do":
            action = str(stmt.get("action"))
            approval = stmt.get("approval")
            if isinstance(approval, Mapping):
                label = f"{action}✔{approval.get('role')}"
                cur = _Path(cur.conds, (*cur.actions, label),
                            (*cur.approvals, _Approval(action, approval)))
            else:
                cur = _Path(cur.conds, (*cur.actions, action), cur.approvals)
        elif kind in ("suspend", "resume", "restart"):
            cur = _Path(cur.conds, (*cur.actions, f"{kind} {stmt.get('deadline')}"),
                        cur.approvals)
        elif kind == "if":
            branches = list(stmt.get("branches") or ())
            conds: list[IR] = [b.get("condition") or {} for b in branches]
            falls: list[tuple[int, _Path]] = []
            for k, branch in enumerate(branches):
                piece = expr_text(conds[k]) if k == 0 else f"else if {expr_text(conds[k])}"
                got, fall = _walk(branch.get("body") or (), cur.cond(piece))
                ended.extend(got)
                if fall is not None:
                    falls.append((k, fall))
            otherwise = stmt.get("otherwise")
            if otherwise is None:
                if conds:
                    piece = expr_text(_all_of([_not(c) for c in conds]))
                    falls.append((len(conds), cur.cond(piece)))
                else:
                    falls.append((0, cur))
            else:
                got, fall = _walk(otherwise, cur.cond("else"))
                ended.extend(got)
                if fall is not None:
                    falls.append((len(conds), fall))
            cur = _merge(cur, falls, conds)
        # ``set`` changes no state and does nothing outside: not drawn.
    return ended, cur


def _mappings(items: Any) -> list[IR]:
    """The objects in a JSON array (nothing for a missing or malformed one)."""
    if not isinstance(items, list | tuple):
        return []
    return [i for i in items if isinstance(i, Mapping)]


# --- edges ---------------------------------------------------------------------


@dataclass(frozen=True)
class Edge:
    """One arrow: from a state to a state (the same one for "(stays)")."""

    source: str
    target: str
    label: str
    stays: bool = False


def _label(head: str, path: _Path, stays: bool) -> str:
    parts = [head, *(f"[{c}]" for c in path.conds)]
    if path.actions:
        parts.append("/ " + ", ".join(path.actions))
    if stays:
        parts.append("(stays)")
    return " ".join(parts)


def _body_edges(head: str, origin: str, body: Iterable[IR], states: Sequence[str],
                start: _Path, out: list[Edge]) -> None:
    ended, fall = _walk(body, start)
    finished: list[tuple[_Path, list[str]]] = []
    for path, target in ended:
        for source in states:
            out.append(Edge(source, target, _label(head, path, False)))
        finished.append((path, [target]))
    if fall is not None and fall.actions:
        for source in states:
            out.append(Edge(source, source, _label(head, fall, True), stays=True))
        finished.append((fall, list(states)))
    for path, where in finished:
        for ap in path.approvals:
            role = ap.spec.get("role")
            for key, text in _OUTCOMES:
                branch = ap.spec.get(key) or ()
                sub_head = f"{text.format(role=role)} ({origin} → {ap.action})"
                _body_edges(sub_head, origin, branch, where, _Path(), out)


def contract_edges(contract: IR) -> list[Edge]:
    """Every edge of a contract, transitions first then deadlines, each in
    source order; exact duplicates (same ends and label) appear once."""
    out: list[Edge] = []
    for t in _mappings(contract.get("transitions")):
        event = str(t.get("event"))
        start = _Path()
        if t.get("guard") is not None:
            start = start.cond(expr_text(t.get("guard")))
        _body_edges(event, event, t.get("body") or (), [str(s) for s in t.get("states") or ()],
                    start, out)
    for d in _mappings(contract.get("deadlines")):
        name = str(d.get("name"))
        head = f"⏰ {name} ({timing_text(d.get('timing'))})"
        _body_edges(head, f"⏰ {name}", d.get("body") or (),
                    [str(s) for s in d.get("states") or ()], _Path(), out)
    unique: dict[Edge, None] = {}
    for edge in out:
        unique.setdefault(edge, None)
    return list(unique)


# --- states ----------------------------------------------------------------------


def state_label(state: IR) -> str:
    """``履行中 (performing)``, or just the name when there is no title."""
    name = str(state.get("name"))
    title = state.get("title")
    if title and title != name:
        return f"{title} ({name})"
    return name


def state_ids(contract: IR, edges: Sequence[Edge] = ()) -> dict[str, str]:
    """State name -> safe id ``s0``, ``s1``... in declaration order (names
    only seen as edge ends, which a checked contract never has, come last)."""
    ids: dict[str, str] = {}
    for state in _mappings(contract.get("states")):
        ids.setdefault(str(state.get("name")), f"s{len(ids)}")
    for edge in edges:
        for name in (edge.source, edge.target):
            ids.setdefault(name, f"s{len(ids)}")
    return ids


def _states(contract: IR) -> list[IR]:
    return _mappings(contract.get("states"))


# --- Mermaid ---------------------------------------------------------------------

# Mermaid has no quoting inside labels, only entity codes (``#59;``), decoded
# when the diagram is drawn.  Escaped: what ends a statement (``;``) or, in
# older Mermaid, a label (``:``); what starts an entity code (``#``, ``&``); a
# ``<`` that could open an HTML tag; and, in state descriptions, the quote.
# ``>``, ``<=`` and ``a < b`` are left as written, for people reading the text.
_MERMAID_ENTITIES = {"#": "#35;", ";": "#59;", ":": "#58;", "&": "#amp;", '"': "#quot;"}


def _mermaid_text(text: str, quoted: bool = False) -> str:
    out = []
    for i, ch in enumerate(text):
        if ch == '"' and not quoted:
            out.append(ch)
        elif ch in _MERMAID_ENTITIES:
            out.append(_MERMAID_ENTITIES[ch])
        elif ch == "<":
            after = text[i + 1 : i + 2]
            out.append(ch if after in (" ", "=") else "#lt;")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:  # newlines, tabs, controls
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def to_mermaid(contract: IR) -> str:
    """A Mermaid ``stateDiagram-v2`` of one contract (ends with a newline)."""
    edges = contract_edges(contract)
    ids = state_ids(contract, edges)
    lines = ["stateDiagram-v2"]
    declared = set()
    for state in _states(contract):
        name = str(state.get("name"))
        declared.add(name)
        lines.append(f'    state "{_mermaid_text(state_label(state), quoted=True)}" as {ids[name]}')
    for name, sid in ids.items():
        if name not in declared:
            lines.append(f'    state "{_mermaid_text(name, quoted=True)}" as {sid}')
    for state in _states(contract):
        if state.get("initial"):
            lines.append(f"    [*] --> {ids[str(state.get('name'))]}")
    for edge in edges:
        lines.append(f"    {ids[edge.source]} --> {ids[edge.target]} : "
                     f"{_mermaid_text(edge.label)}")
    for state in _states(contract):
        if state.get("terminal"):
            lines.append(f"    {ids[str(state.get('name'))]} --> [*]")
    return "\n".join(lines) + "\n"


def to_mermaid_all(contracts: Sequence[IR]) -> str:
    """Several contracts: one diagram each, after a ``%% contract NAME`` line,
    separated by blank lines.  One contract is just :func:`to_mermaid`."""
    if len(contracts) == 1:
        return to_mermaid(contracts[0])
    return "\n".join(
        f"%% contract {_mermaid_text(str(c.get('name')))}\n{to_mermaid(c)}" for c in contracts
    )


# --- Graphviz --------------------------------------------------------------------


def _dot_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(" ")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _contract_title(contract: IR) -> str:
    name = str(contract.get("name"))
    title = contract.get("title")
    version = contract.get("version")
    text = f"{title} ({name})" if title and title != name else name
    return f"{text} v{version}" if version else text


def _dot_lines(contract: IR, prefix: str, indent: str) -> list[str]:
    edges = contract_edges(contract)
    ids = {name: prefix + sid for name, sid in state_ids(contract, edges).items()}
    start = f"{prefix}start"
    lines = [
        f"{indent}{start} [shape=point, width=0.15, label=\"\"];",
    ]
    declared = set()
    for state in _states(contract):
        name = str(state.get("name"))
        declared.add(name)
        attrs = [f"label={_dot_string(state_label(state))}"]
        if state.get("terminal"):
            attrs.append("shape=doublecircle")
        if state.get("initial"):
            attrs.append('style="rounded,bold"' if not state.get("terminal") else "style=bold")
        lines.append(f"{indent}{ids[name]} [{', '.join(attrs)}];")
    for name, sid in ids.items():
        if name not in declared:
            lines.append(f"{indent}{sid} [label={_dot_string(name)}, style=dashed];")
    for state in _states(contract):
        if state.get("initial"):
            lines.append(f"{indent}{start} -> {ids[str(state.get('name'))]};")
    for edge in edges:
        attrs = [f"label={_dot_string(edge.label)}"]
        if edge.stays:
            attrs.append("style=dashed")
        lines.append(f"{indent}{ids[edge.source]} -> {ids[edge.target]} [{', '.join(attrs)}];")
    return lines


_DOT_DEFAULTS = [
    'node [shape=box, style=rounded, fontname="sans-serif"];',
    'edge [fontname="sans-serif", fontsize=10];',
]


def to_dot(contract: IR) -> str:
    """A Graphviz digraph of one contract (UTF-8 text, ends with a newline)."""
    lines = [
        f"digraph {_dot_string(str(contract.get('name')))} {{",
        f"  graph [label={_dot_string(_contract_title(contract))}, labelloc=t, "
        'charset="UTF-8", fontname="sans-serif"];',
        *("  " + d for d in _DOT_DEFAULTS),
        *_dot_lines(contract, "", "  "),
        "}",
    ]
    return "\n".join(lines) + "\n"


def to_dot_all(contracts: Sequence[IR]) -> str:
    """Several contracts: one digraph with a cluster per contract (node ids
    ``c0_s0``...), so ``dot -Tsvg`` draws them side by side in one picture.
    One contract is just :func:`to_dot`."""
    if len(contracts) == 1:
        return to_dot(contracts[0])
    lines = ["digraph jrule {", '  graph [charset="UTF-8", fontname="sans-serif"];',
             *("  " + d for d in _DOT_DEFAULTS)]
    for i, contract in enumerate(contracts):
        lines.append(f"  subgraph cluster_{i} {{")
        lines.append(f"    graph [label={_dot_string(_contract_title(contract))}, labelloc=t];")
        lines.extend(_dot_lines(contract, f"c{i}_", "    "))
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"
