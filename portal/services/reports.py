"""Access-package exports: the exact JSON, one CSV per key, a self-contained HTML report, and a ZIP of all.

Functions of the package plus request metadata (no Flask request), so the browser downloads, the API and a
future subject download link produce byte-for-byte the same files. A package is a dict or, for stored
packages, a ``PackageContents`` read chunk by chunk: every export is a stream (``iter_*``) whose memory does
not grow with the package; the ``*_bytes`` / ``report_html`` forms join a stream, for small
packages and tests.

Decisions:
- A table's columns are the union of its rows' keys in first-seen order; a value missing from a row is
  shown like null.
- CSV files are UTF-8 with a byte-order mark (so spreadsheet programs read accents correctly) and
  CSV-injection safe: a *text* cell (header included) beginning with ``= + - @``, a tab or a carriage
  return is prefixed with a single quote. JSON numbers are written as they are: they cannot carry a
  formula, and quoting them would corrupt the data.
- The HTML report has inline CSS only: no scripts, no external links, fonts or images, and every value is
  HTML-escaped by the template engine's autoescaping. It works offline, as an e-mail attachment, or
  printed. It holds every row, however large the package (it is what the data subject receives; a
  truncated report would be an incomplete answer), rendered as a stream with Jinja's ``generate``.
- The ZIP is written as a stream (entries with data descriptors; ZIP64 when the package is large), and
  its JSON is the same bytes as the JSON download.
"""

from __future__ import annotations

import codecs
import csv
import functools
import html
import io
import json
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from portal.models.packages import DictPackage, PackageContents
from portal.services import attachments

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
REPORT_TEMPLATE = "reports/report.html"
NOTHING_FOUND = "Searched — nothing found"
CSV_INJECTION_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_UNSAFE_FILENAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
PIECE_BYTES = 64 * 1024  # what a stream yields at a time (about)
CSV_BATCH_ROWS = 500

Package = Mapping[str, list[dict[str, Any]]] | PackageContents


def contents_of(package: Package) -> PackageContents:
    return package if isinstance(package, PackageContents) else DictPackage(package)


@dataclass(frozen=True)
class PackageNames:
    """What a person reads instead of keys: each system's name by connection key, and each field's name
    (its PII field) by package label. A key or label without a name is shown as it is."""

    systems: Mapping[str, str] = field(default_factory=dict)
    fields: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def title(self, key: str) -> str:
        return self.systems.get(key, key)

    def headers(self, key: str, columns: list[str]) -> list[str]:
        names = self.fields.get(key, {})
        return [names.get(column, column) for column in columns]


@dataclass(frozen=True)
class ReportMeta:
    """What the exports say about the request (never the subject's identity)."""

    request_id: str
    policy: str
    completed_at: datetime | None
    generated_at: datetime
    names: PackageNames = field(default_factory=PackageNames)


@dataclass(frozen=True)
class TableRow:
    values: list[Any]
    nothing_found: bool  # every value null: the system was searched and holds nothing


@dataclass(frozen=True)
class KeyTable:
    """One package key as a table: columns in order, one row per entry.

    ``rows`` is a list (all rows, or the first ones for a page: ``row_count`` says how many there are) or,
    for the report, a stream read from the package each time it is iterated.
    """

    key: str
    columns: list[str]
    rows: Iterable[TableRow]
    row_count: int
    nothing_found: bool  # every value of every row is null (or no rows)

    @property
    def manual(self) -> bool:
        """Automated keys are ``"<dataset>:<collection>"``; manual connection keys never contain ``:``."""
        return ":" not in self.key

    @property
    def shown(self) -> int:
        """How many rows ``rows`` holds, when it is a list."""
        return len(self.rows) if isinstance(self.rows, list) else self.row_count


# --- tables ----------------------------------------------------------------------------------------


def table_row(entry: Mapping[str, Any], columns: list[str]) -> TableRow:
    values = [entry.get(column) for column in columns]
    return TableRow(values, all(value is None for value in values))


