"""Typed manual values: what a field's type makes of a value, for storing and for the package.

Numbers are stored and packaged as JSON numbers (an integer when the text has no fraction or exponent),
yes/no fields as booleans, dates as ISO strings (``YYYY-MM-DD``), every text with ``\\n`` line ends (a
textarea posts ``\\r\\n``). ``convert`` is the one rule: the upload service stores what it returns, and the
package builder applies it again to entries stored as strings before values were typed.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

TRUE_WORDS = frozenset({"true", "yes", "1", "on"})
FALSE_WORDS = frozenset({"false", "no", "0", "off"})


class NotConvertible(ValueError):
    """The value does not fit the field's type; ``problem`` names why (a key of ``manual_inputs.PROBLEMS``)."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise NotConvertible("number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotConvertible("finite")
        return value
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        raise NotConvertible("number") from None
    if not math.isfinite(number):
        raise NotConvertible("finite")
    if text.lstrip("+-").isdigit():
        return int(text)
    return number


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise NotConvertible("boolean")


def _date(value: Any) -> str:
    if not isinstance(value, str):
        raise NotConvertible("date")
    try:
        return date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise NotConvertible("date") from None


def normalise_text(value: str) -> str:
    """Line ends as ``\\n``: a browser posts a textarea's lines with ``\\r\\n``."""
    return value.replace("\r\n", "\n").replace("\r", "\n")


def convert(kind: str, value: Any) -> Any:
    """The stored form of a non-blank value of a field of type ``kind``; ``NotConvertible`` if it does not
    fit. Numbers and booleans may come as JSON values or as strings; every other type takes a string."""
    if kind == "number":
        return _number(value)
    if kind == "boolean":
        return _boolean(value)
    if not isinstance(value, str):
        raise NotConvertible("string")
    if kind == "date":
        return _date(value)
    return normalise_text(value)


def packaged(kind: str, value: Any) -> Any:
    """A stored value as the package holds it: entries stored as strings before values were typed are
    converted; a stored value that does not convert (it passed an older, looser check) stays as stored."""
    if value is None:
        return None
    try:
        return convert(kind, value)
    except NotConvertible:
        return value
