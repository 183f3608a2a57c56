"""Reading export files right, or refusing them with a message that says what was found.

:class:`ExportReader` turns the file(s) of one contract table (found by name or by a mapping's
glob, see :mod:`kpi_helpers.mapping`) into a raw DuckDB relation for the checks in
:mod:`kpi_helpers.source`, and returns it as a :class:`RawTable` with what was found on the way:
the files, the export's header, the columns missing and why, the period the export declares, the
currencies seen in amount cells, and the problems that refuse it.

Text exports are read as text (nothing guessed by a type sniffer) with a dialect found here, not
by DuckDB's sniffer, which reads a file with one ragged row as a single column:

- **files**: ``<table>.csv``/``.csv.gz``/``.parquet``/a folder of Parquet files, or a mapping's
  glob; several files are unioned (``__file`` names each row's file); a table in two formats, an
  Excel workbook where a CSV was expected, and a glob that matches nothing are refused;
- **encoding**: UTF-8 with or without BOM; UTF-16 with a BOM and declared encodings are
  transcoded to UTF-8 first; other bytes are refused naming the line, the byte and the fix;
- **dialect**: the header line and delimiter are found by the columns the mapping (or contract)
  expects; banner and comment lines above it are skipped, and the period a GA banner declares is
  kept; a footer (after a blank line) and a totals row are dropped, and said so; mixed line endings
  and fields over 2 MB read right; a ragged row is refused as "row N has 5 fields, the header
  has 12", keeping DuckDB's own hint;
- **numbers**: amount and count columns become plain ``1234.5`` text by the number format of the
  table (declared, or detected only when unambiguous; see :func:`number_format`), with currency
  marks stripped and reported; what cannot be read stays as found for the checks to show;
- **dates**: a hint naming the ``formats:`` line to add for ``M/D/YYYY``-like text
  (:func:`date_format_hint`).

Parquet is typed and read in place (a view), with row numbers from the file.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import gzip
import hashlib
import io
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import sqlguard
from .exceptions import KpiError, MappingError, Problem
from .mapping import InputSpec, NumberFormat, TableMapping
from .schema import Table
from .sqltext import ident, literal

ROW = "__row"  # 1-based data row in its file (the first row under the header is row 1)
ROW_FILE = "__file"  # the file of each row, when several files make one table
HEAD_BYTES = 1 << 20  # bytes read to find the header and dialect
TAIL_BYTES = 1 << 18  # bytes read from the end to find a footer
EXAMPLES = 5
DELIMITERS = (",", ";", "\t", "|")
NUMERIC_KINDS = ("count", "amount", "seconds", "number")
TOTALS = ("total", "totals", "grand total", "gesamt", "gesamtsumme", "summe", "totale", "total général", "totaal")
EXCEL = (".xlsx", ".xls", ".xlsm", ".ods")
#: currency symbols whose ISO code is unambiguous; "$" and "¥" are reported as they are
SYMBOLS = {"€": "EUR", "£": "GBP", "₹": "INR", "$": "$", "¥": "¥"}


# ------------------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class ReadProblem(Problem):
    """A file that cannot be read as it is: what was found (``detail``) and the fix (``expected``).

    Renders as ``\\`leads.csv\\`: <what was found>; <what to do>`` (a :class:`Problem`, so a
    :class:`~kpi_helpers.exceptions.SchemaError` lists it with the others).
    """

    detail: str = ""

    def __str__(self) -> str:
        where = f"`{self.file}`" + (f", column `{self.column}`" if self.column else "")
        rows = ""
        if self.rows:
            rows = f" (row{'s' if len(self.rows) > 1 else ''} {', '.join(self.rows)}"
            rows += (", ..." if self.count > len(self.rows) else "") + ")"
        return f"{where}: {self.detail}{rows}" + (f"; {self.expected}" if self.expected else "")


@dataclass(frozen=True)
class Coverage:
    """Dates an export covers, both included, and where that was read (``mapping`` or ``banner``)."""

    start: dt.date
    end: dt.date
    source: str


@dataclass
class RawTable:
    """One contract table as read from its export(s), before the contract's checks.

    Attributes
    ----------
    table : str
        The contract table.
    relation : ibis Table or None
        ``__row`` (1-based data row in its file), ``__file`` (when several files make the table)
        and one column per contract column: text for text exports (numbers as plain ``1234.5``,
        dates as found or, with ``formats:``, ISO text; what cannot be read left as found), typed
        for Parquet. None when the table is absent or could not be read (see ``problems``).
    files : tuple of Path
        Every file read (all inputs of a query), sorted; empty when the table is absent.
    label : str
        How messages name the table's source: the file name, the glob, or ``map.yml#table``.
    header : tuple of str
        The export's column names (a query's result columns).
    missing : dict
        Contract column -> why it is missing: ``""`` when the export lacks it, else the error of
        the mapping's expression for it.
    period : Coverage or None
        The period declared by the mapping (``period:``) or the export's banner; the hull of the
        files' periods for several files (see ``file_periods``).
    file_periods : dict
        File name -> its banner's period.
    currencies : dict
        Amount column -> currency marks seen in its cells (``EUR``, ``USD``, ``$``...), sorted.
    dropped : tuple of str
        What was left out on purpose (banner lines, a footer, a totals row), for the user.
    problems : list of Problem
        Why the table is refused, with everything else found (the checks add theirs).
    parquet : bool
        True when the relation is a (typed) view over Parquet files.
    """

    table: str
    relation: Any = None
    files: tuple[Path, ...] = ()
    label: str = ""
    header: tuple[str, ...] = ()
    missing: dict[str, str] = field(default_factory=dict)
    period: Coverage | None = None
    file_periods: dict[str, Coverage] = field(default_factory=dict)
    currencies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()
    problems: list[Problem] = field(default_factory=list)
    parquet: bool = False

    @property
    def absent(self) -> bool:
        """No file for this table and nothing wrong: the table is simply not in the source."""
        return not self.files and not self.problems


@dataclass(frozen=True)
class FileMatch:
    """The files of one table (or of a query's inputs), or the problem that refuses them."""

    files: tuple[Path, ...] = ()
    problem: ReadProblem | None = None
    inputs: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ helpers
def _short(text: Any, n: int = 40) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 3] + "..."


def _raw(con: Any, sql: str) -> Any:
    return con.raw_sql(sql)


def _is_parquet(path: Path) -> bool:
    return path.is_dir() or path.suffix == ".parquet"


def _kind(path: Path) -> str:
    return "parquet" if _is_parquet(path) else "text"


def _parquet_parts(path: Path) -> list[Path]:
    return sorted(path.glob("*.parquet")) if path.is_dir() else [path]


def _open_bytes(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _duckdb_message(exc: BaseException) -> tuple[str, str]:
    """DuckDB's error: its first line and its hint (the lines up to the options dump), kept whole."""
    lines = [ln.rstrip() for ln in str(exc).strip().splitlines()]
    first = lines[0] if lines else type(exc).__name__
    hint = []
    for ln in lines[1:]:
        if ln.strip().startswith(("file =", "delimiter =")):
            break
        # ignore_errors would skip rows silently (a wrong total): not a fix the kit passes on
        if ln.strip() and not ln.startswith("Original Line") and "ignore_errors" not in ln:
            hint.append(ln.strip())
    return first, " ".join(hint)


# ------------------------------------------------------------------------------------------- files
def find_files(folder: Path, table: str, pattern: str | None = None, *, where: str = "") -> FileMatch:
    """The file(s) holding ``table`` in ``folder``: by the mapping's ``pattern``, else by name.

    A table without a pattern and without a file is absent (no files, no problem). Refused: a
    table present in two formats, an Excel workbook where a CSV is expected, a pattern that
    matches nothing, files of two kinds under one pattern.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "leads.csv").write_text("lead_id\\n"); _ = (d / "leads.parquet").write_bytes(b"")
    >>> print(find_files(d, "leads").problem)
    `leads.csv`: two exports of table `leads`: `leads.csv` and `leads.parquet`; keep one ...
    >>> find_files(d, "spend").files
    ()
    """
    if pattern:
        hits = sqlguard.resolve_glob(folder, pattern, where=where or f"table `{table}`, `file`")
        hits = [h for h in hits if h.is_file() or any(h.glob("*.parquet"))]
        if not hits:
            excel = _excel_near(folder, pattern)
            label = Path(pattern).name
            if excel:
                return FileMatch(problem=_excel_problem(label, excel))
            return FileMatch(
                problem=ReadProblem(
                    label,
                    "",
                    "check the file name or the glob in the mapping",
                    0,
                    detail=f"no file in `{folder}` matches `{pattern}` ({where or 'the mapping'} names it)",
                )
            )
        kinds = {_kind(h) for h in hits}
        if len(kinds) > 1:
            names = [h.name for h in hits]
            return FileMatch(problem=_two_formats(Path(pattern).name, table, names))
        twins = _identical(hits)
        if twins:
            return FileMatch(problem=_twins_problem(Path(pattern).name, table, twins))
        return FileMatch(files=tuple(hits))
    candidates = [folder / f"{table}.csv", folder / f"{table}.csv.gz", folder / f"{table}.parquet", folder / table]
    present = [p for p in candidates if p.is_file() or (p.is_dir() and any(p.glob("*.parquet")))]
    if len(present) > 1:
        return FileMatch(problem=_two_formats(present[0].name, table, [p.name for p in present]))
    if present:
        return FileMatch(files=(present[0],))
    books = [folder / f"{table}{s}" for s in EXCEL if (folder / f"{table}{s}").is_file()]
    if books:
        return FileMatch(problem=_excel_problem(f"{table}.csv", books[0]))
    odd = [p for p in candidates[:3] if p.exists()]  # a folder, a pipe or a broken link in a file's place
    if odd:
        return FileMatch(
            problem=ReadProblem(
                odd[0].name, "", "a readable file of that name, or nothing", 0, detail="this is not a file"
            )
        )
    return FileMatch()


def _identical(paths: Sequence[Path]) -> list[tuple[str, str]]:
    """Pairs of files with the same bytes (an export downloaded twice: `x.csv` and `x (1).csv`)."""
    seen: dict[tuple[int, str], str] = {}
    pairs = []
    for p in paths:
        if not p.is_file():
            continue
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 22), b""):  # type: ignore[misc]  # mypy#15459: a lambda binding a loop variable by default
                h.update(chunk)
        key = (p.stat().st_size, h.hexdigest())
        if key in seen:
            pairs.append((seen[key], p.name))
        else:
            seen[key] = p.name
    return pairs