class _StreamedRows:
    """A key's rows as table rows, read from the package every time they are iterated."""

    def __init__(self, contents: PackageContents, position: int, columns: list[str]):
        self._contents, self._position, self._columns = contents, position, columns

    def __iter__(self) -> Iterator[TableRow]:
        return (table_row(entry, self._columns) for entry in self._contents.rows(self._position))


def key_table(key: str, entries: Iterable[Mapping[str, Any]]) -> KeyTable:
    return package_tables({key: list(entries or [])})[0]


def package_tables(package: Package, limit: int | None = None) -> list[KeyTable]:
    """One table per key, in package order: with ``limit``, the first rows of each (a page); without,
    every row, streamed each time a table's rows are iterated (the report)."""
    contents = contents_of(package)
    tables = []
    for position, summary in enumerate(contents.keys):
        rows: Iterable[TableRow]
        if limit is None:
            rows = _StreamedRows(contents, position, summary.columns)
        else:
            rows = [table_row(entry, summary.columns) for entry in contents.rows(position, limit)]
        tables.append(KeyTable(summary.key, summary.columns, rows, summary.rows, summary.nothing_found))
    return tables


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
    if isinstance(value, list) and value and all(isinstance(v, dict) and "sha256" in v for v in value):
        return ", ".join(str(v.get("file_name")) for v in value)  # a file field: the files are listed apart
    return json.dumps(value, ensure_ascii=False, sort_keys=False)


# --- JSON ------------------------------------------------------------------------------------------


def _pieces(texts: Iterable[str], size: int = PIECE_BYTES) -> Iterator[bytes]:
    """Small texts joined into UTF-8 pieces of about ``size`` bytes (fewer, larger writes)."""
    buffer: list[str] = []
    length = 0
    for text in texts:
        buffer.append(text)
        length += len(text)
        if length >= size:
            yield "".join(buffer).encode("utf-8")
            buffer, length = [], 0
    if buffer:
        yield "".join(buffer).encode("utf-8")


def iter_package_json(
    package: Package,
    *,
    indent: int | None = 2,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
    ensure_ascii: bool = False,
) -> Iterator[bytes]:
    """``json.dumps(package, ...)`` with these arguments, byte for byte, as a stream of UTF-8 pieces.

    Only the package's own two levels (the object of keys, each key's list) are written here; each row is
    ``json.dumps``-ed whole and indented to its depth, which is exact because JSON text holds newlines
    only between tokens.
    """
    contents = contents_of(package)
    item_separator, key_separator = separators or ((",", ": ") if indent is not None else (", ", ": "))
    outer = "" if indent is None else "\n" + " " * indent
    inner = "" if indent is None else "\n" + " " * (2 * indent)
    order = sorted(range(len(contents.keys)), key=lambda i: contents.keys[i].key) if sort_keys else None

    def texts() -> Iterator[str]:
        positions = order if order is not None else range(len(contents.keys))
        if not contents.keys:
            yield "{}"
            return
        yield "{"
        for n, position in enumerate(positions):
            key = json.dumps(contents.keys[position].key, ensure_ascii=ensure_ascii)
            yield f"{item_separator if n else ''}{outer}{key}{key_separator}["
            empty = True
            for row in contents.rows(position):
                text = json.dumps(
                    row, indent=indent, separators=separators, sort_keys=sort_keys, ensure_ascii=ensure_ascii
                )
                if indent is not None:
                    text = text.replace("\n", inner)
                yield f"{'' if empty else item_separator}{inner}{text}"
                empty = False
            yield "]" if empty else f"{outer}]"
        yield ("\n" if indent is not None else "") + "}"

    return _pieces(texts())


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


def iter_table_csv(table: KeyTable) -> Iterator[bytes]:
    """The table as CSV (UTF-8 with a byte-order mark), a batch of rows at a time."""
    yield codecs.BOM_UTF8 + csv_text(table.columns, ()).encode("utf-8")
    rows = (row.values for row in table.rows)
    while batch := list(islice(rows, CSV_BATCH_ROWS)):
        yield csv_text(None, batch).encode("utf-8")


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


