"""Numbers read from URLs, in one place: database ids in paths and page numbers in query strings.

A number a database cannot hold (ids are 32-bit on PostgreSQL) or Python will not parse (over 4,300 digits) never
reaches a query: an id out of range is a 404 like any unknown id, a page out of range is the nearest one.
"""

from __future__ import annotations

from flask import request
from werkzeug.routing import IntegerConverter

MAX_DATABASE_ID = 2**31 - 1  # id columns are INTEGER: 32 bits on PostgreSQL (SQLite's hold 64)
MAX_PAGE = 1_000_000  # 50 million rows deep at 50 a page: beyond any list the portal holds


class DatabaseIdConverter(IntegerConverter):
    """``<id:name>``: 1 to 2^31-1 in ASCII digits without leading zeros; anything else does not match."""

    regex = r"[1-9][0-9]{0,9}"

    def __init__(self, map):
        super().__init__(map, min=1, max=MAX_DATABASE_ID)


def _ascii_digits(text: str | None) -> str | None:
    """``text`` without leading zeros when it is ASCII digits only ("" for zero), else None."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    return text.lstrip("0")


def bounded_int(text: str | None, low: int, high: int) -> int | None:
    """``text`` as an integer when it is ASCII digits from ``low`` to ``high``, else None (the length is
    checked first, so thousands of digits are never converted)."""
    digits = _ascii_digits(text)
    if digits is None or len(digits) > len(str(high)):
        return None
    value = int(digits or "0")
    return value if low <= value <= high else None


def page_number(name: str = "page") -> int:
    """The page asked for in the query string, from 1 to MAX_PAGE: a larger number is MAX_PAGE, anything
    else that is not a positive number is 1. Beyond the last page, each list does what it always did
    (most redirect to their last page)."""
    digits = _ascii_digits(request.args.get(name, "").strip())
    if not digits:
        return 1
    return MAX_PAGE if len(digits) > len(str(MAX_PAGE)) else min(int(digits), MAX_PAGE)
