"""The shape of the state machine: reachability, dead ends, determinism.

Non-determinism is decided conservatively: two rules that could fire for the
same input in the same state are an error unless their guards are provably
disjoint (one says ``x`` and the other ``not x``; ``a >= b`` against
``a < b``; ``k == K.a`` against ``k == K.b``) or the author ordered them with
different ``priority`` values.
"""

from __future__ import annotations

from collections.abc import Iterator

from rules_dsl import ast
from rules_dsl.diagnostics import Diagnostic, Label
from rules_dsl.scope import ContractScope

__all__ = [
    "applicable_states",
    "check_structure",
    "goto_targets",
    "guards_disjoint",
    "may_goto",
]


def applicable_states(rule: ast.Transition | ast.Deadline, scope: ContractScope) -> list[str]:
    """The states a rule applies in; no ``in`` means every non-terminal state."""
    if rule.states:
        return [s.name for s in rule.states if s.name in scope.states]
    return [name for name, decl in scope.states.items() if not decl.terminal]


def _rules(scope: ContractScope) -> list[ast.Transition | ast.Deadline]:
    return [*scope.transitions, *scope.deadline_list]


def _walk(block: ast.Block) -> Iterator[ast.Stmt]:
    for stmt in block.stmts:
        yield stmt
        if isinstance(stmt, ast.IfStmt):
            for branch in stmt.branches:
                yield from _walk(branch.body)
            if stmt.otherwise is not None:
                yield from _walk(stmt.otherwise)
        elif isinstance(stmt, ast.DoStmt) and stmt.approval is not None:
            for ab in stmt.approval.branches:
                yield from _walk(ab.body)


def goto_targets(block: ast.Block) -> list[ast.GotoStmt]:
    return [s for s in _walk(block) if isinstance(s, ast.GotoStmt)]


def may_goto(block: ast.Block) -> bool:
    return bool(goto_targets(block))


def _set_targets(block: ast.Block) -> set[str]:
    return {s.target.name for s in _walk(block) if isinstance(s, ast.SetStmt)}


# --- guards --------------------------------------------------------------------

_RELATION: dict[str, frozenset[str]] = {
    "<": frozenset({"lt"}),
    "<=": frozenset({"lt", "eq"}),
    "==": frozenset({"eq"}),
    "!=": frozenset({"lt", "gt"}),
    ">": frozenset({"gt"}),
    ">=": frozenset({"gt", "eq"}),
}
_MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _conjuncts(expr: ast.Expr | None) -> list[ast.Expr]:
    if expr is None:
        return []
    if isinstance(expr, ast.BinaryOp) and expr.op == "and":
        return _conjuncts(expr.left) + _conjuncts(expr.right)
    return [expr]


def _is_constant(expr: ast.Expr) -> bool:
    return isinstance(
        expr,
        ast.IntLit | ast.DecimalLit | ast.MoneyLit | ast.DateLit | ast.StringLit | ast.BoolLit,
    ) or (isinstance(expr, ast.FieldAccess) and isinstance(expr.obj, ast.NameRef))


def _contradict(a: ast.Expr, b: ast.Expr) -> bool:
    if isinstance(a, ast.UnaryOp) and a.op == "not" and a.operand == b:
        return True
    if isinstance(b, ast.UnaryOp) and b.op == "not" and b.operand == a:
        return True
    if not (isinstance(a, ast.BinaryOp) and isinstance(b, ast.BinaryOp)):
        return False
    if a.op not in _RELATION or b.op not in _RELATION:
        return False
    b_op: str = b.op
    b_left, b_right = b.left, b.right
    if a.left == b.right and a.right == b.left and a.left != a.right:
        b_op, b_left, b_right = _MIRROR[b.op], b.right, b.left
    if a.left == b_left and a.right == b_right:
        return not (_RELATION[a.op] & _RELATION[b_op])
    # x == c1 against x == c2 with different constants
    if a.op == "==" and b.op == "==" and a.left == b.left:
        ra, rb = a.right, b.right
        if _is_constant(ra) and _is_constant(rb) and ra != rb:
            return type(ra) is type(rb)
    return False


def guards_disjoint(g1: ast.Expr | None, g2: ast.Expr | None) -> bool:
    """True only when no input can satisfy both guards (conservative)."""
    if g1 is not None and g2 is not None and _contradict(g1, g2):
        return True
    for a in _conjuncts(g1):
        for b in _conjuncts(g2):
            if _contradict(a, b):
                return True
    return False