def _twins_problem(label: str, table: str, twins: Sequence[tuple[str, str]]) -> ReadProblem:
    listed = "; ".join(f"`{a}` and `{b}`" for a, b in twins)
    return ReadProblem(
        label,
        "",
        "keep one copy (each row would be counted twice): remove or move the other",
        len(twins),
        detail=f"the same export of table `{table}` twice: {listed} have the same bytes",
    )


def _two_formats(label: str, table: str, names: Sequence[str]) -> ReadProblem:
    listed = " and ".join(f"`{n}`" for n in names)
    return ReadProblem(
        label,
        "",
        "keep one (the kit does not guess which is newer): remove or move the other",
        0,
        detail=f"two exports of table `{table}`: {listed}",
    )


def _excel_near(folder: Path, pattern: str) -> Path | None:
    stem = re.sub(r"\.csv(\.gz)?$", "", pattern)
    for suffix in EXCEL:
        try:
            hits = sorted(folder.glob(stem + suffix))
        except ValueError:
            return None
        if hits:
            return hits[0]
    return None


def _excel_problem(label: str, path: Path) -> ReadProblem:
    return ReadProblem(
        label,
        "",
        "open it and save it as CSV UTF-8 (Excel: File > Save As > 'CSV UTF-8 (Comma delimited)'), "
        "then name the CSV as expected",
        0,
        detail=f"found an Excel workbook `{path.name}`, not a CSV export",
    )


# ------------------------------------------------------------------------------------------ dialect
@dataclass(frozen=True)
class Dialect:
    """How one text export is laid out, as found by :func:`sniff`."""

    delimiter: str
    header: tuple[str, ...]
    skip: int  # lines above the header line
    has_header: bool = True
    banner: tuple[str, ...] = ()
    footer_at: int | None = None  # byte offset where the footer (or a totals row) starts
    dropped: tuple[str, ...] = ()
    period: Coverage | None = None
    quote: str = '"'
    escape: str = '"'


_LINE_END = re.compile(r"\r\n|\n|\r")


def _lines(text: str) -> list[str]:
    out = _LINE_END.split(text)
    return out[:-1] if out and out[-1] == "" else out


def _fields(line: str, delimiter: str, quote: str = '"') -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter, quotechar=quote or '"'))
    except (StopIteration, csv.Error):
        return []


def _blank(line: str, delimiter: str) -> bool:
    return not line.replace(delimiter, "").strip()


def _is_comment(line: str) -> bool:
    return line.lstrip("\ufeff").lstrip().startswith("#")


def _banner_period(lines: Iterable[str]) -> Coverage | None:
    """The period an export's banner declares (UA ``# 20180101-20180131``; GA4 start/end lines; Google
    Ads' date-range line; LinkedIn's report start and end).

    Examples
    --------
    >>> _banner_period(["# ----", "# 20180101-20180131"])
    Coverage(start=datetime.date(2018, 1, 1), end=datetime.date(2018, 1, 31), source='banner')
    >>> _banner_period(["# Start date: 20240101", "# End date: 20240131"]).end
    datetime.date(2024, 1, 31)
    """
    start = end = None
    for line in lines:
        text = line.lstrip("\ufeff").strip().strip('"').strip()
        found = _ads_banner(text)
        if found:
            key, day = found
            start, end = (day, end) if key == "start" else (start, day) if key == "end" else day
            continue
        m = re.fullmatch(r"#\s*(\d{8})\s*-\s*(\d{8})", text)
        if m:
            start, end = m.group(1), m.group(2)
        m = re.fullmatch(r"#\s*Start date:\s*(\d{8})", text, re.I)
        if m:
            start = m.group(1)
        m = re.fullmatch(r"#\s*End date:\s*(\d{8})", text, re.I)
        if m:
            end = m.group(1)
    if not (start and end):
        return None
    try:
        a, b = dt.datetime.strptime(start, "%Y%m%d").date(), dt.datetime.strptime(end, "%Y%m%d").date()
    except ValueError:
        return None
    return Coverage(a, b, "banner") if a <= b else None


_MONTH_RANGE = re.compile(r"([A-Z][a-z]+ \d{1,2}, \d{4})\s*[-–]\s*([A-Z][a-z]+ \d{1,2}, \d{4})")
_REPORT_EDGE = re.compile(r"Report (Start|End):\s*(\d{1,2}/\d{1,2}/\d{4})", re.I)


def _ads_banner(text: str) -> tuple[str, Any] | None:
    """An ad platform's banner line as ``("range", (start, end))``, ``("start", day)`` or ``("end", day)``
    in ``%Y%m%d`` text: Google Ads' ``January 1, 2025 - January 31, 2025`` line and LinkedIn's
    ``Report Start: 1/1/2025, 12:00 AM`` / ``Report End: ...`` lines (US formats: both tools write them so).

    >>> _ads_banner("January 1, 2025 - January 31, 2025")
    ('range', ('20250101', '20250131'))
    >>> _ads_banner("Report End: 1/10/2025, 11:59 PM")
    ('end', '20250110')
    """
    m = _MONTH_RANGE.fullmatch(text)
    if m:
        try:
            a, b = (dt.datetime.strptime(x, "%B %d, %Y").strftime("%Y%m%d") for x in m.groups())
        except ValueError:
            return None
        return "range", (a, b)
    m = _REPORT_EDGE.match(text)
    if m:
        try:
            day = dt.datetime.strptime(m.group(2), "%m/%d/%Y").strftime("%Y%m%d")
        except ValueError:
            return None
        return m.group(1).lower(), day
    return None


def _score_header(fields: Sequence[str], expected: set[str]) -> int:
    return sum(1 for f in fields if f.strip().lstrip("\ufeff").casefold() in expected)


def sniff(
    head: str, *, expected: Iterable[str] = (), read: Mapping[str, Any] | None = None
) -> tuple[Dialect | None, str]:
    """Find the header line and delimiter of a text export from its first lines.

    The header is the line holding most of the ``expected`` column names (for every candidate
    delimiter); without any, the first line followed by a line with as many fields. Lines above
    it are banner lines. Returns ``(dialect, "")`` or ``(None, why)``.

    Examples
    --------
    >>> d, _ = sniff("# Site\\n# 20180101-20180131\\n\\nChannel;Users\\nDirect;5\\n", expected=["users"])
    >>> d.delimiter, d.header, d.skip, d.period.start.isoformat()
    (';', ('Channel', 'Users'), 3, '2018-01-01')
    """
    read = dict(read or {})
    wanted = {e.strip().casefold() for e in expected}
    lines = _lines(head)
    delims = [read["delimiter"]] if "delimiter" in read else list(DELIMITERS)
    quote = str(read.get("quote", '"')) or '"'
    if read.get("header") is False:
        skip = int(read.get("skip", 0))
        d = read.get("delimiter") or _best_delimiter(lines[skip : skip + 50])
        width = max((len(_fields(ln, d, quote)) for ln in lines[skip : skip + 50]), default=1)
        return Dialect(d, tuple(f"column{i}" for i in range(width)), skip, has_header=False), ""
    best: tuple[tuple[int, int, int, int], str, int] | None = None
    for d in delims:
        rows = [(i, _fields(ln, d, quote)) for i, ln in enumerate(lines[:400])]
        start = [int(read["skip"])] if "skip" in read else range(len(rows))
        for i in start:
            if i >= len(rows):
                continue
            ln, fields = lines[i], rows[i][1]
            if _blank(ln, d) or (_is_comment(ln) and "skip" not in read) or len(fields) < 1:
                continue
            following = [f for j, f in rows[i + 1 : i + 11] if not _blank(lines[j], d)]
            same = sum(1 for f in following if len(f) == len(fields))
            score = (_score_header(fields, wanted), 1 if len(fields) > 1 else 0, same, len(fields))
            # The earliest line wins a tie: a data row can look like a header, never above it.
            if best is None or score > best[0]:
                best = (score, d, i)
            if not wanted and len(fields) > 1 and (same or not following):
                break
    if best is None:
        return None, "no header line found (the file has no lines)"
    _, d, i = best
    header = tuple(f.strip().lstrip("\ufeff") for f in _fields(lines[i], d, quote))
    banner = tuple(lines[:i])
    return (
        Dialect(d, header, i, banner=banner, period=_banner_period(banner), quote=quote, escape=quote),
        "",
    )


def _best_delimiter(lines: Sequence[str]) -> str:
    counts = {d: sum(ln.count(d) for ln in lines) for d in DELIMITERS}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def _is_number_like(text: str) -> bool:
    return bool(re.fullmatch(r"[\s\d.,:%$€£¥₹+\-A-Z]*\d[\s\d.,:%$€£¥₹+\-A-Z]*", text.strip()))