_EMPTY_CELL = '<td class="empty"><span aria-hidden="true">—</span><span class="sr-only">empty</span></td>'


def report_rows(rows: Iterable[TableRow], batch: int = 50) -> Iterator[Markup]:
    """A table's ``<tr>`` rows for the report, ``batch`` rows per piece, as they are read. Written here
    rather than as a Jinja loop: the cells were 40% of a ZIP download (a test and an escape per value);
    every value goes through ``html.escape``."""
    pieces: list[str] = []
    for row in rows:
        cells = "".join(
            _EMPTY_CELL if (text := display_value(value)) is None else f"<td>{html.escape(text)}</td>"
            for value in row.values
        )
        pieces.append(f"<tr>{cells}</tr>\n")
        if len(pieces) >= batch:
            yield Markup("".join(pieces))  # noqa: S704 - every value is escaped above
            pieces = []
    if pieces:
        yield Markup("".join(pieces))  # noqa: S704 - every value is escaped above


def iter_report_html(package: Package, meta: ReportMeta) -> Iterator[bytes]:
    """The report as UTF-8 pieces, rendered as it is read (every row; see the module docstring)."""
    template = _report_environment().get_template(REPORT_TEMPLATE)
    return _pieces(
        template.generate(
            meta=meta,
            tables=package_tables(package),
            report_rows=report_rows,
            format_time=format_time,
            NOTHING_FOUND=NOTHING_FOUND,
        )
    )


def report_html(package: Package, meta: ReportMeta) -> str:
    return b"".join(iter_report_html(package, meta)).decode("utf-8")


# --- ZIP -------------------------------------------------------------------------------------------


class _Sink:
    """A write-only file the ZIP is written to; what it received is taken out piece by piece."""

    def __init__(self):
        self._parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts, self.size = [], 0
        return data


def iter_package_zip(package: Package, meta: ReportMeta) -> Iterator[bytes]:
    """``package.json`` (exact), ``report.html`` (self-contained), one ``<key>.csv`` per key and the files
    of ``file`` fields under ``attachments/<key>/`` (byte for byte as uploaded), streamed. A file no
    longer stored raises ``NotFound`` here, before the stream starts."""
    contents = contents_of(package)
    files = [
        (item["path"], stream)
        for item, stream in zip(contents.attachments, attachments.readers(contents.attachments), strict=True)
    ]
    return _zip_stream(contents, meta, files)


def _zip_stream(
    contents: PackageContents, meta: ReportMeta, files: list[tuple[str, Iterator[bytes]]]
) -> Iterator[bytes]:
    stamp = meta.generated_at.astimezone(UTC).timetuple()[:6]
    # Entries are written before their size is known: ZIP64 headers whenever one might pass 2 GiB.
    zip64 = (
        contents.size_bytes * 4 + sum(item["size"] for item in contents.attachments)
    ) > zipfile.ZIP64_LIMIT
    tables = package_tables(contents)
    names = csv_filenames(table.key for table in tables)
    entries = [
        ("package.json", lambda: iter_package_json(contents)),
        ("report.html", lambda: iter_report_html(contents, meta)),
        *((names[table.key], functools.partial(iter_table_csv, table)) for table in tables),
        *((path, functools.partial(iter, stream)) for path, stream in files),
    ]
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, pieces in entries:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=zip64) as entry:
                for piece in pieces():
                    entry.write(piece)
                    if sink.size >= PIECE_BYTES:
                        yield sink.take()
    yield sink.take()


def package_zip_bytes(package: Package, meta: ReportMeta) -> bytes:
    return b"".join(iter_package_zip(package, meta))


def download_name(request_id: str, extension: str) -> str:
    """Named after the request id, never after the identity."""
    return f"access-package-{safe_filename(request_id, 'request')}.{extension}"