def _ordered(p1: ast.IntLit | None, p2: ast.IntLit | None) -> bool:
    return p1 is not None and p2 is not None and p1.value != p2.value


# --- the passes ------------------------------------------------------------------


def _check_states(scope: ContractScope, out: list[Diagnostic]) -> None:
    initial = [s for s in scope.states.values() if s.initial]
    span = scope.contract.name.span
    if not scope.states:
        out.append(Diagnostic("E301", f"contract `{scope.contract.name.name}` has no states",
                              span, hint="declare states, one of them `initial`"))
    elif not initial:
        out.append(Diagnostic("E301", "no state is marked `initial`", span,
                              hint="mark the state a new case starts in: `state NAME initial`"))
    elif len(initial) > 1:
        out.append(
            Diagnostic(
                "E301",
                "more than one state is marked `initial`",
                initial[1].name.span,
                labels=tuple(Label(s.name.span, "also initial") for s in initial[:1]),
            )
        )
    for s in scope.states.values():
        if s.initial and s.terminal:
            out.append(Diagnostic("E301", f"state `{s.name.name}` cannot be both initial and "
                                  "terminal", s.name.span))


def _check_rule_states(scope: ContractScope, out: list[Diagnostic]) -> None:
    from rules_dsl.check_types import did_you_mean

    for rule in _rules(scope):
        for ident in rule.states:
            decl = scope.states.get(ident.name)
            if decl is None:
                out.append(Diagnostic("E106", f"unknown state `{ident.name}`", ident.span,
                                      hint=did_you_mean(ident.name, scope.states)))
            elif decl.terminal:
                what = "transition" if isinstance(rule, ast.Transition) else "deadline"
                out.append(
                    Diagnostic(
                        "E304",
                        f"`{ident.name}` is terminal: no {what} may run in it",
                        ident.span,
                        hint="remove `terminal` from the state, or the state from this rule",
                    )
                )


def _check_events(scope: ContractScope, out: list[Diagnostic]) -> None:
    from rules_dsl.check_types import did_you_mean

    used_events = {t.event.name for t in scope.transitions}
    for event in scope.events.values():
        if not event.by:
            out.append(
                Diagnostic(
                    "E306",
                    f"no role may submit event `{event.name.name}`",
                    event.name.span,
                    hint="say who submits it: `event NAME by ROLE, ROLE`",
                )
            )
        for role in event.by:
            if role.name not in scope.roles:
                out.append(Diagnostic("E108", f"unknown role `{role.name}`", role.span,
                                      hint=did_you_mean(role.name, scope.roles)))
        if event.name.name not in used_events:
            out.append(
                Diagnostic(
                    "W401",
                    f"event `{event.name.name}` has no transition: it will always be refused",
                    event.name.span,
                    severity="warning",
                )
            )
    for t in scope.transitions:
        if t.event.name not in scope.events:
            out.append(Diagnostic("E107", f"unknown event `{t.event.name}`", t.event.span,
                                  hint=did_you_mean(t.event.name, scope.events)))


def _check_gotos(block: ast.Block, out: list[Diagnostic], after_goto: bool = False) -> bool:
    """E309: nothing may follow a goto, and no path may goto twice.

    Returns whether every path through the block ends in a goto.
    """
    ended = after_goto
    for stmt in block.stmts:
        if ended:
            out.append(
                Diagnostic(
                    "E309",
                    "this statement comes after a `goto` on the same path and would never run",
                    stmt.span,
                    hint="put `goto` last",
                )
            )
            return True
        if isinstance(stmt, ast.GotoStmt):
            ended = True
        elif isinstance(stmt, ast.IfStmt):
            ends = [_check_gotos(b.body, out) for b in stmt.branches]
            if stmt.otherwise is not None:
                ends.append(_check_gotos(stmt.otherwise, out))
                ended = all(ends)
        elif isinstance(stmt, ast.DoStmt) and stmt.approval is not None:
            for branch in stmt.approval.branches:
                _check_gotos(branch.body, out)
    return ended


def _split_targets(block: ast.Block) -> tuple[set[str], set[str]]:
    """Goto targets of the rule itself, and of the approval blocks it starts."""
    own: set[str] = set()
    later: set[str] = set()

    def walk(b: ast.Block, in_approval: bool) -> None:
        for stmt in b.stmts:
            if isinstance(stmt, ast.GotoStmt):
                (later if in_approval else own).add(stmt.state.name)
            elif isinstance(stmt, ast.IfStmt):
                for branch in stmt.branches:
                    walk(branch.body, in_approval)
                if stmt.otherwise is not None:
                    walk(stmt.otherwise, in_approval)
            elif isinstance(stmt, ast.DoStmt) and stmt.approval is not None:
                for ab in stmt.approval.branches:
                    walk(ab.body, True)

    walk(block, False)
    return own, later


