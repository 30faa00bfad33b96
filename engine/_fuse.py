"""Fused closures: one function for an expression node and its leaf operands.

:mod:`engine.program` turns every IR node into a closure.  Called naively, a
comparison such as ``已付 >= 累计应付`` costs three Python calls (the comparison
and one per variable).  :func:`fuse` builds the node as one function in which a
*leaf* operand (a constant, a variable, a term or a payload field) is read in
place (``f.vars[K0]``) and only other operands are called (``X0(f)``).  It
evaluates exactly what the naive closures evaluate, in the same order.

Only fixed text enters the generated source: the node's template (written in
:mod:`engine.program`) and the operand slots below.  Keys and values (names from
the rule set, literals) are bound as variables of the function's namespace,
never pasted into the source.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import CodeType
from typing import Any

__all__ = ["Leaf", "compile_function", "fuse"]

#: what a leaf operand reads: ("const", value) or (frame attribute, key), the
#: attribute being "vars", "terms" or "payload"
Leaf = tuple[str, Any]

_SOURCES = frozenset({"vars", "terms", "payload"})
_CODE: dict[str, CodeType] = {}  # compiled templates, by source text


def fuse(template: str, operands: Sequence[tuple[Callable[..., Any], Leaf | None]],
         env: Mapping[str, Any]) -> Callable[..., Any]:
    """Build ``fused`` from ``template``, the source of ``def fused(f): ...`` in which
    ``{0}``, ``{1}``... stand for the operands' values.

    Each operand is its closure and, for a leaf, what it reads (None otherwise).
    ``env`` binds the template's other names (``SPAN``, ``FAULT``...).
    """
    codes: list[str] = []
    names: dict[str, Any] = dict(env)
    for i, (closure, leaf) in enumerate(operands):
        if leaf is None:
            codes.append(f"X{i}(f)")
            names[f"X{i}"] = closure
        elif leaf[0] == "const":
            codes.append(f"K{i}")
            names[f"K{i}"] = leaf[1]
        else:
            if leaf[0] not in _SOURCES:
                raise ValueError(f"not a frame source: {leaf[0]!r}")
            codes.append(f"f.{leaf[0]}[K{i}]")
            names[f"K{i}"] = leaf[1]
    return compile_function(template.format(*codes), "fused", names)


def compile_function(source: str, name: str, env: dict[str, Any]) -> Callable[..., Any]:
    """The function ``name`` defined by ``source``, with ``env`` as its globals
    (generated text only: see the module docstring)."""
    code = _CODE.get(source)
    if code is None:
        code = _CODE[source] = compile(source, "<jrule fused>", "exec")
    exec(code, env)  # defines ``name`` in ``env`` (its globals)
    function: Callable[..., Any] = env[name]
    return function
