"""Access-package exports: the exact JSON, one CSV per key, a self-contained HTML report, and a ZIP of all.

Pure functions of the package dict plus request metadata (no Flask request, no database), so the browser
downloads, the API and a future subject download link produce byte-for-byte the same files.

Decisions:
- A table's columns are the union of its rows' keys in first-seen order; a value missing from a row is
  shown like null.
- CSV files are UTF-8 with a byte-order mark (so spreadsheet programs read accents correctly) and
  CSV-injection safe: a *text* cell (header included) beginning with ``= + - @``, a tab or a carriage
  return is prefixed with a single quote. JSON numbers are written as they are: they cannot carry a
  formula, and quoting them would corrupt the data.
- The HTML report has inline CSS only: no scripts, no external links, fonts or images, and every value is
  HTML-escaped by the template engine's autoescaping. It works offline, as an e-mail attachment, or
  printed.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
REPORT_TEMPLATE = "reports/report.html"
NOTHING_FOUND = "Searched — nothing found"
CSV_INJECTION_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_UNSAFE_FILENAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")

Package = Mapping[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class ReportMeta:
    """What the exports say about the request (never the subject's identity)."""

    request_id: str
    policy: str
    completed_at: datetime | None
    generated_at: datetime


@dataclass(frozen=True)
class TableRow:
    values: list[Any]
    nothing_found: bool  # every value null: the system was searched and holds nothing


@dataclass(frozen=True)
class KeyTable:
    """One package key as a table: columns in order, one row per entry."""

    key: str
    columns: list[str]
    rows: list[TableRow]

    @property
    def manual(self) -> bool:
        """Automated keys are ``"<dataset>:<collection>"``; manual connection keys never contain ``:``."""
        return ":" not in self.key

    @property
    def nothing_found(self) -> bool:
        return all(row.nothing_found for row in self.rows)


# --- tables ----------------------------------------------------------------------------------------


def key_table(key: str, entries: Iterable[Mapping[str, Any]]) -> KeyTable:
    entries = list(entries or [])
    columns: list[str] = []
    seen: set[str] = set()
    for entry in entries:
        for column in entry:
            if column not in seen:
                seen.add(column)
                columns.append(column)
    rows = []
    for entry in entries:
        values = [entry.get(column) for column in columns]
        rows.append(TableRow(values, all(value is None for value in values)))
    return KeyTable(key, columns, rows)


def package_tables(package: Package) -> list[KeyTable]:
    return [key_table(key, entries) for key, entries in package.items()]


def display_value(value: Any) -> str | None:
    """A value as text (None stays None): booleans as true/false, nested values as compact JSON."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=False)


# --- JSON ------------------------------------------------------------------------------------------


def package_json_bytes(package: Package) -> bytes:
    """The stored package exactly (same keys, order and values), indented for people, UTF-8."""
    return json.dumps(package, ensure_ascii=False, indent=2).encode("utf-8")


# --- CSV -------------------------------------------------------------------------------------------


def csv_safe(text: str) -> str:
    """Neutralise spreadsheet formulas: text starting with = + - @ tab or CR gets a leading quote."""
    return "'" + text if text.startswith(CSV_INJECTION_PREFIXES) else text


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return csv_safe(display_value(value) or "")


def csv_text(header: list[str] | None, rows: Iterable[Iterable[Any]]) -> str:
    """CSV text (``\r\n`` line ends) of an optional header row and the rows, every cell made safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if header is not None:
        writer.writerow([csv_safe(column) for column in header])
    for row in rows:
        writer.writerow([csv_cell(value) for value in row])
    return buffer.getvalue()


def table_csv_bytes(table: KeyTable) -> bytes:
    return csv_text(table.columns, (row.values for row in table.rows)).encode("utf-8-sig")


def safe_filename(name: str, fallback: str = "data") -> str:
    """Letters, digits, ``_ . -`` only, no leading dot: ``postgres_example:customer`` → ``postgres_example_customer``."""
    cleaned = _UNSAFE_FILENAME_CHARS.sub("_", name).lstrip(".")
    return cleaned[:150] or fallback


def csv_filenames(keys: Iterable[str]) -> dict[str, str]:
    """``<key>.csv`` per key, made filename-safe; keys that clean up to the same name get ``-2``, ``-3``…"""
    names: dict[str, str] = {}
    taken = {"package.json", "report.html"}
    for key in keys:
        stem = safe_filename(key)
        name, n = f"{stem}.csv", 1
        while name.lower() in taken:
            n += 1
            name = f"{stem}-{n}.csv"
        taken.add(name.lower())
        names[key] = name
    return names


# --- HTML report -----------------------------------------------------------------------------------


@functools.cache
def _report_environment() -> Environment:
    # Autoescaping on for everything: every value in the report is hostile text.
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def format_time(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def report_html(package: Package, meta: ReportMeta) -> str:
    template = _report_environment().get_template(REPORT_TEMPLATE)
    return template.render(
        meta=meta,
        tables=package_tables(package),
        display_value=display_value,
        format_time=format_time,
        NOTHING_FOUND=NOTHING_FOUND,
    )


# --- ZIP -------------------------------------------------------------------------------------------


def package_zip_bytes(package: Package, meta: ReportMeta) -> bytes:
    """``package.json`` (exact), ``report.html`` (self-contained) and one ``<key>.csv`` per key."""
    stamp = meta.generated_at.astimezone(UTC).timetuple()[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:

        def add(name: str, data: bytes) -> None:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)

        add("package.json", package_json_bytes(package))
        add("report.html", report_html(package, meta).encode("utf-8"))
        names = csv_filenames(package)
        for table in package_tables(package):
            add(names[table.key], table_csv_bytes(table))
    return buffer.getvalue()


def download_name(request_id: str, extension: str) -> str:
    """Named after the request id, never after the identity."""
    return f"access-package-{safe_filename(request_id, 'request')}.{extension}"
