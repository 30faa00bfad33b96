"""The types of the .jrule language and the rules that combine them.

No floats exist in the language: Int, Decimal and Money are exact.  Money
times a Decimal (or Money divided by anything) is an *unrounded amount*
(``Amount``): it cannot be stored, compared or passed on until ``round`` says
how fen are rounded, so no rounding ever happens silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "AMOUNT",
    "ANY",
    "BOOL",
    "DATE",
    "DATETIME",
    "DECIMAL",
    "ERROR",
    "INT",
    "MONEY",
    "PRIMITIVES",
    "ROLE",
    "TEXT",
    "Type",
    "assignable",
    "comparable",
    "list_of",
    "ordered",
]

TypeKind = Literal["prim", "enum", "record", "list", "amount", "any", "error"]


@dataclass(frozen=True, slots=True)
class Type:
    kind: TypeKind
    name: str
    args: tuple[Type, ...] = ()

    def __str__(self) -> str:
        if self.kind == "list":
            return f"List[{self.args[0]}]"
        if self.kind == "amount":
            return "unrounded Money"
        return self.name

    @property
    def element(self) -> Type:
        return self.args[0] if self.kind == "list" else ERROR

    def to_ir(self) -> str:
        """The type's name in the IR (``Money``, ``List[Instalment]``)."""
        return str(self) if self.kind != "amount" else "Amount"


MONEY = Type("prim", "Money")
DECIMAL = Type("prim", "Decimal")
INT = Type("prim", "Int")
BOOL = Type("prim", "Bool")
TEXT = Type("prim", "Text")
DATE = Type("prim", "Date")
DATETIME = Type("prim", "DateTime")
ROLE = Type("prim", "Role")
AMOUNT = Type("amount", "Amount")
#: The element type of an empty list literal: fits any list.
ANY = Type("any", "Any")
#: The type of an expression that already has an error: silences follow-on errors.
ERROR = Type("error", "?")

PRIMITIVES: dict[str, Type] = {
    t.name: t for t in (MONEY, DECIMAL, INT, BOOL, TEXT, DATE, DATETIME, ROLE)
}


def list_of(element: Type) -> Type:
    return Type("list", "List", (element,))


def _is_error(t: Type) -> bool:
    return t.kind == "error"


def assignable(target: Type, value: Type) -> bool:
    """May a value of type ``value`` be stored where ``target`` is expected?"""
    if _is_error(target) or _is_error(value):
        return True
    if target == value:
        return True
    if target == DECIMAL and value == INT:
        return True
    if target.kind == "list" and value.kind == "list":
        return value.element.kind == "any" or assignable(target.element, value.element)
    return False


_NUMERIC = {INT, DECIMAL}


def comparable(a: Type, b: Type) -> bool:
    """May ``a == b`` be asked?  (Same type, or Int with Decimal.)"""
    if _is_error(a) or _is_error(b):
        return True
    if a.kind == "amount" or b.kind == "amount":
        return False
    if a in _NUMERIC and b in _NUMERIC:
        return True
    return assignable(a, b) or assignable(b, a)


def ordered(t: Type) -> bool:
    """Does ``<`` make sense for values of this type?"""
    return t in (MONEY, DECIMAL, INT, DATE, DATETIME) or _is_error(t)
