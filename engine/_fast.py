"""Positional constructors for the engine's frozen dataclasses (the hot path of ``step``).

A frozen dataclass's generated ``__init__`` stores every field through
``object.__setattr__``, a slow generic call per field, which makes building an
:class:`engine.state.InstanceState` or an :class:`engine.explain.Explanation`
cost more than the rule that produced it.

:func:`positional` builds, once per class, a constructor taking every field
positionally, in declaration order.  It fills a mutable twin of the class (the
same ``__slots__``, so the same memory layout) with plain attribute stores, then
makes the object an instance of the frozen class by assigning ``__class__``.
The result is exactly what the class's own constructor returns: same type,
fields, equality, hash and repr, and frozen from then on.  Only for
``slots=True`` dataclasses without ``__post_init__``; each constructor is
checked against the class's own once, when it is built.
"""

from __future__ import annotations

import dataclasses
import keyword
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["positional"]

T = TypeVar("T")


def positional(cls: type[T]) -> Callable[..., T]:
    """``make(f1, f2, ...)`` == ``cls(f1, f2, ...)`` with every field given."""
    if not dataclasses.is_dataclass(cls) or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not a slots dataclass")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__")
    names = [f.name for f in dataclasses.fields(cls)]
    if tuple(names) != tuple(getattr(cls, "__slots__", ())) or any(
            not n.isidentifier() or keyword.iskeyword(n) for n in names):
        raise TypeError(f"{cls.__name__}: fields and slots differ")
    twin = type(f"_Mutable{cls.__name__}", (object,), {"__slots__": tuple(names)})
    params = ", ".join(names)
    stores = "".join(f"    o.{n} = {n}\n" for n in names)
    source = (f"def make_{cls.__name__}({params}):\n    o = _twin()\n{stores}"
              f"    o.__class__ = _cls\n    return o\n")
    namespace: dict[str, Any] = {"_twin": twin, "_cls": cls}
    exec(source, namespace)  # generated from the class's own field names (checked above)
    make: Callable[..., T] = namespace[f"make_{cls.__name__}"]
    make.__doc__ = f"{cls.__name__}({params}), all positional."
    probe = [object() for _ in names]
    made, expected = make(*probe), cls(*probe)
    if type(made) is not cls or any(
            getattr(made, n) is not getattr(expected, n) for n in names):
        raise TypeError(f"{cls.__name__}: the positional constructor does not match")
    return make
