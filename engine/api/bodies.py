"""Request bodies: text must be valid Unicode.

JSON may carry escaped lone surrogates (``"\\ud800"``), which are not text: they
cannot be stored, hashed or signed as UTF-8.  Bodies refuse them up front
(422, naming where), so no such value reaches the engine.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, model_validator

__all__ = ["UnicodeModel"]


def _no_lone_surrogates(value: Any, where: str) -> None:
    """Text must be valid Unicode (JSON allows escaped lone surrogates; UTF-8 does not)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where}: text with a lone surrogate (not valid Unicode)") \
                from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_lone_surrogates(k, where)
            _no_lone_surrogates(v, f"{where}.{k}")
    elif isinstance(value, list):
        for n, v in enumerate(value):
            _no_lone_surrogates(v, f"{where}[{n}]")


class UnicodeModel(BaseModel):
    """A request body whose every string (keys included) is valid Unicode."""

    @model_validator(mode="after")
    def _valid_unicode(self) -> Any:
        _no_lone_surrogates(self.model_dump(), "body")
        return self