def find_footer(tail: bytes, dialect: Dialect, *, report_like: bool, at: int = 0) -> tuple[int | None, list[str]]:
    """Byte offset (within the file, ``at`` being the tail's offset) where the footer starts.

    A footer starts at a blank line after which some line is not a data row (a totals row, a
    ``#`` comment, a line with another field count: UA's ``Day Index`` block, Salesforce's
    copyright lines); a blank line followed only by data rows is inside the data. After a blank line,
    rows like data mixed with other lines (not opened by a ``#`` line) raise :class:`FooterConflict`:
    dropping them could drop data. A last row whose first field says "Total" (or, in an export with
    a banner or footer, is empty) is a totals row and is dropped with it. Returns ``(offset, what)``
    or ``(None, [])``.
    """
    n = len(dialect.header)
    raw_lines = tail.split(b"\n")
    offsets, pos = [], at
    for raw in raw_lines:
        offsets.append(pos)
        pos += len(raw) + 1
    if at:  # the tail starts inside a line
        raw_lines, offsets = raw_lines[1:], offsets[1:]
    lines = [r.decode("utf-8", "replace").rstrip("\r") for r in raw_lines]
    if lines and lines[-1] == "":
        lines, offsets = lines[:-1], offsets[:-1]
    first_data = dialect.skip + 1 if not at else 0  # line index of the first data row (whole file in tail)

    def data_row(line: str) -> bool:
        f = _fields(line, dialect.delimiter, dialect.quote)
        return len(f) == n and bool(f[0].strip()) and f[0].strip().casefold() not in TOTALS and not _is_comment(line)

    cut, what = None, []
    for b in range(first_data, len(lines)):
        if not _blank(lines[b], dialect.delimiter):
            continue
        after = [ln for ln in lines[b + 1 :] if not _blank(ln, dialect.delimiter)]
        rows = [data_row(ln) for ln in after]
        if not after or all(rows):
            continue  # a blank line inside the data (DuckDB skips it)
        if any(rows) and not _is_comment(after[0]):
            # Rows like data after the blank line, and lines that are not: a footer, or data cut in two?
            shown = " / ".join(repr(_short(ln, 50)) for ln in after[:3])
            raise FooterConflict(
                f"after a blank line near the end, {len(after)} lines mix rows like the data with other lines ({shown})"
            )
        cut = b
        what.append(f"a footer of {len(lines) - b} lines after the data")
        break
    end = cut if cut is not None else len(lines)
    last = end - 1
    while last >= first_data and _blank(lines[last], dialect.delimiter):
        last -= 1
    if last >= first_data:
        f = _fields(lines[last], dialect.delimiter, dialect.quote)
        label = f[0].strip().casefold() if f else ""
        totals = label in TOTALS or (
            report_like and label == "" and all(_is_number_like(x) or not x.strip() for x in f[1:])
        )
        if totals and len(f) == n and any(x.strip() for x in f[1:]):
            cut = last
            what.insert(0, "a totals row at the end of the data")
    if cut is None:
        return None, []
    return offsets[cut], what


class FooterConflict(ValueError):
    """The end of a file is neither clearly data nor clearly a footer (see :func:`find_footer`)."""


# ----------------------------------------------------------------------------------------- encoding
def _bom_encoding(head: bytes) -> str | None:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return None


def encoding_problem(path: Path, label: str, table: str) -> ReadProblem | None:
    """Where ``path`` stops being UTF-8: the line, the byte, and how it reads in a Windows code page.

    Scans the whole file (only after a read failed), in chunks.
    """
    dec = codecs.getincrementaldecoder("utf-8")()
    line, offset, prev = 1, 0, b""
    with _open_bytes(path) as fh:
        while chunk := fh.read(1 << 20):
            try:
                dec.decode(chunk)
            except UnicodeDecodeError as exc:
                data = prev + chunk
                bad_at = len(prev) + exc.start if exc.start >= 0 else len(prev)
                # the decoder may have buffered bytes of the previous chunk: search from there
                line += chunk[: max(exc.start, 0)].count(b"\n")
                bad = data[bad_at] if bad_at < len(data) else chunk[0]
                start = data.rfind(b"\n", 0, bad_at) + 1
                stop = data.find(b"\n", bad_at)
                text = data[start : stop if stop != -1 else len(data)][:200]
                as_cp = text.decode("cp1252", "replace").strip()
                snippet = _short(as_cp, 60)
                return ReadProblem(
                    label,
                    "",
                    f"re-export it as UTF-8 (e.g. 'CSV UTF-8'), or declare its encoding for table `{table}` in a "
                    f"mapping (`encoding: cp1252` for Western European Windows, `cp1250` for Central European, "
                    f"`latin-1`)",
                    0,
                    detail=(
                        f"not UTF-8 text: line {line} has byte 0x{bad:02X} (the line reads {snippet!r} in cp1252, "
                        f"a Windows code page)"
                    ),
                )
            line += chunk.count(b"\n")
            offset += len(chunk)
            prev = chunk[-8:]
    return None


def _transcode(path: Path, encoding: str, scratch: Path) -> Path:
    """A UTF-8 copy of ``path`` (decoded with ``encoding``) in ``scratch``."""
    out = scratch / (path.name.removesuffix(".gz") + ".utf8.csv")
    with _open_bytes(path) as raw, open(out, "w", encoding="utf-8", newline="") as dst:
        reader = codecs.getreader(encoding)(raw)
        while chunk := reader.read(1 << 20):
            dst.write(chunk)
    return out


def _truncate(path: Path, size: int, scratch: Path) -> Path:
    """A copy of the first ``size`` bytes of ``path`` (the data without its footer)."""
    out = scratch / (path.stem + f".data{len(list(scratch.iterdir()))}.csv")
    left = size
    with _open_bytes(path) as src, open(out, "wb") as dst:
        while left > 0 and (chunk := src.read(min(1 << 20, left))):
            dst.write(chunk)
            left -= len(chunk)
    return out


def _mixed_line_endings(path: Path) -> bool:
    crlf = lf = False
    with _open_bytes(path) as fh:
        prev = b""
        while chunk := fh.read(1 << 20):
            data = prev + chunk
            n_crlf = data.count(b"\r\n")
            crlf = crlf or n_crlf > 0
            lf = lf or data.count(b"\n") > n_crlf
            if crlf and lf:
                return True
            prev = chunk[-1:]
    return False


# ------------------------------------------------------------------------------------------ numbers
_SEP = "[ '\u00a0\u202f]"
# sign, currency before, number, currency after (RE2 syntax, as DuckDB runs it)
_NUMBER_RE = (
    r"^\s*([+-]?)\s*([A-Z]{3}|[$€£¥₹])?\s*([+-]?)\s*"
    r"([0-9][0-9.,' \x{00A0}\x{202F}]*[0-9]|[0-9])\s*([A-Z]{3}|[$€£¥₹])?\s*$"
)


def _num_parts(col: str) -> dict[str, str]:
    """SQL for the parts of a number cell: sign, currency, digits (spaced thousands removed)."""
    x = f"CAST({col} AS VARCHAR)"
    g = {i: f"regexp_extract({x}, {literal(_NUMBER_RE)}, {i})" for i in range(1, 6)}
    body = g[4]
    # "1 234 567,89" and "1'234.50": spaces and apostrophes separate thousands only in groups of 3
    spaced = f"regexp_full_match({body}, {literal('[0-9]{1,3}(' + _SEP + '[0-9]{3})+([.,][0-9]+)?')})"
    core = f"(CASE WHEN {spaced} THEN regexp_replace({body}, {literal(_SEP)}, '', 'g') ELSE {body} END)"
    return {"sign": f"({g[1]} || {g[3]})", "currency": f"COALESCE(NULLIF({g[2]}, ''), {g[5]})", "core": core}


_PATTERNS = {
    # digits only
    "plain": r"[0-9]+",
    # one separator followed by exactly 3 digits, 1-3 digits before (not 0): 4.340, 1,234
    "amb_dot": r"[1-9][0-9]{0,2}\.[0-9]{3}",
    "amb_comma": r"[1-9][0-9]{0,2},[0-9]{3}",
    # the separator is the decimal: not 3 digits after it, or a long or zero integer part; or both separators
    "dec_dot": r"[0-9]+\.[0-9]+|[0-9]{1,3}(,[0-9]{3})+\.[0-9]+",
    "dec_comma": r"[0-9]+,[0-9]+|[0-9]{1,3}(\.[0-9]{3})+,[0-9]+",
    # a separator used twice is a thousands separator
    "thou_dot": r"[0-9]{1,3}(\.[0-9]{3}){2,}",
    "thou_comma": r"[0-9]{1,3}(,[0-9]{3}){2,}",
}


@dataclass(frozen=True)
class NumberVerdict:
    """The number format of one column: the decimal separator (None: no separator seen) or why not."""

    decimal: str | None
    refusal: str = ""
    examples: tuple[str, ...] = ()


