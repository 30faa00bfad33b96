"""One generated function per grammar rule for the fast LALR driver's reductions.

Lark reduces a rule through a chain of small objects: a child filter (which
splices the children of ``_``-rules such as ``member*`` and inserts ``None``
for a missing ``[optional]``), maybe ``ExpandSingleChild`` (``?rule``), and
the user callback, here an adapter of :mod:`rules_dsl.to_ast` that works out
the rule's span from its first and last child, drops keyword and punctuation
tokens, and calls the ``_ToAst`` method.  For each rule this module writes
that chain out as one function, with everything known from the rule's
expansion decided when the code is generated: which children are tokens
(their position is read directly), which tokens are dropped, where the
``None`` go.  Children that come from other rules are handled as the adapter
handles them (``_first_pos``, ``_last_pos``, the same conversions).

Rules whose chain has a shape not listed here keep Lark's callback, and rules
whose children are spliced call the adapter itself on the filtered children,
so anything unusual runs Lark's or to_ast's own code.  The adapter's code is
fingerprinted (:data:`ADAPTER_FINGERPRINT`): if ``to_ast`` changes how it
builds spans or filters children, nothing is specialised until the
generated code has been checked against it again
(``tests/rules_dsl/test_lalr_driver.py`` fails to say so).

Generating is cheap; compiling the generated module is not (~0.1 s), so the
code object is kept in the grammar cache folder (marshal, keyed by the hash
of the source and the Python version).
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from types import CodeType, MethodType
from typing import Any

import lark
from lark.parse_tree_builder import (
    ChildFilterLALR,
    ChildFilterLALR_NoPlaceholders,
    ExpandSingleChild,
)

from rules_dsl import to_ast

__all__ = ["ADAPTER_FINGERPRINT", "adapter_fingerprint", "specialise"]

#: The fingerprint of to_ast's adapter code the generated functions copy.
ADAPTER_FINGERPRINT = "bcd6df1862051ca7"


def _code_shape(code: CodeType) -> tuple[Any, ...]:
    consts = tuple(_code_shape(c) if isinstance(c, CodeType) else repr(c)
                   for c in code.co_consts)
    return (code.co_name, code.co_names, code.co_varnames, code.co_freevars, consts)


def adapter_fingerprint() -> str:
    """A hash of what the adapter does (names, constants and nested code of
    ``_adapter``, ``_first_pos``, ``_last_pos``, ``_span`` and the kept terminals)."""
    shapes = [_code_shape(f.__code__) for f in (
        to_ast._adapter, to_ast._first_pos, to_ast._last_pos, to_ast._ToAst._span)]
    text = repr((shapes, sorted(to_ast._KEEP)))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class _Splice:
    """The value of a ``_``-rule (``member*``): only ever spliced into its parent,
    which reads ``children`` (as it would of Lark's ``Tree``)."""

    __slots__ = ("children",)


class _FastMeta:
    """The position the ``_ToAst`` methods read (``_span``), as ``to_ast._Meta``."""

    __slots__ = ("column", "end_column", "end_line", "end_pos", "line", "start_pos")
    empty = False


def _fix_into(kept: list[Any], value: Any) -> None:
    """The adapter's treatment of one child that is not a plain AST value."""
    if isinstance(value, lark.Token):
        if value.type in to_ast._KEEP:
            kept.append(value)
    elif isinstance(value, to_ast._SpannedStr):
        kept.append(str(value))
    elif isinstance(value, to_ast._SpannedTuple):
        kept.append(tuple(value))
    elif isinstance(value, to_ast._Paren):
        kept.append(value.expr)
    else:  # pragma: no cover - _ODD holds exactly the classes above
        kept.append(value)


_ODD = frozenset({lark.Token, to_ast._SpannedStr, to_ast._SpannedTuple, to_ast._Paren})


class _Gen:
    """Source text of one rule's function."""

    def __init__(self, name: str) -> None:
        self.lines = [f"def {name}(ch):"]
        self.depth = 1

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)