def _reachable(scope: ContractScope) -> tuple[set[str], dict[str, set[str]]]:
    """The state graph.  An approval's blocks run in the state the instance
    waits in after the requesting rule: one of its goto targets, or the rule's
    own state when a path has no goto (an over-approximation, which is safe
    for reachability)."""
    edges: dict[str, set[str]] = {name: set() for name in scope.states}
    for rule in _rules(scope):
        own, later = _split_targets(rule.body)
        own &= set(scope.states)
        later &= set(scope.states)
        states = applicable_states(rule, scope)
        for state in states:
            edges[state] |= own
        for waiting in {*states, *own}:
            if not scope.states[waiting].terminal:
                edges[waiting] |= later
    seen: set[str] = set()
    todo = [scope.initial] if scope.initial else []
    while todo:
        state = todo.pop()
        if state in seen:
            continue
        seen.add(state)
        todo.extend(sorted(edges.get(state, ())))
    return seen, edges


def _check_graph(scope: ContractScope, out: list[Diagnostic]) -> set[str]:
    reachable, edges = _reachable(scope)
    if scope.initial is None:
        return set(scope.states)
    for name, decl in scope.states.items():
        if name not in reachable:
            out.append(
                Diagnostic(
                    "E302",
                    f"state `{name}` can never be reached from `{scope.initial}`",
                    decl.name.span,
                    hint="add a transition or deadline that does `goto "
                    f"{name}`, or remove the state",
                )
            )
        elif not decl.terminal and not (edges[name] - {name}):
            out.append(
                Diagnostic(
                    "E303",
                    f"state `{name}` has no way out but is not terminal",
                    decl.name.span,
                    hint="mark it `terminal`, or add a transition or deadline that leaves it",
                )
            )
    return reachable


def _timing_refs(timing: ast.Timing) -> list[ast.NameRef]:
    """Every name a timing reads (anchors, dates, period lengths)."""
    found: list[ast.NameRef] = []
    todo: list[object] = [timing]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.NameRef):
            found.append(node)
        elif isinstance(node, tuple):
            todo.extend(node)
        elif hasattr(node, "__dataclass_fields__") and not isinstance(node, ast.Span):
            todo.extend(getattr(node, f) for f in node.__dataclass_fields__ if f != "span")
    return found


def _check_anchor_cycles(scope: ContractScope, out: list[Diagnostic]) -> None:
    """A deadline that counts from its own last day (directly or round a cycle)."""
    deps = {
        d.name.name: {r.name for r in _timing_refs(d.timing) if r.name in scope.deadlines}
        for d in scope.deadline_list
    }
    for d in scope.deadline_list:
        start = d.name.name
        seen: set[str] = set()
        todo = list(deps[start])
        while todo:
            name = todo.pop()
            if name == start:
                out.append(
                    Diagnostic(
                        "E305",
                        f"deadline `{start}` can never be armed: it counts from its own last "
                        "day" + ("" if start in deps[start] else " (through other deadlines)"),
                        d.timing.span,
                    )
                )
                break
            if name not in seen:
                seen.add(name)
                todo.extend(deps.get(name, ()))


def _check_deadlines(scope: ContractScope, reachable: set[str], out: list[Diagnostic]) -> None:
    _check_anchor_cycles(scope, out)
    events_with_transitions = {t.event.name for t in scope.transitions}
    for d in scope.deadline_list:
        states = [s.name for s in d.states if s.name in scope.states]
        live = [s for s in states if s in reachable and not scope.states[s].terminal]
        if states and not live:
            out.append(
                Diagnostic(
                    "E305",
                    f"deadline `{d.name.name}` can never be armed: none of its states can "
                    "be reached",
                    d.name.span,
                )
            )
            continue
        timing = d.timing
        if isinstance(timing, ast.TimingEvery) and timing.limit is not None:
            if _never_repeats(timing.period, timing.limit):
                out.append(
                    Diagnostic(
                        "E305",
                        f"deadline `{d.name.name}` can never fire: the repeat window is shorter "
                        "than one period",
                        timing.span,
                    )
                )
        anchor = getattr(timing, "anchor", None)
        event_name = None
        if isinstance(anchor, ast.NameRef) and anchor.name in scope.events:
            event_name = anchor.name
        elif (
            isinstance(anchor, ast.FieldAccess)
            and isinstance(anchor.obj, ast.NameRef)
            and anchor.obj.name in scope.events
        ):
            event_name = anchor.obj.name
        if event_name is not None and event_name not in events_with_transitions:
            out.append(
                Diagnostic(
                    "E305",
                    f"deadline `{d.name.name}` can never be armed: it counts from event "
                    f"`{event_name}`, which no transition accepts",
                    anchor.span if anchor is not None else d.span,
                )
            )