def number_format(counts: Mapping[str, int], *, kind: str) -> NumberVerdict:
    """Decide a column's decimal separator from counts of its cells per category.

    ``counts`` has keys ``amb_dot``, ``amb_comma``, ``dec_dot``, ``dec_comma``, ``thou_dot``,
    ``thou_comma`` (cells of that shape, see :data:`_PATTERNS`). A count column cannot hold
    decimals, so a lone separator there is a thousands separator.

    Examples
    --------
    >>> number_format({"dec_comma": 1, "amb_dot": 3}, kind="amount").decimal   # 12.500,00 and 4.340
    ','
    >>> number_format({"amb_dot": 3}, kind="amount").refusal[:9]
    'ambiguous'
    >>> number_format({"amb_dot": 3}, kind="count").decimal
    ','
    >>> number_format({"dec_dot": 1, "dec_comma": 1}, kind="amount").refusal[:5]
    'mixed'
    """
    c = {k: int(counts.get(k, 0) or 0) for k in _PATTERNS}
    dot = c["dec_dot"] + c["thou_comma"]
    comma = c["dec_comma"] + c["thou_dot"]
    if kind == "count":
        comma += c["amb_dot"]  # 1.234 visits: "." groups thousands, so "," would be the decimal
        dot += c["amb_comma"]
    if dot and comma:
        return NumberVerdict(None, "mixed number formats (both '.' and ',' as the decimal separator)")
    if dot:
        return NumberVerdict(".")
    if comma:
        return NumberVerdict(",")
    if c["amb_dot"] or c["amb_comma"]:
        sep = "." if c["amb_dot"] else ","
        if c["amb_dot"] and c["amb_comma"]:
            return NumberVerdict(None, "mixed number formats ('.' and ',' each followed by 3 digits)")
        return NumberVerdict(
            None,
            f"ambiguous numbers: every separated value has exactly 3 digits after a single '{sep}' "
            f"(a decimal or a thousands separator?)",
        )
    return NumberVerdict(None)


def canonical_number_sql(col: str, decimal: str | None, thousands: str | None) -> str:
    """SQL turning a number cell into plain text (``12.500,00 EUR`` -> ``12500.00``).

    ``decimal`` None: the cell must be plain digits (no separator). What does not fit the format
    is left as found, for the checks to show.

    Examples
    --------
    >>> import duckdb
    >>> sql = canonical_number_sql("x", ",", ".")
    >>> duckdb.sql(f"SELECT {sql} FROM (VALUES ('EUR 12.500,00'), ('1 234,5 €'), ('-3,25'), ('NaN')) t(x)").fetchall()
    [('12500.00',), ('1234.5',), ('-3.25',), ('NaN',)]
    """
    p = _num_parts(col)
    core = p["core"]
    if decimal is None:
        fits = f"regexp_full_match({core}, '[0-9]+')"
        number = core
    else:
        t = thousands if thousands is not None else ("," if decimal == "." else ".")
        d = re.escape(decimal)
        if t == "":
            pattern = f"[0-9]+({d}[0-9]+)?"
        else:
            te = re.escape(t) if t not in (" ", "'") else _SEP
            pattern = f"([0-9]+|[0-9]{{1,3}}({te}[0-9]{{3}})+)({d}[0-9]+)?"
        fits = f"regexp_full_match({core}, {literal(pattern)})"
        stripped = core if t == "" else f"replace({core}, {literal(t)}, '')"
        if t in (" ", "'"):
            stripped = f"regexp_replace({core}, {literal(_SEP)}, '', 'g')"
        number = f"replace({stripped}, {literal(decimal)}, '.')" if decimal != "." else stripped
    sign = f"CASE WHEN {p['sign']} LIKE '%-%' THEN '-' ELSE '' END"
    # Cells already plain (most of them) skip the parse.
    plain = "[0-9]+" if decimal != "." else "[0-9]+([.][0-9]+)?"
    return (
        f"(CASE WHEN {col} IS NULL OR regexp_full_match(CAST({col} AS VARCHAR), {literal(plain)}) THEN {col} "
        f"WHEN {fits} THEN {sign} || {number} ELSE {col} END)"
    )


@dataclass(frozen=True)
class _Survey:
    """What a column's cells that are not plain digits look like (see ``ExportReader._survey``)."""

    counts: Mapping[str, int] = field(default_factory=dict)
    examples: tuple[str, ...] = ()
    currencies: tuple[str, ...] = ()
    odd: int = 0  # distinct cells that are neither digits nor digits.digits
    present: bool = False  # some cell is not plain digits

    def rewrite(self, decimal: str | None) -> bool:
        """Whether the column must be rewritten to read as plain numbers under ``decimal``."""
        return self.present and (decimal == "," or self.odd > 0)


def _decide(
    survey: Mapping[str, _Survey],
    cols: Sequence[tuple[str, str]],
    declared: NumberFormat | None,
    label: str,
    problems: list[Problem],
) -> dict[str, tuple[str | None, str | None] | None]:
    """Per column: (decimal, thousands) to read it with, or None to leave it as found (refused).

    One format per file: columns that settle the decimal settle it for the ambiguous ones; two
    columns settling it differently refuse the file.
    """
    if declared is not None and declared.decimal is not None:
        return {c: (declared.decimal, declared.thousands) for c, _ in cols}
    verdicts = {c: number_format(survey[c].counts, kind=kind) for c, kind in cols}
    decided = {v.decimal for v in verdicts.values() if v.decimal}
    fix = 'declare the format in the mapping, e.g. `numbers: {decimal: ",", thousands: "."}` for 1.234,56'
    if len(decided) > 1:
        by = {d: [c for c, v in verdicts.items() if v.decimal == d] for d in sorted(decided)}
        desc = "; ".join(f"{', '.join(f'`{c}`' for c in cs)} with {d!r} as the decimal" for d, cs in by.items())
        problems.append(ReadProblem(label, "", fix, 0, detail=f"two number formats in one export: {desc}"))
        return {c: None for c, _ in cols}
    table_decimal = decided.pop() if decided else None
    out: dict[str, tuple[str | None, str | None] | None] = {}
    for c, _kind in cols:
        verdict = verdicts[c]
        if verdict.refusal and not (table_decimal and verdict.refusal.startswith("ambiguous")):
            found = ", ".join(repr(_short(v, 20)) for v in survey[c].examples[:3])
            problems.append(ReadProblem(label, c, fix, 0, detail=f"{verdict.refusal}; found {found}"))
            out[c] = None
        elif table_decimal:
            out[c] = (table_decimal, "," if table_decimal == "." else ".")
        else:
            out[c] = (None, None)
    return out


def _currency_code(mark: str) -> str:
    return SYMBOLS.get(mark, mark)


def currency_problems(raw: RawTable, currency: str) -> list[Problem]:
    """Amount columns whose cells carry a currency other than ``currency`` (or two currencies).

    ``$`` counts as ``currency`` when that is a dollar (USD, CAD, AUD, ...), ``¥`` for JPY or CNY.
    Amounts in two currencies are never summed: convert them in the export (or a query) first.

    Examples
    --------
    >>> raw = RawTable("spend", label="ads.csv", currencies={"amount": ("EUR", "USD")})
    >>> print(currency_problems(raw, "EUR")[0])
    `ads.csv`, column `amount`: amounts in USD, but the source's currency is EUR (goals.yml); ...
    """
    out: list[Problem] = []
    code = currency.strip().upper()
    for column, marks in sorted(raw.currencies.items()):
        other = [
            m
            for m in marks
            if m != code and not (m == "$" and code.endswith("D")) and not (m == "¥" and code in ("JPY", "CNY"))
        ]
        if other:
            out.append(
                ReadProblem(
                    raw.label,
                    column,
                    "convert them to the source's currency before the kit reads them (the kit never sums "
                    "across currencies), or set `currency:` in goals.yml if the whole source is in that currency",
                    0,
                    detail=f"amounts in {', '.join(other)}, but the source's currency is {code} (goals.yml)",
                )
            )
    return out


# -------------------------------------------------------------------------------------------- dates
_DATE_FORMATS = (
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%m/%d/%y",
    "%d/%m/%y",
    "%d.%m.%Y",
    "%Y.%m.%d",
    "%Y%m%d",
    "%Y/%m/%d",
    "%d-%m-%Y",
    "%m-%d-%Y",
    "%d %b %Y",
    "%b %d, %Y",
)
_TIMES = ("", " %H:%M", " %H:%M:%S", " %I:%M %p", " %I:%M:%S %p")


def date_format_hint(column: str, values: Iterable[str]) -> str | None:
    """The ``formats:`` line to add for dates written as ``values`` (a sample), or None.

    Tries common formats (with and without a time); several that fit (``01/02/2025``: January
    or February?) are all named.

    Examples
    --------
    >>> print(date_format_hint("created_at", ["1/31/2025", "2/1/2025 14:05"]))
    dates like '1/31/2025': add `formats: {created_at: "%m/%d/%Y"}` (or with the time: "%m/%d/%Y %H:%M") ...
    >>> date_format_hint("created_at", ["2018.02.26 19:58"])
    'dates like \\'2018.02.26 19:58\\': add `formats: {created_at: "%Y.%m.%d %H:%M"}` to the mapping'
    """
    sample = [v.strip() for v in values if v and v.strip()][:50]
    if not sample:
        return None
    fitting = []
    for base in _DATE_FORMATS:
        fmts = [base + t for t in _TIMES]
        if all(any(_parses(v, f) for f in fmts) for v in sample):
            used = [f for f in fmts if any(_parses(v, f) for v in sample)]
            fitting.append(used)
    if not fitting:
        return None
    ex = _short(sample[0], 24)
    if len(fitting) > 1:
        names = " or ".join(f'"{u[0]}"' for u in fitting[:3])
        return (
            f"dates like {ex!r} fit {names}: add the one your tool uses, e.g. "
            f'`formats: {{{column}: "{fitting[0][0]}"}}`, to the mapping'
        )
    used = fitting[0]
    main = used[-1] if len(used) == 1 else used[0]
    extra = f' (or with the time: "{used[1]}")' if len(used) > 1 else ""
    return f'dates like {ex!r}: add `formats: {{{column}: "{main}"}}`{extra} to the mapping'