def _first_code(gen: _Gen, elems: list[tuple[str, int, str]], var: str, last: bool) -> None:
    """Code setting ``var`` to the (line, column, offset) the adapter finds:
    of the first (or last) child that has a position, else None."""
    order = list(reversed(elems)) if last else elems
    opened = 0
    for kind, i, _name in order:
        if kind == "none":
            continue
        if kind == "t":
            if last:
                gen.emit(f"{var} = (c{i}.end_line, c{i}.end_column, c{i}.end_pos)")
            else:
                gen.emit(f"{var} = (c{i}.line, c{i}.column, c{i}.start_pos)")
            break
        gen.emit(f"{var} = {'last_pos' if last else 'first_pos'}(c{i})")
        gen.emit(f"if {var} is None:")
        gen.depth += 1
        opened += 1
    else:
        gen.emit(f"{var} = None")
    gen.depth -= opened


def _rule_source(fname: str, rule: Any, chain: tuple[Any, ...]) -> str | None:
    """The function for one rule, or None to keep Lark's callback."""
    filt, append_none, expand1, user = chain
    n = len(rule.expansion)
    syms = [(("t" if s.is_term else "n"), i, s.name) for i, s in enumerate(rule.expansion)]
    elems: list[tuple[str, int, str]] = []
    splices = False
    if filt is None:
        elems = list(syms)
    else:
        for i, expand, nones in filt:
            elems.extend([("none", -1, "")] * nones)
            if expand:
                elems.append(("splice", i, ""))
                splices = True
            else:
                elems.append(syms[i])
        elems.extend([("none", -1, "")] * append_none)
    gen = _Gen(fname)
    if n == 1:
        gen.emit("c0 = ch[0]")
    elif n:
        gen.emit(", ".join(f"c{i}" for i in range(n)) + " = ch")
    if splices:
        # Lark's ChildFilterLALR, step by step (it reuses a leading spliced list)
        started = False
        for kind, i, _name in elems:
            if kind == "splice":
                if started:
                    gen.emit(f"f += c{i}.children")
                else:
                    gen.emit(f"f = c{i}.children")
                    started = True
            else:
                value = "None" if kind == "none" else f"c{i}"
                gen.emit(f"f.append({value})" if started else f"f = [{value}]")
                started = True
        if not started:
            gen.emit("f = []")
        if expand1:
            gen.emit("if len(f) == 1:")
            gen.emit("    return f[0]")
        if user[0] == "splice":
            gen.emit("s = new(Splice)")
            gen.emit("s.children = f")
            gen.emit("return s")
        else:  # the adapter itself, on the filtered children
            gen.emit(f"return {user[1]}(f)")
        return "\n".join(gen.lines)
    if expand1 and len(elems) == 1:
        kind, i, _name = elems[0]
        gen.emit("return None" if kind == "none" else f"return c{i}")
        return "\n".join(gen.lines)
    listed = ", ".join("None" if k == "none" else f"c{i}" for k, i, _ in elems)
    if user[0] == "splice":
        gen.emit("s = new(Splice)")
        gen.emit(f"s.children = [{listed}]")
        gen.emit("return s")
        return "\n".join(gen.lines)
    # the adapter, written out: span from the first and last positioned child
    _first_code(gen, elems, "a", last=False)
    _first_code(gen, elems, "b", last=True)
    gen.emit("if a is None or b is None:")
    gen.emit("    m = EMPTY")
    gen.emit("else:")
    gen.emit("    m = new(Meta)")
    gen.emit("    m.line, m.column, m.start_pos = a")
    gen.emit("    m.end_line, m.end_column, m.end_pos = b")
    # kept children: tokens of KEEP terminals, None, converted rule values
    gen.emit("k = []")
    for kind, i, name in elems:
        if kind == "none":
            gen.emit("k.append(None)")
        elif kind == "t":
            if name in to_ast._KEEP:
                gen.emit(f"k.append(c{i})")
        else:
            gen.emit(f"if c{i}.__class__ in ODD:")
            gen.emit(f"    fix(k, c{i})")
            gen.emit("else:")
            gen.emit(f"    k.append(c{i})")
    gen.emit(f"return {user[2]}(current(), m, k)")
    return "\n".join(gen.lines)