_DAYS_PER = {"days": 1, "working_days": 1, "months": 28, "years": 365}
_MAX_DAYS_PER = {"days": 1, "working_days": 3, "months": 31, "years": 366}


def _never_repeats(period: ast.Period, limit: ast.Period) -> bool:
    if not (isinstance(period.amount, ast.IntLit) and isinstance(limit.amount, ast.IntLit)):
        return False
    if period.unit == limit.unit:
        return limit.amount.value < period.amount.value
    shortest_period = period.amount.value * _DAYS_PER[period.unit]
    longest_limit = limit.amount.value * _MAX_DAYS_PER[limit.unit]
    return longest_limit < shortest_period


def _check_determinism(scope: ContractScope, out: list[Diagnostic]) -> None:
    by_event: dict[str, list[ast.Transition]] = {}
    for t in scope.transitions:
        by_event.setdefault(t.event.name, []).append(t)
    for event, rules in by_event.items():
        for i, a in enumerate(rules):
            states_a = set(applicable_states(a, scope))
            for b in rules[i + 1 :]:
                common = states_a & set(applicable_states(b, scope))
                if not common or _ordered(a.priority, b.priority):
                    continue
                if guards_disjoint(a.guard, b.guard):
                    continue
                state = sorted(common)[0]
                out.append(
                    Diagnostic(
                        "E307",
                        f"two transitions can fire on `{event}` in state `{state}`: "
                        "their conditions can both be true",
                        b.span.cover(b.event.span) if b.span.line == b.event.span.line
                        else b.event.span,
                        labels=(Label(a.event.span, "the other transition"),),
                        hint="make the conditions exclusive (`when x` / `when not x`) or "
                        "order them with `priority 1`, `priority 2`",
                    )
                )
    deadlines = scope.deadline_list
    for i, da in enumerate(deadlines):
        states_da = set(applicable_states(da, scope))
        for db in deadlines[i + 1 :]:
            common = states_da & set(applicable_states(db, scope))
            if not common or _ordered(da.priority, db.priority) or da.timing != db.timing:
                continue
            conflict = (may_goto(da.body) and may_goto(db.body)) or bool(
                _set_targets(da.body) & _set_targets(db.body)
            )
            if conflict:
                out.append(
                    Diagnostic(
                        "E308",
                        f"deadlines `{da.name.name}` and `{db.name.name}` fall due at the same "
                        f"moment in state `{sorted(common)[0]}` with conflicting effects",
                        db.name.span,
                        labels=(Label(da.name.span, "the other deadline"),),
                        hint="merge them, or order them with `priority 1`, `priority 2`",
                    )
                )


def _check_unused(scope: ContractScope, used: set[str], out: list[Diagnostic]) -> None:
    for kind, table in (("term", scope.terms), ("var", scope.vars)):
        for name, decl in table.items():
            if name not in used:
                out.append(
                    Diagnostic(
                        "W402",
                        f"{kind} `{name}` is never used",
                        decl.name.span,
                        severity="warning",
                    )
                )


def check_structure(scope: ContractScope, used: set[str], out: list[Diagnostic]) -> None:
    """Every structural check of one contract (after names and types)."""
    _check_states(scope, out)
    _check_rule_states(scope, out)
    _check_events(scope, out)
    for rule in _rules(scope):
        _check_gotos(rule.body, out)
    unknown_targets = any(
        g.state.name not in scope.states for rule in _rules(scope) for g in goto_targets(rule.body)
    )
    # An unknown goto target (E106) makes the graph meaningless; don't pile on.
    reachable = set(scope.states) if unknown_targets else _check_graph(scope, out)
    _check_deadlines(scope, reachable, out)
    _check_determinism(scope, out)
    _check_unused(scope, used, out)