def _parses(value: str, fmt: str) -> bool:
    try:
        dt.datetime.strptime(value, fmt)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------------------- reader
class ExportReader:
    """Reads the exports of one data folder into a DuckDB connection, confining it.

    The connection is confined (:func:`kpi_helpers.sqlguard.confine`) to the folder, the reader's
    private scratch folder (transcoded and footer-less copies, deleted by :meth:`close`) and
    ``allow`` (the kit's cache folder, which the kit attaches on the same connection).

    Examples
    --------
    >>> import ibis, tempfile, pathlib
    >>> from kpi_helpers.schema import CONTRACT
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "revenue.csv").write_text("month;revenue\\n2025-01-01;12.500,50\\n", encoding="utf-8")
    >>> with ExportReader(ibis.duckdb.connect(), d) as reader:
    ...     raw = reader.read(CONTRACT["revenue"])
    ...     raw.relation.execute()["revenue"].tolist()
    ['12500.50']
    """

    def __init__(self, con: Any, folder: Path, *, allow: Iterable[Path] = (), confine: bool = True) -> None:
        self.con = con
        self.folder = Path(folder).resolve()
        # Private scratch folder for transcoded and footer-less copies: named now (the engine is
        # confined to it), created only when a file needs one.
        self._scratch = Path(tempfile.gettempdir()) / f"kpi-read-{uuid.uuid4().hex}"
        if confine:
            sqlguard.confine(con, [self.folder, self._scratch, *allow])

    def close(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)

    @property
    def scratch(self) -> Path:
        """The scratch folder (created, private to the user, on first use)."""
        self._scratch.mkdir(mode=0o700, exist_ok=True)
        return self._scratch

    def __enter__(self) -> ExportReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- files --------------------------------------------------------------------------------------
    def locate(self, table: Table, spec: TableMapping | None = None) -> FileMatch:
        """The files ``table`` is read from (every input of a query), or why they are refused."""
        spec = spec or TableMapping()
        if spec.query is None:
            found = find_files(self.folder, table.name, spec.file, where=spec.where("file") if spec.file else "")
            return self._by_header(found, spec.detect)
        inputs: dict[str, tuple[Path, ...]] = {}
        for i, (name, inp) in enumerate(spec.inputs.items()):
            m = find_files(self.folder, table.name, inp.file, where=spec.where(f"inputs.{name}.file"))
            if i == 0:  # the main export of a preset: found by its header when its name is another
                m = self._by_header(m, spec.detect)
            if m.problem is not None:
                return FileMatch(problem=m.problem)
            inputs[name] = m.files
        files = tuple(sorted({p for fs in inputs.values() for p in fs}))
        return FileMatch(files=files, inputs=inputs)

    def _by_header(self, found: FileMatch, detect: Sequence[Sequence[str]]) -> FileMatch:
        """When a mapping's file name matches nothing but its ``detect`` signature matches the header of
        files in the folder (tools name downloads in many ways: `data-export.csv`), read those."""
        from .mapping import matches

        if found.files or found.problem is None or not detect or not found.problem.detail.startswith("no file"):
            return found
        hits = []
        for path in sorted(self.folder.iterdir()):
            if path.is_file() and path.name.lower().endswith((".csv", ".csv.gz", ".tsv", ".txt")):
                header = read_header(path)
                if header and matches(detect, header):
                    hits.append(path)
        if not hits:
            return found
        twins = _identical(hits)
        if twins:
            return FileMatch(problem=_twins_problem(hits[0].name, "", twins))
        return FileMatch(files=tuple(hits))

    # -- tables -------------------------------------------------------------------------------------
    def read(self, table: Table, spec: TableMapping | None = None, match: FileMatch | None = None) -> RawTable:
        """Read ``table`` by ``spec`` (None: its contract names in ``<table>.csv``/...)."""
        spec = spec or TableMapping()
        match = match or self.locate(table, spec)
        if match.problem is not None:
            return RawTable(table.name, label=match.problem.file, problems=[match.problem])
        if not match.files:
            return RawTable(table.name)
        try:
            if spec.query is not None:
                out = self._read_query(table, spec, match)
            elif all(_is_parquet(p) for p in match.files):
                out = self._read_parquet(table, spec, match.files)
            else:
                out = self._read_text(table, spec, match.files)
        except _Refused as exc:
            out = RawTable(table.name, files=match.files, label=exc.problems[0].file, problems=list(exc.problems))
        if spec.period is not None:
            out.period = Coverage(spec.period.start, spec.period.end, "mapping")
        return out

    def period(self, table: Table, spec: TableMapping | None = None, match: FileMatch | None = None) -> Coverage | None:
        """The period ``table``'s export declares, from the mapping or the files' banners only.

        Reads the first lines of each file, not the data: for a source opened from the cache of
        typed tables, which skips :meth:`read`.
        """
        spec = spec or TableMapping()
        if spec.period is not None:
            return Coverage(spec.period.start, spec.period.end, "mapping")
        match = match or self.locate(table, spec)
        periods = []
        for path in match.files:
            if _is_parquet(path):
                continue
            with _open_bytes(path) as fh:
                head = fh.read(1 << 16)
            enc = spec.encoding or _bom_encoding(head) or "utf-8"
            text = head.decode(enc if enc != "utf-8" else "utf-8-sig", "replace")
            dialect, _ = sniff(text, expected=_expected_names(table, spec), read=spec.read)
            if dialect is not None and dialect.period is not None:
                periods.append(dialect.period)
        return _hull(periods)

    def _label(self, files: Sequence[Path], spec: TableMapping) -> str:
        if len(files) == 1:
            return files[0].name
        return Path(spec.file).name if spec.file else files[0].name

    def _rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.folder))
        except ValueError:
            return path.name

    # -- text ---------------------------------------------------------------------------------------
    def _read_text(self, table: Table, spec: TableMapping, files: Sequence[Path]) -> RawTable:
        label = self._label(files, spec)
        expected = _expected_names(table, spec)
        parts, headers, dropped, periods = [], [], [], {}
        problems: list[Problem] = []
        missing: dict[str, str] = {}
        for i, path in enumerate(files):
            name = f"__part_{table.name}_{i}" if len(files) > 1 else f"__raw_{table.name}"
            try:
                export = self._load_text(path, spec.read, spec.encoding, expected, spec, table.name)
            except _Refused as exc:
                problems += exc.problems
                continue
            headers.append(export.header)
            dropped += [f"{path.name}: {d}" for d in export.dropped]
            if export.period is not None:
                periods[self._rel(path)] = export.period
            dups = _duplicates(export.raw_header, expected)
            if dups:
                problems.append(_duplicate_problem(path.name, dups))
                continue
            wrong = _not_this_export(path, spec, export.header)
            if wrong is not None:
                problems.append(wrong)
                continue
            exprs, miss = spec.select_exprs(table, export.header)
            exprs, bad = self._probe(self._reader(export, export.opts), exprs, spec)
            for c in miss:
                missing.setdefault(c, "")
            for c, why in bad.items():
                missing.setdefault(c, why)
            if miss and len(files) == 1:
                problems += _header_problems(path, table, spec, export, miss)
            where = f" WHERE ({spec.filter})" if spec.filter else ""
            src = f" {literal(self._rel(path))} AS {ROW_FILE}," if len(files) > 1 else ""
            selected = ", ".join(f"{e} AS {ident(n)}" for n, e in exprs)
            try:
                # One pass over the file: parse, map and filter into the raw table.
                self._run(
                    export,
                    lambda reader, name=name, src=src, selected=selected, where=where: (  # type: ignore[misc]  # mypy#15459: a lambda binding a loop variable by default
                        f"CREATE OR REPLACE TEMP TABLE {ident(name)} AS "
                        f"SELECT {ROW},{src} {selected} FROM {reader}{where}"
                    ),
                    table.name,
                )
            except _Refused as exc:
                problems += exc.problems
                continue
            parts.append(name)
        if problems and not parts:
            return RawTable(table.name, files=tuple(files), label=label, problems=problems, dropped=tuple(dropped))
        final = f"__raw_{table.name}"
        if len(parts) > 1 or (parts and parts[0] != final):
            union = " UNION ALL BY NAME ".join(f"SELECT * FROM {ident(p)}" for p in parts)
            # Rows in file order, then row order: the same table on every read.
            _raw(
                self.con,
                f"CREATE OR REPLACE TEMP TABLE {ident(final)} AS SELECT * FROM ({union}) ORDER BY {ROW_FILE}, {ROW}",
            )
            for p in parts:
                _raw(self.con, f"DROP TABLE IF EXISTS {ident(p)}")
        raw = RawTable(
            table.name,
            files=tuple(files),
            label=label,
            header=headers[0] if headers else (),
            missing=missing,
            dropped=tuple(dropped),
            problems=problems,
            file_periods=periods,
            period=_hull(periods.values()),
        )
        self._numbers(raw, final, table, spec, label, missing)
        raw.relation = self.con.table(final)
        return raw

    def _load_text(
        self,
        path: Path,
        read: Mapping[str, Any],
        encoding: str | None,
        expected: set[str],
        spec: TableMapping,
        table: str,
    ) -> _Export:
        """Prepare one text export for reading: its encoding (a UTF-8 copy when it is not), header,
        delimiter, banner and footer (a copy without it), and DuckDB's options; nothing is read yet."""
        read = sqlguard.check_read_options(read, where=spec.where("read"))
        with _open_bytes(path) as fh:
            head = fh.read(HEAD_BYTES)
        if head.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
            raise _Refused(_excel_problem(path.name, path))
        declared = encoding
        source = path
        enc = (declared or _bom_encoding(head) or "utf-8").lower().replace("_", "-")
        if enc not in ("utf-8", "utf8", "utf-8-sig"):
            try:
                source = _transcode(path, enc, self.scratch)
            except (UnicodeDecodeError, LookupError) as exc:
                raise _Refused(
                    ReadProblem(
                        path.name,
                        "",
                        "declare the encoding the tool wrote (`encoding:` in the mapping) or re-export as UTF-8",
                        0,
                        detail=f"cannot be read as {enc}: {_short(exc, 120)}",
                    )
                ) from None
            with open(source, "rb") as fh:
                head = fh.read(HEAD_BYTES)
        text = head.decode("utf-8", "replace")
        truncated = len(head) >= HEAD_BYTES
        if truncated:
            text = text[: max(text.rfind("\n"), 0)]
        if "\x00" in text[:4096]:
            raise _Refused(
                ReadProblem(
                    path.name,
                    "",
                    "re-export it as UTF-8, or declare `encoding: utf-16-le` (or `utf-16-be`) in the mapping",
                    0,
                    detail="looks like UTF-16 text without a byte-order mark (NUL bytes between characters)",
                )
            )
        dialect, why = sniff(text, expected=expected, read=read)
        if dialect is None:
            raise _Refused(ReadProblem(path.name, "", "export the table with its header line", 0, detail=why))
        report_like = bool(dialect.banner)
        size = source.stat().st_size if source.suffix != ".gz" else None
        footer_at: int | None = None
        what: list[str] = []
        if size is not None:
            tail_at = max(0, size - TAIL_BYTES)
            with open(source, "rb") as fh:
                fh.seek(tail_at)
                tail = fh.read()
            try:
                footer_at, what = find_footer(tail, dialect, report_like=report_like, at=tail_at)
            except FooterConflict as exc:
                raise _Refused(
                    ReadProblem(
                        path.name,
                        "",
                        "remove the lines after the data, or the blank line inside it (the kit does not guess which)",
                        0,
                        detail=str(exc),
                    )
                ) from None
        dropped = [f"{len(dialect.banner)} banner lines above the header"] if dialect.banner else []
        if footer_at is not None:
            source = _truncate(source, footer_at, self.scratch)
            dropped += what
        header = _unique(dialect.header)
        opts = {
            "header": dialect.has_header,
            "skip": _skip_lines(dialect, read.get("comment")),
            "delim": dialect.delimiter,
            "quote": dialect.quote,
            "escape": dialect.escape,
            "auto_detect": False,
            **{k: v for k, v in read.items() if k not in ("delimiter", "skip", "header", "quote", "escape")},
        }
        return _Export(path, source, opts, header, tuple(dropped), dialect.period, dialect.header, dialect, declared)

    def _reader(self, export: _Export, opts: Mapping[str, Any]) -> str:
        """``(SELECT __row, <header columns> FROM read_csv(...))``: the export's cells as text."""
        cols = ", ".join(f"{literal(f'c{i}')}: 'VARCHAR'" for i in range(len(export.header)))
        renamed = ", ".join(f"{ident(f'c{i}')} AS {ident(h)}" for i, h in enumerate(export.header))
        rendered = ", ".join(f"{k}={_render(v)}" for k, v in opts.items())
        return (
            f"(SELECT row_number() OVER () AS {ROW}, {renamed} "
            f"FROM read_csv({literal(str(export.source))}, columns={{{cols}}}, {rendered}))"
        )

    def _run(self, export: _Export, make: Callable[[str], str], table: str) -> None:
        """Execute ``make(reader)`` (a statement reading the export once), retrying what reads right with
        other options (a field over 2 MB, mixed line endings); refuse with what was found otherwise."""
        opts = dict(export.opts)
        for _attempt in range(3):
            try:
                _raw(self.con, make(self._reader(export, opts)))
                return
            except Exception as exc:
                retry = self._retry(exc, export.source, opts)
                if retry is None:
                    raise _Refused(self._explain(exc, export, table)) from None
                opts = retry

    def _retry(self, exc: BaseException, source: Path, opts: dict[str, Any]) -> dict[str, Any] | None:
        """Options that read what failed right (a long field, mixed line endings), or None."""
        msg = str(exc)
        m = re.search(r"Maximum line size of \d+ bytes exceeded\. Actual Size:\s*(\d+)", msg)
        if m and "max_line_size" not in opts:
            return {**opts, "max_line_size": max(int(m.group(1)) * 2, 1 << 22)}
        invalid = "state machine reached an invalid state" in msg and opts.get("strict_mode") is not False
        if invalid and _mixed_line_endings(source):
            # Mixed LF/CRLF endings: the relaxed parser reads them right (each line ends at its own \n).
            return {**opts, "strict_mode": False}
        return None

    def _explain(self, exc: BaseException, export: _Export, table: str) -> Problem:
        path, source, dialect, declared = export.path, export.source, export.dialect, export.declared
        msg = str(exc)
        first, hint = _duckdb_message(exc)
        found = (
            f"read as {declared or 'UTF-8'}, delimiter {dialect.delimiter!r}, "
            f"{len(dialect.header)} columns in the header (line {dialect.skip + 1})"
        )
        if "Invalid unicode" in msg or "not utf-8 encoded" in msg:
            problem = encoding_problem(source, path.name, table)
            if problem is not None:
                return problem
        m = re.search(r"Expected Number of Columns:\s*(\d+)\s*Found:\s*(\d+)", msg)
        line = re.search(r"CSV Error on Line:\s*(\d+)", msg)
        if m and line:
            n_line = int(line.group(1))
            return ReadProblem(
                path.name,
                "",
                "quote the fields that hold the delimiter, or remove the stray row"
                + (f" (DuckDB: {hint})" if hint else ""),
                0,
                detail=(
                    f"line {n_line} (row {n_line - dialect.skip - 1}) has {m.group(2)} fields, the header has "
                    f"{m.group(1)} ({found})"
                ),
            )
        if not any(w in msg for w in ("CSV", "sniff", "unicode", "line size", "state machine")):
            return ReadProblem(
                path.name,
                "",
                "fix the mapping's `expressions` or `filter` for this export",
                0,
                detail=f"the mapping's SQL fails on this export: {_short(first, 200)}",
            )
        return ReadProblem(
            path.name,
            "",
            "check the export's format" + (f" (DuckDB: {hint})" if hint else ""),
            0,
            detail=f"cannot be read as CSV ({found}): {_short(first, 200)}",
        )

    def _probe(self, rel: str, exprs: list[tuple[str, str]], spec: TableMapping) -> tuple[list, dict[str, str]]:
        """Each mapping expression bound on this export: those that fail become NULL, with why."""
        bad: dict[str, str] = {}
        out = []
        for col, e in exprs:
            if col in spec.expressions:
                try:
                    _raw(self.con, f"SELECT {e} FROM {rel} LIMIT 0")
                except Exception as exc:
                    bad[col] = _duckdb_message(exc)[0]
                    e = "NULL"
            out.append((col, e))
        return out, bad

    # -- numbers and dates --------------------------------------------------------------------------
    def _numbers(
        self, raw: RawTable, name: str, table: Table, spec: TableMapping, label: str, missing: Mapping[str, str]
    ) -> None:
        """Rewrite the table's number columns as plain text by the table's number format."""
        schema = self.con.table(name).schema()
        cols = [
            (c.name, c.kind)
            for c in table.columns
            if c.kind in NUMERIC_KINDS and c.name not in missing and schema[c.name].is_string()
        ]
        raw.currencies = self._apply_numbers(name, cols, spec.numbers, label, raw.problems, view=raw.parquet)

    def _apply_numbers(
        self,
        name: str,
        cols: Sequence[tuple[str, str]],
        declared: NumberFormat | None,
        label: str,
        problems: list[Problem],
        *,
        view: bool = False,
    ) -> dict[str, tuple[str, ...]]:
        """Survey ``cols`` of ``name``, decide their format, and rewrite the ones that need it.

        ``view``: ``name`` is a view (Parquet, read in place): it is redefined, not materialised.
        Returns the currencies seen per amount column.
        """
        if not cols:
            return {}
        survey = self._survey(name, [c for c, _ in cols])
        fmts = _decide(survey, cols, declared, label, problems)
        currencies = {
            c: tuple(sorted({_currency_code(m) for m in survey[c].currencies}))
            for c, kind in cols
            if kind == "amount" and survey[c].currencies
        }
        rewrite = {c: f for c, f in fmts.items() if f is not None and survey[c].rewrite(f[0])}
        if rewrite:
            schema = self.con.table(name).schema()
            sel = [
                f"{canonical_number_sql(ident(c), *rewrite[c])} AS {ident(c)}" if c in rewrite else ident(c)
                for c in schema
            ]
            if view:
                inner = f"{name}__text"
                _raw(self.con, f"ALTER VIEW {ident(name)} RENAME TO {ident(inner)}")
                _raw(self.con, f"CREATE TEMP VIEW {ident(name)} AS SELECT {', '.join(sel)} FROM {ident(inner)}")
            else:
                _raw(
                    self.con,
                    f"CREATE OR REPLACE TEMP TABLE {ident(name)} AS SELECT {', '.join(sel)} FROM {ident(name)}",
                )
        return currencies

    def _survey(self, name: str, cols: Sequence[str]) -> dict[str, _Survey]:
        """In one query, per column: the shapes of its distinct cells that are not plain digits.

        Plain digits (most cells of most exports) are filtered out before any other pattern runs,
        and each distinct cell is parsed once.
        """
        parts = " UNION ALL ".join(
            f"SELECT {literal(c)} AS col, x FROM (SELECT DISTINCT CAST({ident(c)} AS VARCHAR) AS x "
            f"FROM {ident(name)} WHERE {ident(c)} IS NOT NULL "
            f"AND NOT regexp_full_match(CAST({ident(c)} AS VARCHAR), '[0-9]+'))"
            for c in cols
        )
        m = f"regexp_extract(x, {literal(_NUMBER_RE)}, ['s1', 'c1', 's2', 'n', 'c2'])"
        spaced = f"regexp_full_match(m.n, {literal('[0-9]{1,3}(' + _SEP + '[0-9]{3})+([.,][0-9]+)?')})"
        core = f"CASE WHEN {spaced} THEN regexp_replace(m.n, {literal(_SEP)}, '', 'g') ELSE m.n END"
        shape = {k: f"regexp_full_match(core, {literal(p)})" for k, p in _PATTERNS.items()}
        shape["dec_dot"] = f"({shape['dec_dot']} AND NOT {shape['amb_dot']})"
        shape["dec_comma"] = f"({shape['dec_comma']} AND NOT {shape['amb_comma']})"
        separated = " OR ".join(shape[k] for k in ("amb_dot", "amb_comma", "dec_dot", "dec_comma"))
        counts = ", ".join(f"count_if({cond}) AS {k}" for k, cond in shape.items())
        sql = (
            f"WITH v AS ({parts}), p AS (SELECT col, x, {m} AS m FROM v), "
            f"q AS (SELECT col, x, NULLIF(COALESCE(NULLIF(m.c1, ''), m.c2), '') AS cur, {core} AS core FROM p) "
            f"SELECT col, {counts}, (list(x ORDER BY x) FILTER (WHERE {separated}))[1:{EXAMPLES}] AS ex, "
            f"list(DISTINCT cur) FILTER (WHERE cur IS NOT NULL) AS cur, "
            f"count_if(NOT regexp_full_match(x, '[0-9]+[.][0-9]+')) AS odd "
            f"FROM q GROUP BY col"
        )
        found = {c: _Survey() for c in cols}
        n = len(_PATTERNS)
        for col, *vals in _raw(self.con, sql).fetchall():
            found[col] = _Survey(
                counts=dict(zip(_PATTERNS, vals[:n], strict=True)),
                examples=tuple(str(v) for v in (vals[n] or ())),
                currencies=tuple(str(v) for v in (vals[n + 1] or ())),
                odd=int(vals[n + 2] or 0),
                present=True,
            )
        return found

    # -- parquet ------------------------------------------------------------------------------------
    def _read_parquet(self, table: Table, spec: TableMapping, files: Sequence[Path]) -> RawTable:
        parts = [p for f in files for p in _parquet_parts(f)]
        label = files[0].name if len(files) == 1 else self._label(files, spec)
        listed = "[" + ", ".join(literal(str(p)) for p in parts) + "]"
        several = len(parts) > 1
        reader = (
            f"read_parquet({listed}, file_row_number=true"
            + (", filename=true, union_by_name=true" if several else "")
            + ")"
        )
        try:
            header = tuple(self.con.sql(f"SELECT * FROM {reader} LIMIT 0").columns)
        except Exception as exc:
            first, _ = _duckdb_message(exc)
            raise _Refused(
                ReadProblem(
                    label,
                    "",
                    "re-export the Parquet file",
                    0,
                    detail=f"cannot be read as Parquet: {_short(first, 200)}",
                )
            ) from None
        header = tuple(h for h in header if h not in ("file_row_number", "filename"))
        exprs, missing = spec.select_exprs(table, header)
        view = f"__export_{table.name}"
        row = f"file_row_number + 1 AS {ROW}" + (f", parse_filename(filename) AS {ROW_FILE}" if several else "")
        _raw(self.con, f"CREATE OR REPLACE TEMP VIEW {ident(view)} AS SELECT * FROM {reader}")
        exprs, bad = self._probe(ident(view), exprs, spec)
        where = f" WHERE ({spec.filter})" if spec.filter else ""
        selected = ", ".join(f"{e} AS {ident(n)}" for n, e in exprs)
        name = f"__raw_{table.name}"
        _raw(
            self.con,
            f"CREATE OR REPLACE TEMP VIEW {ident(name)} AS SELECT {row}, {selected} FROM {ident(view)}{where}",
        )
        miss = {c: "" for c in missing} | bad
        raw = RawTable(table.name, files=tuple(files), label=label, header=header, missing=miss, parquet=True)
        self._numbers(raw, name, table, spec, label, miss)
        raw.relation = self.con.table(name)
        return raw

    # -- queries ------------------------------------------------------------------------------------
    def _read_query(self, table: Table, spec: TableMapping, match: FileMatch) -> RawTable:
        label = f"{spec.origin.strip('`') or 'mapping'}#{table.name}"
        tree = sqlguard.check_query(spec.query or "", spec.inputs, where=spec.where("query"))
        referenced = sqlguard.column_names(spec.query or "")
        views: dict[str, str] = {}
        problems: list[Problem] = []
        dropped: list[str] = []
        periods: dict[str, Coverage] = {}
        for name, inp in spec.inputs.items():
            view = f"__in_{table.name}_{name}"
            try:
                self._read_input(
                    view, inp, match.inputs[name], referenced, spec, table.name, problems, dropped, periods
                )
            except _Refused as exc:
                problems += exc.problems
                continue
            views[name] = view
        if len(views) < len(spec.inputs):
            return RawTable(table.name, files=match.files, label=label, problems=problems)
        sql = sqlguard.render_query(tree, views)
        result = f"__q_{table.name}"
        try:
            _raw(
                self.con,
                f"CREATE OR REPLACE TEMP TABLE {ident(result)} AS SELECT row_number() OVER () AS {ROW}, * FROM ({sql})",
            )
        except Exception as exc:
            first, hint = _duckdb_message(exc)
            problems.append(
                ReadProblem(
                    label,
                    "",
                    f"fix the query ({spec.where('query')})" + (f"; DuckDB: {hint}" if hint else ""),
                    0,
                    detail=f"the mapping's query fails: {_short(first, 240)}",
                )
            )
            return RawTable(table.name, files=match.files, label=label, problems=problems)
        header = tuple(c for c in self.con.table(result).columns if c != ROW)
        exprs, missing = spec.select_exprs(table, header)
        exprs, bad = self._probe(ident(result), exprs, spec)
        overlap = self._query_overlap(table, tree, views, match, dict(exprs), label)
        if overlap is not None:
            problems.append(overlap)
            return RawTable(table.name, files=match.files, label=label, problems=problems)
        where = f" WHERE ({spec.filter})" if spec.filter else ""
        selected = ", ".join(f"{e} AS {ident(n)}" for n, e in exprs)
        final = f"__raw_{table.name}"
        _raw(
            self.con,
            f"CREATE OR REPLACE TEMP TABLE {ident(final)} AS SELECT {ROW}, {selected} FROM {ident(result)}{where}",
        )
        _raw(self.con, f"DROP TABLE IF EXISTS {ident(result)}")
        miss = {c: "" for c in missing} | bad
        raw = RawTable(
            table.name,
            files=match.files,
            label=label,
            header=header,
            missing=miss,
            problems=problems,
            dropped=tuple(dropped),
            file_periods=periods,
            period=_hull(periods.values()),
        )
        self._numbers(raw, final, table, spec, label, miss)
        raw.relation = self.con.table(final)
        return raw

    def _query_overlap(
        self, table: Table, tree: Any, views: Mapping[str, str], match: FileMatch, exprs: Mapping[str, str], label: str
    ) -> Problem | None:
        """Files of one query input whose query results overlap in time: the same period exported twice.

        A query hides which file a row came from, so the query runs once per file of each input that
        has several (the other inputs whole) and the date ranges of the results are compared.
        """
        col = table.date_column
        if col is None or col not in exprs or exprs[col] == "NULL":
            return None
        spans: list[tuple[str, str, str]] = []
        for name, files in match.inputs.items():
            if len(files) < 2:
                continue
            for path in files:
                only = f"{views[name]}__one"
                _raw(
                    self.con,
                    f"CREATE OR REPLACE TEMP VIEW {ident(only)} AS SELECT * FROM {ident(views[name])} "
                    f"WHERE {ROW_FILE} = {literal(self._rel(path))}",
                )
                sql = sqlguard.render_query(tree, {**views, name: only})
                lo, hi = _raw(
                    self.con, f"SELECT min(d), max(d) FROM (SELECT CAST({exprs[col]} AS VARCHAR) AS d FROM ({sql}))"
                ).fetchone()
                if lo is not None and hi is not None:
                    spans.append((str(lo), str(hi), path.name))
        spans.sort()
        clashes = [f"`{b[2]}` and `{a[2]}`" for i, a in enumerate(spans) for b in spans[:i] if a[0] <= b[1]]
        if not clashes:
            return None
        return ReadProblem(
            label,
            table.date_column or "",
            "keep one file per period (those days would be counted twice)",
            len(clashes),
            detail=f"files of one input overlap in time: {', '.join(clashes[:5])}",
        )

    def _read_input(
        self,
        view: str,
        inp: InputSpec,
        files: Sequence[Path],
        referenced: set[str],
        spec: TableMapping,
        table: str,
        problems: list[Problem],
        dropped: list[str],
        periods: dict[str, Coverage],
    ) -> None:
        """One query input as a temp table of its export's columns (text), ``__row`` and ``__file``."""
        expected = {n.casefold() for n in referenced | set(inp.numbers.columns if inp.numbers else [])}
        parts = []
        for i, path in enumerate(files):
            if _is_parquet(path):
                listed = "[" + ", ".join(literal(str(p)) for p in _parquet_parts(path)) + "]"
                part = f"{view}_{i}"
                _raw(
                    self.con,
                    f"CREATE OR REPLACE TEMP VIEW {ident(part)} AS SELECT file_row_number + 1 AS {ROW}, "
                    f"{literal(self._rel(path))} AS {ROW_FILE}, * EXCLUDE (file_row_number) "
                    f"FROM read_parquet({listed}, file_row_number=true)",
                )
                parts.append(part)
                continue
            export = self._load_text(path, inp.read, inp.encoding, expected, spec, table)
            dropped += [f"{path.name}: {d}" for d in export.dropped]
            if export.period is not None:
                periods[self._rel(path)] = export.period
            dups = _duplicates(export.raw_header, None)
            if dups:
                raise _Refused(_duplicate_problem(path.name, dups))
            part = f"{view}_{i}"
            rel = literal(self._rel(path))
            self._run(
                export,
                lambda reader, part=part, rel=rel: (  # type: ignore[misc]  # mypy#15459: a lambda binding a loop variable by default
                    f"CREATE OR REPLACE TEMP TABLE {ident(part)} AS "
                    f"SELECT {ROW}, {rel} AS {ROW_FILE}, * EXCLUDE ({ROW}) FROM {reader}"
                ),
                table,
            )
            parts.append(part)
        union = " UNION ALL BY NAME ".join(f"SELECT * FROM {ident(p)}" for p in parts)
        _raw(self.con, f"CREATE OR REPLACE TEMP TABLE {ident(view)} AS {union}")
        numbers = inp.numbers
        if numbers and numbers.columns:
            schema = self.con.table(view).schema()
            folded = {c.casefold(): c for c in schema}
            absent = [c for c in numbers.columns if c.casefold() not in folded]
            if absent:
                raise _Refused(
                    ReadProblem(
                        files[0].name,
                        "",
                        f"check `numbers.columns` of the input ({spec.where('inputs')})",
                        0,
                        detail=f"no column {', '.join(f'`{c}`' for c in absent)} in this export (it has "
                        f"{', '.join(f'`{c}`' for c in list(schema)[:12] if c not in (ROW, ROW_FILE))})",
                    )
                )
            cols = [
                (folded[c.casefold()], "amount") for c in numbers.columns if schema[folded[c.casefold()]].is_string()
            ]
            self._apply_numbers(view, cols, numbers, files[0].name, problems)


