"""How the language's expressions bind, and how a text literal is written.

Shared by the two printers of the language: ``fmt`` (from the AST) and
``graph`` (from the IR), so both put parentheses and escapes the same way.
"""

from __future__ import annotations

import unicodedata

__all__ = [
    "AND", "ATOM", "BINARY_LEVEL", "COMPARE", "NOT", "OR", "POSTFIX", "PRODUCT", "SUM",
    "UNARY", "quote_string",
]

#: Binding strength, loosest first, as in jrule.lark: or, and, not, comparison,
#: + -, * /, unary -, postfix (. [] call) and atoms.
OR, AND, NOT, COMPARE, SUM, PRODUCT, UNARY, POSTFIX, ATOM = range(1, 10)

BINARY_LEVEL: dict[str, int] = {
    "or": OR,
    "and": AND,
    "==": COMPARE,
    "!=": COMPARE,
    "<": COMPARE,
    "<=": COMPARE,
    ">": COMPARE,
    ">=": COMPARE,
    "+": SUM,
    "-": SUM,
    "*": PRODUCT,
    "/": PRODUCT,
}

_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t"}


def quote_string(value: str) -> str:
    """A string literal that parses back to ``value``.

    Control characters and lone surrogates are written as ``\\uXXXX`` so the
    output is valid UTF-8 whose line structure the value cannot disturb.
    """
    out = ['"']
    for ch in value:
        short = _SHORT_ESCAPES.get(ch)
        if short is not None:
            out.append(short)
        elif unicodedata.category(ch) in ("Cc", "Cs"):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
