"""Stage 3: AST -> checked AST.  Reports *all* errors in one run.

The passes are data (:data:`PASSES`): each takes the contract's scope and the
run's :class:`CheckRun` and appends diagnostics.  The result,
:class:`CheckedFile`, holds one :class:`~rules_dsl.scope.ContractScope` per
contract; it is what :mod:`rules_dsl.to_ir` lowers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from rules_dsl import ast
from rules_dsl.check_structure import check_structure
from rules_dsl.check_tests import check_tests
from rules_dsl.check_types import ExprEnv, check_block, expect, infer, resolve_type
from rules_dsl.check_types import check_period as _check_period
from rules_dsl.diagnostics import Diagnostic, Label, has_errors
from rules_dsl.scope import ContractScope, LoadedModule, build_scope, load_std_module
from rules_dsl.types import BOOL, DATE

__all__ = ["PASSES", "CheckRun", "CheckedFile", "check_file"]


@dataclass
class CheckRun:
    """Mutable per-contract bookkeeping shared by the passes."""

    diagnostics: list[Diagnostic]
    used: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class CheckedFile:
    source: ast.SourceFile
    contracts: tuple[ContractScope, ...]
    diagnostics: tuple[Diagnostic, ...]
    #: every text involved (the file and the modules it imports), by path
    sources: Mapping[str, str]

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)


def _env(scope: ContractScope, run: CheckRun, **kw: object) -> ExprEnv:
    env = ExprEnv(scope, run.diagnostics, **kw)  # type: ignore[arg-type]
    env.used = run.used
    return env


def _pass_declarations(scope: ContractScope, run: CheckRun) -> None:
    """Types of terms, variables, fields; initial values."""
    sink = run.diagnostics
    for rec in scope.records.values():
        for f in rec.fields:
            resolve_type(f.type, scope, sink)
    for event in scope.events.values():
        for f in event.fields:
            resolve_type(f.type, scope, sink)
    for term in scope.terms.values():
        resolve_type(term.type, scope, sink)
    for var in scope.vars.values():
        want = resolve_type(var.type, scope, sink)
        env = _env(scope, run)
        expect(var.init, want, env, f"the initial value of `{var.name.name}`")
        for ref in _name_refs(var.init):
            if ref.name in scope.vars:
                sink.append(
                    Diagnostic(
                        "E101",
                        f"the initial value of `{var.name.name}` may use terms and literals, "
                        f"not the variable `{ref.name}`",
                        ref.span,
                    )
                )


def _name_refs(expr: ast.Expr) -> list[ast.NameRef]:
    out: list[ast.NameRef] = []
    todo: list[object] = [expr]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.NameRef):
            out.append(node)
        elif isinstance(node, ast.FieldAccess | ast.IndexAccess):
            todo.append(node.obj)
            if isinstance(node, ast.IndexAccess):
                todo.append(node.index)
        elif isinstance(node, ast.BinaryOp):
            todo += [node.left, node.right]
        elif isinstance(node, ast.UnaryOp):
            todo.append(node.operand)
        elif isinstance(node, ast.LegalDate):
            todo += [node.period.amount, node.anchor]
        elif isinstance(node, ast.FuncCall | ast.ListLit):
            todo += list(node.args if isinstance(node, ast.FuncCall) else node.items)
    return out


def _pass_transitions(scope: ContractScope, run: CheckRun) -> None:
    for t in scope.transitions:
        event = scope.events.get(t.event.name)
        env = _env(scope, run, event=event)
        if t.guard is not None:
            expect(t.guard, BOOL, env, "the condition after `when`")
        check_block(t.body, env)


def _pass_deadlines(scope: ContractScope, run: CheckRun) -> None:
    for d in scope.deadline_list:
        timing_env = _env(scope, run, in_timing=True)
        timing = d.timing
        if isinstance(timing, ast.TimingBy):
            expect(timing.date, DATE, timing_env, "the date after `by`")
        else:
            _check_period(timing.period, timing_env,
                          repeating=isinstance(timing, ast.TimingEvery))
            anchor = timing.anchor
            if not isinstance(anchor, ast.AnchorEntering):
                expect(anchor, DATE, timing_env, "the date a period counts from")
            if isinstance(timing, ast.TimingEvery) and timing.limit is not None:
                _check_period(timing.limit, timing_env)
            if isinstance(timing, ast.TimingEvery) and timing.period.unit == "working_days":
                run.diagnostics.append(
                    Diagnostic("E208", "a repeating deadline counts calendar days, months or "
                               "years, not working days", timing.period.span)
                )
        check_block(d.body, _env(scope, run))


def _pass_structure(scope: ContractScope, run: CheckRun) -> None:
    check_structure(scope, run.used, run.diagnostics)


#: The checker's passes, run in order on every contract.
PASSES: tuple[Callable[[ContractScope, CheckRun], None], ...] = (
    _pass_declarations,
    _pass_transitions,
    _pass_deadlines,
    _pass_structure,
)


def check_file(
    source: ast.SourceFile,
    text: str,
    std_loader: Callable[[str], LoadedModule | list[Diagnostic] | None] = load_std_module,
    base: tuple[ContractScope, ...] = (),
) -> CheckedFile:
    """Check every contract of a parsed file; collect all diagnostics.

    ``tests for NAME`` blocks are checked against the file's own contracts and
    ``base`` (the contracts of ``X.jrule`` when checking ``X.test.jrule``).
    """
    diagnostics: list[Diagnostic] = []
    local_modules: dict[str, ast.ModuleDecl] = {}
    first_item: dict[str, ast.Ident] = {}
    suites = [item for item in source.items if isinstance(item, ast.TestSuite)]
    for item in source.items:
        if isinstance(item, ast.TestSuite):
            continue
        ident = item.name
        if ident.name in first_item:
            diagnostics.append(
                Diagnostic(
                    "E102",
                    f"`{ident.name}` is already defined in this file",
                    ident.span,
                    labels=(Label(first_item[ident.name].span, "first defined here"),),
                )
            )
            continue
        first_item[ident.name] = ident
        if isinstance(item, ast.ModuleDecl):
            local_modules[ident.name] = item

    def loader(name: str) -> LoadedModule | list[Diagnostic] | None:
        if name in local_modules:
            return LoadedModule(local_modules[name], source.path, text)
        return std_loader(name)

    sources: dict[str, str] = {source.path: text}
    contracts: list[ContractScope] = []
    for item in source.items:
        if not isinstance(item, ast.Contract) or first_item[item.name.name] is not item.name:
            continue
        scope = build_scope(item, loader, diagnostics)
        for module in scope.modules:
            sources.setdefault(module.path, module.text)
        run = CheckRun(diagnostics)
        for check_pass in PASSES:
            check_pass(scope, run)
        contracts.append(scope)
    check_tests(suites, (*base, *contracts), diagnostics)
    if not source.items:
        diagnostics.append(
            Diagnostic("E311", "the file holds no contract", source.span,
                       hint='start with: contract NAME "title" version "1.0.0" { ... }',
                       severity="warning")
        )
    unique = sorted(set(diagnostics), key=Diagnostic.sort_key)
    return CheckedFile(source, tuple(contracts), tuple(unique), MappingProxyType(sources))


# re-exported for the IR lowering
infer_type = infer