def _chain(callback: Any, transformer: Any) -> tuple[Any, ...] | None:
    """(filter, nones at the end, expand1, user) of Lark's callback, or None."""
    filt = None
    append_none = 0
    f = callback
    if type(f) is ChildFilterLALR:
        filt = list(f.to_include)
        append_none = f.append_none
        f = f.node_builder
    elif type(f) is ChildFilterLALR_NoPlaceholders:
        filt = [(i, expand, 0) for i, expand in f.to_include]
        f = f.node_builder
    expand1 = type(f) is ExpandSingleChild
    if expand1:
        f = f.node_builder
    if isinstance(f, MethodType) and f.__self__ is transformer:
        name = f.__func__.__name__
        if f.__func__.__qualname__ != "_adapter.<locals>.callback":
            return None
        member = vars(to_ast._ToAst).get(name)
        if member is None:
            return None
        return filt, append_none, expand1, ("adapter", f, getattr(member, "base_func", member))
    if (type(f) is partial and getattr(f.func, "__qualname__", "").endswith(
            "create_callback.<locals>.default_callback")
            and len(f.args) == 1 and str(f.args[0]).startswith("_")):
        return filt, append_none, expand1, ("splice",)
    return None


def _cache_file(source: str, folder: str | None) -> str | None:
    if folder is None:
        return None
    key = hashlib.sha256(f"{sys.version}\n{source}".encode()).hexdigest()[:16]
    return os.path.join(folder, f"reductions-{sys.implementation.cache_tag}-{key}.marshal")


def _compiled(source: str, folder: str | None) -> CodeType:
    path = _cache_file(source, folder)
    if path is not None:
        try:
            with open(path, "rb") as fh:
                code = marshal.load(fh)
            if isinstance(code, CodeType):
                return code
        except (OSError, ValueError, EOFError, TypeError):
            pass
    code = compile(source, "<jrule reductions>", "exec")
    if path is not None:
        try:
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path))
            with os.fdopen(fd, "wb") as fh:
                marshal.dump(code, fh)
            os.replace(tmp, path)
        except OSError:
            pass
    return code


def specialise(callbacks: dict[Any, Callable[[list[Any]], Any]], transformer: Any,
               cache_folder: str | None) -> dict[Any, Callable[[list[Any]], Any]]:
    """Generated functions for the rules this module understands (rule -> function);
    the others are left out (they keep Lark's callback)."""
    if adapter_fingerprint() != ADAPTER_FINGERPRINT:
        return {}
    namespace: dict[str, Any] = {
        "new": object.__new__, "Splice": _Splice, "Meta": _FastMeta,
        "EMPTY": to_ast._EMPTY_META, "ODD": _ODD, "fix": _fix_into,
        "first_pos": to_ast._first_pos, "last_pos": to_ast._last_pos,
        "current": to_ast._CURRENT.get,
    }
    parts: list[str] = []
    names: dict[Any, str] = {}
    for index, (rule, callback) in enumerate(callbacks.items()):
        chain = _chain(callback, transformer)
        if chain is None:
            continue
        user = chain[3]
        fname = f"r{index}"
        if user[0] == "adapter":
            namespace[f"a{index}"] = user[1]
            namespace[f"m{index}"] = user[2]
            chain = (*chain[:3], ("adapter", f"a{index}", f"m{index}"))
        source = _rule_source(fname, rule, chain)
        if source is None:
            continue
        parts.append(f"# {rule}\n{source}\n")
        names[rule] = fname
    code = _compiled("\n".join(parts), cache_folder)
    exec(code, namespace)
    return {rule: namespace[fname] for rule, fname in names.items()}
