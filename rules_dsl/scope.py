"""Splicing imported modules into a contract and building its symbol tables.

All declarations of a contract share one namespace (a state may not share its
name with a term), so a name always means one thing.  Imported members keep
the spans of the module file they were written in.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType

from contracts_lib.actions import BUILTIN_ENUMS
from rules_dsl import ast
from rules_dsl.ast import Span
from rules_dsl.diagnostics import Diagnostic, Label
from rules_dsl.types import PRIMITIVES

__all__ = [
    "BUILTIN_FUNCTIONS",
    "RESERVED_NAMES",
    "ROUNDING_MODES",
    "ContractScope",
    "EnumInfo",
    "LoadedModule",
    "ModuleLoader",
    "build_scope",
    "load_std_module",
    "std_module_names",
]

BUILTIN_FUNCTIONS = frozenset(
    {
        "min", "max", "count", "sum", "round", "delay_interest", "days_between",
        "text", "first", "last", "date",
    }
)
ROUNDING_MODES = ("half_up", "half_even", "down", "up")
#: The language's keywords: legal as field names after a dot, never as declared names.
KEYWORDS = frozenset(
    """contract module import role enum record term var state event on in when priority cite
    deadline by after before every for entering set do goto if else suspend resume restart
    approved within rejected timeout initial terminal version and or not true false day days
    working month months year years""".split()
)
RESERVED_NAMES = frozenset(
    {*PRIMITIVES, "List", *BUILTIN_FUNCTIONS, *ROUNDING_MODES, "today", "now", *KEYWORDS}
)


@dataclass(frozen=True, slots=True)
class LoadedModule:
    """A module found by an import: its AST and where its text came from."""

    decl: ast.ModuleDecl
    path: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


#: Finds a module by name, or returns None (the caller reports E103).
ModuleLoader = Callable[[str], "LoadedModule | list[Diagnostic] | None"]


@dataclass(frozen=True, slots=True)
class EnumInfo:
    name: str
    title: str | None
    variants: tuple[str, ...]
    span: Span | None  # None for the catalogue's built-in enums


@dataclass(frozen=True)
class ContractScope:
    """A contract with imports spliced in and every declaration indexed."""

    contract: ast.Contract
    members: tuple[ast.Member, ...]
    modules: tuple[LoadedModule, ...]
    roles: Mapping[str, ast.RoleDecl]
    enums: Mapping[str, EnumInfo]
    records: Mapping[str, ast.RecordDecl]
    terms: Mapping[str, ast.TermDecl]
    vars: Mapping[str, ast.VarDecl]
    states: Mapping[str, ast.StateDecl]
    events: Mapping[str, ast.EventDecl]
    deadlines: Mapping[str, ast.Deadline]
    transitions: tuple[ast.Transition, ...]
    deadline_list: tuple[ast.Deadline, ...]
    initial: str | None
    declared_at: Mapping[str, tuple[str, Span]] = field(default_factory=dict)

    def kind_of(self, name: str) -> str | None:
        entry = self.declared_at.get(name)
        return entry[0] if entry else None


def std_module_names() -> tuple[str, ...]:
    """Names of the standard modules shipped in ``contracts_lib/modules``."""
    folder = resources.files("contracts_lib") / "modules"
    return tuple(
        sorted(p.name[: -len(".jrule")] for p in folder.iterdir() if p.name.endswith(".jrule"))
    )


@functools.cache
def load_std_module(name: str) -> LoadedModule | list[Diagnostic] | None:
    """Load ``contracts_lib/modules/NAME.jrule`` (parsed once per process)."""
    from rules_dsl.syntax import parse_source

    resource = resources.files("contracts_lib") / "modules" / f"{name}.jrule"
    if not resource.is_file():
        return None
    text = resource.read_text(encoding="utf-8")
    path = f"std/{name}.jrule"
    source, diagnostics = parse_source(text, path)
    if source is None or any(d.severity == "error" for d in diagnostics):
        return list(diagnostics)
    for item in source.items:
        if isinstance(item, ast.ModuleDecl) and item.name.name == name:
            return LoadedModule(item, path, text)
    return None


_KIND_OF_MEMBER: dict[type, str] = {
    ast.RoleDecl: "role",
    ast.EnumDecl: "enum",
    ast.RecordDecl: "record",
    ast.TermDecl: "term",
    ast.VarDecl: "var",
    ast.StateDecl: "state",
    ast.EventDecl: "event",
    ast.Deadline: "deadline",
}


def _splice(
    members: tuple[ast.Member, ...],
    loader: ModuleLoader,
    diagnostics: list[Diagnostic],
    seen: tuple[str, ...],
    loaded: dict[str, LoadedModule],
) -> list[ast.Member]:
    out: list[ast.Member] = []
    for member in members:
        if not isinstance(member, ast.ImportDecl):
            out.append(member)
            continue
        name = member.module.name
        if name in seen:
            cycle = " -> ".join((*seen, name))
            diagnostics.append(
                Diagnostic("E103", f"modules import each other in a cycle: {cycle}", member.span)
            )
            continue
        if name in loaded:
            diagnostics.append(
                Diagnostic("E103", f"module `{name}` is imported twice", member.span)
            )
            continue
        found = loader(name)
        if isinstance(found, list):
            diagnostics.extend(found)
            diagnostics.append(
                Diagnostic("E103", f"module `{name}` has errors of its own", member.span)
            )
            continue
        if found is None:
            known = ", ".join(std_module_names()) or "none"
            diagnostics.append(
                Diagnostic(
                    "E103",
                    f"unknown module `{name}`",
                    member.module.span,
                    hint=f"modules in the standard library: {known}",
                )
            )
            continue
        loaded[name] = found
        out.extend(_splice(found.decl.members, loader, diagnostics, (*seen, name), loaded))
    return out


def build_scope(
    contract: ast.Contract, loader: ModuleLoader, diagnostics: list[Diagnostic]
) -> ContractScope:
    """Splice imports and index declarations; reports E102 and E103."""
    loaded: dict[str, LoadedModule] = {}
    members = tuple(_splice(contract.members, loader, diagnostics, (), loaded))
    declared_at: dict[str, tuple[str, Span]] = {}
    tables: dict[str, dict[str, object]] = {k: {} for k in _KIND_OF_MEMBER.values()}
    transitions: list[ast.Transition] = []
    deadline_list: list[ast.Deadline] = []

    for member in members:
        if isinstance(member, ast.Transition):
            transitions.append(member)
            continue
        if isinstance(member, ast.ImportDecl):  # pragma: no cover - spliced away
            continue
        kind = _KIND_OF_MEMBER[type(member)]
        ident: ast.Ident = member.name
        name = ident.name
        if name in RESERVED_NAMES or name in BUILTIN_ENUMS:
            diagnostics.append(
                Diagnostic(
                    "E102",
                    f"`{name}` is a keyword or built-in name and cannot be declared as a {kind}",
                    ident.span,
                    hint="choose another name",
                )
            )
            continue
        if name in declared_at:
            prev_kind, prev_span = declared_at[name]
            diagnostics.append(
                Diagnostic(
                    "E102",
                    f"`{name}` is already defined (as a {prev_kind})",
                    ident.span,
                    labels=(Label(prev_span, "first defined here"),),
                )
            )
            continue
        declared_at[name] = (kind, ident.span)
        tables[kind][name] = member
        if isinstance(member, ast.Deadline):
            deadline_list.append(member)

    enums: dict[str, EnumInfo] = {
        name: EnumInfo(name, spec.title, tuple(v for v, _ in spec.variants), None)
        for name, spec in BUILTIN_ENUMS.items()
    }
    for name, decl in tables["enum"].items():
        assert isinstance(decl, ast.EnumDecl)
        seen_variants: dict[str, Span] = {}
        for variant in decl.variants:
            if variant.name.name in seen_variants:
                diagnostics.append(
                    Diagnostic(
                        "E102",
                        f"`{variant.name.name}` appears twice in enum `{name}`",
                        variant.name.span,
                        labels=(Label(seen_variants[variant.name.name], "first here"),),
                    )
                )
            seen_variants.setdefault(variant.name.name, variant.name.span)
        enums[name] = EnumInfo(name, decl.title, tuple(seen_variants), decl.name.span)

    for kind, decls in (("record", tables["record"]), ("event", tables["event"])):
        for decl in decls.values():
            fields: tuple[ast.FieldDecl, ...] = decl.fields  # type: ignore[attr-defined]
            seen_fields: dict[str, Span] = {}
            for f in fields:
                if f.name.name in seen_fields:
                    diagnostics.append(
                        Diagnostic(
                            "E102",
                            f"field `{f.name.name}` appears twice in {kind} "
                            f"`{decl.name.name}`",  # type: ignore[attr-defined]
                            f.name.span,
                            labels=(Label(seen_fields[f.name.name], "first here"),),
                        )
                    )
                seen_fields.setdefault(f.name.name, f.name.span)

    initial = [s for s in tables["state"].values() if s.initial]  # type: ignore[attr-defined]
    initial_name = initial[0].name.name if len(initial) == 1 else None  # type: ignore[attr-defined]

    def frozen(kind: str) -> Mapping[str, object]:
        return MappingProxyType(dict(tables[kind]))

    return ContractScope(
        contract=contract,
        members=members,
        modules=tuple(loaded.values()),
        roles=frozen("role"),  # type: ignore[arg-type]
        enums=MappingProxyType(enums),
        records=frozen("record"),  # type: ignore[arg-type]
        terms=frozen("term"),  # type: ignore[arg-type]
        vars=frozen("var"),  # type: ignore[arg-type]
        states=frozen("state"),  # type: ignore[arg-type]
        events=frozen("event"),  # type: ignore[arg-type]
        deadlines=frozen("deadline"),  # type: ignore[arg-type]
        transitions=tuple(transitions),
        deadline_list=tuple(deadline_list),
        initial=initial_name,
        declared_at=MappingProxyType(declared_at),
    )