@dataclass(frozen=True)
class _Export:
    """A text export ready to read: the (UTF-8, footer-less) file, DuckDB's options, what was found."""

    path: Path
    source: Path
    opts: Mapping[str, Any]
    header: tuple[str, ...]
    dropped: tuple[str, ...]
    period: Coverage | None
    raw_header: tuple[str, ...]
    dialect: Dialect
    declared: str | None


class _Refused(KpiError, ValueError):
    """A file that cannot be read: carries its problems to :meth:`ExportReader.read`."""

    def __init__(self, *problems: Problem) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def _skip_lines(dialect: Dialect, comment: str | None) -> int:
    """``skip`` for DuckDB: with a ``comment`` character it skips comment lines itself, so only the others count."""
    if not comment:
        return dialect.skip
    return sum(1 for ln in dialect.banner if ln.strip() and not ln.lstrip("\ufeff").lstrip().startswith(comment))


def _render(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    return literal(str(v))


def _unique(header: Sequence[str]) -> tuple[str, ...]:
    """Header names made unique (``name (2)``) and never empty (``column3``)."""
    seen: dict[str, int] = {}
    out = []
    for i, h in enumerate(header):
        name = h if h.strip() else f"column{i}"
        key = name.casefold()
        seen[key] = seen.get(key, 0) + 1
        out.append(name if seen[key] == 1 else f"{name} ({seen[key]})")
    return tuple(out)


def _duplicates(header: Sequence[str], used: set[str] | None) -> dict[str, list[int]]:
    """Names the header holds twice (1-based positions), among ``used`` names (None: all)."""
    pos: dict[str, list[int]] = {}
    for i, h in enumerate(header):
        pos.setdefault(h.strip().casefold(), []).append(i + 1)
    return {
        header[p[0] - 1]: p
        for k, p in pos.items()
        if len(p) > 1 and k and (used is None or k in used or re.sub(r" \(\d+\)$", "", k) in used)
    }


def _duplicate_problem(label: str, dups: Mapping[str, list[int]]) -> ReadProblem:
    desc = "; ".join(f"`{n}` at columns {' and '.join(map(str, p))}" for n, p in dups.items())
    return ReadProblem(
        label,
        "",
        "rename or remove one of them in the export (the kit does not pick one)",
        0,
        detail=f"the header names a column twice: {desc}",
    )


def _expected_names(table: Table, spec: TableMapping) -> set[str]:
    names = {c.name for c in table.columns} | spec.referenced_columns()
    return {n.strip().casefold() for n in names}


def _header_problems(
    path: Path, table: Table, spec: TableMapping, export: _Export, missing: Sequence[str]
) -> list[Problem]:
    """When contract columns are missing: the columns the header has, and a preset that fits."""
    from .mapping import preset_description, recognise

    found = ", ".join(f"`{_short(h, 40)}`" for h in export.header[:15]) + (", ..." if len(export.header) > 15 else "")
    fix = "map the contract's columns with a mapping (`columns:`; see kpi_helpers/mapping.py)"
    try:
        preset = recognise(export.header)
    except MappingError:
        preset = None
    if preset is not None and not spec.origin:
        fix = f"this looks like the export the `{preset[0]}` preset reads: add `--mapping {preset[0]}`"
    elif spec.origin.startswith("`preset "):
        name = spec.origin.strip("`").removeprefix("preset ")
        fix = (
            f"re-export it with what the `{name}` preset reads (its description: "
            f"{_short(preset_description(name), 400)})"
        )
    detail = (
        f"{len(missing)} of the table's columns not found; the header read has {len(export.header)} columns: {found}"
    )
    wanted = _expected_names(table, spec)
    if not any(h.strip().casefold() in wanted for h in export.header):
        detail += "; the file begins: " + " / ".join(repr(ln) for ln in first_lines(path))
    return [ReadProblem(path.name, "", fix, 0, detail=detail)]


def _not_this_export(path: Path, spec: TableMapping, header: Sequence[str]) -> Problem | None:
    """A preset given for a file whose header is not the preset's export (its ``detect`` signature
    does not match): say so, and which preset the header matches, instead of reading columns wrong."""
    from .mapping import matches, recognise

    if not spec.detect or not spec.origin.startswith("`preset ") or matches(spec.detect, header):
        return None
    other = recognise(header)
    name = spec.origin.strip("`").removeprefix("preset ")
    if other is None or other[0] == name:
        return None  # not another known export: the missing columns' own messages say what the preset reads
    fix = f"use `--mapping {other[0]}` instead"
    return ReadProblem(
        path.name,
        "",
        fix,
        0,
        detail=f"this is not the export the `{name}` preset reads (its header lacks that export's columns)",
    )


def _hull(periods: Iterable[Coverage]) -> Coverage | None:
    ps = list(periods)
    if not ps:
        return None
    return Coverage(min(p.start for p in ps), max(p.end for p in ps), ps[0].source)


def holds_sql(specs: Iterable[TableMapping]) -> bool:
    """Whether any mapping entry runs SQL of its own (``expressions``, ``filter`` or ``query``).

    The connection is confined (:func:`kpi_helpers.sqlguard.confine`) only then: with no mapping SQL
    there is nothing to contain, and the source's connection stays free for the caller (attaching a
    warehouse, writing Parquet).

    Examples
    --------
    >>> holds_sql([TableMapping(columns={"revenue": "Umsatz"})]), holds_sql([TableMapping(filter="x > 0")])
    (False, True)
    """
    return any(s.expressions or s.filter or s.query for s in specs)


def read_header(path: Path, *, expected: Iterable[str] = (), encoding: str | None = None) -> tuple[str, ...] | None:
    """The header of a text export (banner lines skipped), from its first bytes; None if unreadable.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.csv"
    >>> _ = p.write_text("# Site\\n\\nChannel;Users\\nDirect;5\\n")
    >>> read_header(p)
    ('Channel', 'Users')
    """
    try:
        with _open_bytes(path) as fh:
            head = fh.read(1 << 16)
        enc = encoding or _bom_encoding(head) or "utf-8"
        text = head.decode("utf-8-sig" if enc == "utf-8" else enc)
    except (OSError, UnicodeDecodeError, LookupError, EOFError, gzip.BadGzipFile):
        return None
    dialect, _ = sniff(text, expected=expected)
    return dialect.header if dialect is not None else None


def suggestion(path: Path) -> str | None:
    """For an export the kit cannot read as the contract: the preset its header matches, as advice.

    ``kpi validate`` prints it for files no table claimed, e.g. "`traffic.csv` looks like the export the
    `ga4` preset reads (Google Analytics 4, ...): add `--mapping ga4`".
    """
    from .mapping import preset_description, recognise

    header = read_header(path)
    found = recognise(header) if header else None
    if found is None:
        return None
    name, table = found
    about = _short(preset_description(name), 90)
    return (
        f"`{path.name}` looks like the export the `{name}` preset reads ({about}): "
        f"add `--mapping {name}` (table `{table}`)"
    )


def first_lines(path: Path, n: int = 5) -> list[str]:
    """The first ``n`` lines of a text file (shortened), for messages about a header not found."""
    with _open_bytes(path) as fh:
        head = fh.read(8192)
    return [_short(ln, 80) for ln in _lines(head.decode("utf-8", "replace"))[:n]]
