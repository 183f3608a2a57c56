"""Mappings: read a tool's export as a contract table without editing the file.

A mapping is a YAML file, or the name of a bundled preset (``kpi validate --data DIR --mapping ga4``;
each preset's ``description`` says which report and export option it reads, and what to include):

- web analytics: ``ga4`` (GA4 traffic acquisition), ``ua`` (Universal Analytics channels by day);
- conversion paths: ``ga4-paths`` (GA4 conversion paths), ``ua-paths`` (UA top conversion paths);
- ad spend: ``google-ads`` (Google Ads campaigns by day), ``meta-ads`` (Meta Ads Manager),
  ``linkedin-ads`` (LinkedIn Campaign Manager campaign performance);
- CRM: ``hubspot`` (HubSpot contacts), ``hubspot-deals`` (HubSpot deals), ``salesforce``
  (Salesforce opportunities), ``salesforce-campaign-members`` (Salesforce campaign members).

A mapping says, per contract table, which file holds the table and how its columns become the
contract's. Several mappings may be given (one per tool); they are merged table by table (a table
mapped twice is an error). Tables no mapping names are read from ``<table>.csv`` (``.csv.gz``,
``.parquet``, or a folder ``<table>/`` of Parquet files) under their contract names. Columns the
contract does not know (names, e-mails, phone numbers) are never read into a table.

The format (version 1)::

    version: 1                               # the format of this file (1; may be left out)
    description: GA4 traffic acquisition      # for people
    tables:
      web_sessions:                          # a contract table
        description: ...                     # for people
        file: "traffic_acquisition*.csv"     # export file(s) in the data folder; a glob matching
                                             # several files (monthly exports) reads them all
        encoding: cp1252                     # the file's text encoding when it is not UTF-8
        read: {delimiter: ";", skip: 3}      # how to read the text (see "Reading" below)
        numbers: {decimal: ",", thousands: "."}   # number format of the export (see "Numbers")
        columns:                             # contract column: export column, or a list of
          channel: [Session primary channel group (Default Channel Group), Session default channel group]
          sessions: Sessions                 #   alternative names (the first present wins)
        formats: {date: "%Y%m%d"}            # strptime format of a date or time column
        values:                              # value renames; "*" catches every other value and
          channel: {Unassigned: (not set), "": (not set)}   # "" (or null) an empty cell
        defaults: {device: "(not set)"}      # constant for a column the export lacks (null: empty)
        expressions:                         # DuckDB SQL over the export's columns (quoted names)
          session_duration_s: 'TRY_CAST("Average engagement time" AS DOUBLE) * TRY_CAST("Sessions" AS DOUBLE)'
        filter: '"Date" IS NOT NULL'         # keep only the rows where this holds
        period: {start: 2025-01-01, end: 2025-03-31}   # the dates the export covers
        detect: ["Session primary channel group (Default Channel Group)", "Engaged sessions"]

**Files.** ``file`` is a file name or a glob relative to the data folder (``../`` and absolute
paths are refused). Without it the table is ``<table>.csv`` (or ``.csv.gz``, ``.parquet``, a
folder of Parquet files); a table present in two formats is refused (the kit never guesses which
is newer). A glob that matches several files unions them; errors then name the file of each row.
A file named explicitly that matches nothing is an error; a table without a mapping and without a
file is simply absent. Two tables may read the same file (leads and touchpoints from one
touch-level export).

**Reading.** Text exports are read as text and checked by the contract. The reader finds the
header itself: banner lines above it (a Universal Analytics ``# ----`` block, GA4's ``#``
comments, a title line) are skipped, and a footer after the data (a blank line, then totals,
``Day Index`` blocks, copyright lines) and a totals row at the end are dropped; what was dropped
is reported. The delimiter (``,`` ``;`` tab ``|``) is detected from the header. UTF-8 (with or
without BOM) and UTF-16 with a BOM are read; any other encoding must be declared (``encoding:``
any Python codec name, e.g. ``cp1252``, ``cp1250``, ``latin-1``), otherwise the file is refused
naming the line and byte that are not UTF-8. ``read:`` overrides what detection would choose;
allowed keys: ``delimiter`` (or ``delim``/``sep``), ``quote``, ``escape``, ``header`` (false: no
header line, columns are ``column0``, ``column1``, ...), ``skip`` (lines above the header),
``comment``, ``null_padding`` (pad short rows with empty cells), ``strict_mode``,
``max_line_size``, ``new_line``, ``null``/``nullstr`` (text read as empty), ``compression``
(``auto``, ``none``, ``gzip``, ``zstd``).

**Numbers.** Amount and count columns in text exports are read as numbers in the format of the
table, declared or detected. ``numbers: {decimal: ",", thousands: "."}`` declares it (``thousands``
may be ``,``, ``.``, ``" "``, ``"'"`` or ``""``); ``currency: [CHF]`` names extra currency marks.
Without a declaration the format is detected only when the export settles it, per column and
consistently across the file: a value with both separators (``12.500,00``), a separator followed
by other than three digits (``4,5``), a separator used twice (``1.234.567``), or a separator in a
count column (``1.234`` visits can only be thousands). A column whose separated values all have
exactly three digits after a single separator (``4.340``: 4.34 or 4340?) is refused with the
declaration to add; so is a column, or a file, that mixes two conventions. Currency marks
(``$``, ``€``, ``£``, ``EUR``, ``USD``, ``1 234,56 €``) are stripped and the currencies seen are
reported (amounts in two currencies are never summed). ``NaN`` and ``inf`` are left for the
checks to refuse.

**Dates.** ISO dates and times (``2025-01-31``, ``2025-01-31 14:05:00``) are read as they are;
any other format needs ``formats:`` (``%m/%d/%Y``, ``%d.%m.%Y``, ``%Y.%m.%d %H:%M``, ``%Y%m%d``,
Python strptime codes). A column of ``1/31/2025``-like text without one is refused with the
``formats:`` line to add.

**Values and expressions.** ``values`` renames values of a text column after trimming (``"*"``:
every other value; ``""`` or ``null``: empty cells). ``expressions`` give a contract column as a
DuckDB SQL expression over the export's columns (quote names with spaces: ``"Close Date"``);
``filter`` is a SQL condition, rows where it is not true are dropped. Both are checked before
they run (see **Confinement**).

**Reshaping: a query.** What renaming cannot do (aggregate hit-level rows to days, unpivot one
column per channel, derive two tables from one file, weekly to monthly, take dates from another
file) is a SQL query over named inputs::

    tables:
      spend:
        inputs:                              # name: file glob, or name: {file, read, encoding, numbers}
          wide: {file: "spend_wide.csv", numbers: {columns: [Google Ads, LinkedIn]}}
        query: |
          SELECT "Date" AS date, channel, 'media' AS cost_type, CAST(amount AS DOUBLE) AS amount
          FROM wide UNPIVOT (amount FOR channel IN ("Google Ads", "LinkedIn"))

Each input is read like an export (encodings, banners, footers) into text columns under its
header's names; ``numbers: {columns: [...]}`` turns those columns into plain numbers (``1234.5``)
by the rules above, so the query can ``CAST`` them. The query's result is then read like an
export: its columns are taken by contract name (or through ``columns``, ``values``, ``formats``,
``expressions``, ``filter``), and checked by the contract. ``file`` and ``query`` exclude each
other.

**Confinement.** A mapping is data people download and share, so its SQL may read the files of
the data folder and nothing else. ``query`` must be one ``SELECT`` (``WITH`` and ``UNION`` allowed;
DuckDB's ``PIVOT``/``UNPIVOT``) whose tables are its inputs and its own ``WITH`` names;
``expressions`` and ``filter`` are single expressions without subqueries. Statements (``COPY``,
``ATTACH``, ``INSTALL``, ``LOAD``, ``SET``, ``PRAGMA``, ``CALL``, ``CREATE``, ``DROP``,
``INSERT``, ...), table functions (``read_csv``, ``read_text``, ``glob``, ...), file paths as
tables and a second statement are refused, naming the mapping file, the table and the key. When a
mapping has SQL, the engine is confined as well: it may read the data folder (and the kit's
cache) only, and its settings are locked (see :mod:`kpi_helpers.sqlguard`).

**Periods.** ``period`` declares the dates an export covers (an export of events may have no row
on its last days); without it a period is read from the export's banner when it has one (UA:
``# 20180101-20180131``; GA4: ``# Start date: 20240101`` / ``# End date: 20240131``).

**Recognising exports.** ``detect`` lists export column names (an entry may be a list of
alternatives) that together identify the export; :func:`recognise` names the preset whose
``detect`` a header matches, so ``kpi validate`` can suggest ``--mapping``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from . import sqlguard
from .exceptions import MappingError
from .schema import CONTRACT, Table
from .sqltext import ident, literal

#: format version of mapping files this kit reads
VERSION: Literal[1] = 1

PRESETS = {
    "ga4": "ga4_traffic_acquisition.yml",
    "ga4-paths": "ga4_conversion_paths.yml",
    "google-ads": "google_ads_campaigns.yml",
    "hubspot": "hubspot_contacts.yml",
    "hubspot-deals": "hubspot_deals.yml",
    "linkedin-ads": "linkedin_campaign_performance.yml",
    "meta-ads": "meta_ads_manager.yml",
    "salesforce": "salesforce_opportunities.yml",
    "salesforce-campaign-members": "salesforce_campaign_members.yml",
    "ua": "ua_channels.yml",
    "ua-paths": "ua_top_conversion_paths.yml",
}
#: a value of ``values:`` that catches every value not listed
OTHER = "*"


def _names(value: Any) -> Any:
    """``Sessions`` or ``[Sessions, Visits]``: always a list of names."""
    if isinstance(value, str | int | float):
        return [str(value)]
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class NumberFormat(_Model):
    """How numbers are written in an export (``numbers:``).

    Examples
    --------
    >>> NumberFormat(decimal=",", thousands=".").thousands
    '.'
    """

    decimal: Literal[".", ","] | None = None
    thousands: Literal[",", ".", " ", "'", ""] | None = None
    #: currency marks to strip besides the usual ones ($ € £ ¥ ₹ and ISO codes such as EUR)
    currency: list[str] = Field(default_factory=list)
    #: (inputs of a query only) export columns to read as numbers
    columns: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct(self) -> NumberFormat:
        if self.decimal is not None and self.decimal == self.thousands:
            raise ValueError(f"`decimal` and `thousands` must differ (both {self.decimal!r})")
        if self.thousands is not None and self.decimal is None:
            raise ValueError("`thousands` needs `decimal` too (e.g. decimal: ',', thousands: '.')")
        return self


class Period(_Model):
    """Dates an export covers, both included."""

    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end < self.start:
            raise ValueError(f"`end` ({self.end}) is before `start` ({self.start})")
        return self


class InputSpec(_Model):
    """One named input of a query: an export file (or glob) read like any export."""

    file: str
    read: dict[str, Any] = Field(default_factory=dict)  # checked by sqlguard.check_read_options
    encoding: str | None = None
    numbers: NumberFormat | None = None


class TableMapping(_Model):
    """How one contract table is read from an export (one entry under ``tables:``)."""

    description: str | None = None
    file: str | None = None
    read: dict[str, Any] = Field(default_factory=dict)  # checked by sqlguard.check_read_options
    encoding: str | None = None
    numbers: NumberFormat | None = None
    columns: dict[str, list[str]] = Field(default_factory=dict)
    formats: dict[str, str] = Field(default_factory=dict)
    values: dict[str, dict[str | None, str | None]] = Field(default_factory=dict)
    defaults: dict[str, str | int | float | None] = Field(default_factory=dict)
    expressions: dict[str, str] = Field(default_factory=dict)
    filter: str | None = None
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    query: str | None = None
    period: Period | None = None
    detect: list[list[str]] = Field(default_factory=list)

    _origin: str = PrivateAttr(default="")
    _table: str = PrivateAttr(default="")

    @field_validator("columns", mode="before")
    @classmethod
    def _column_names(cls, v: Any) -> Any:
        return {k: _names(x) for k, x in v.items()} if isinstance(v, dict) else v

    @field_validator("detect", mode="before")
    @classmethod
    def _detect_names(cls, v: Any) -> Any:
        return [_names(x) for x in v] if isinstance(v, list) else v

    @field_validator("inputs", mode="before")
    @classmethod
    def _input_globs(cls, v: Any) -> Any:
        return {k: {"file": x} if isinstance(x, str) else x for k, x in v.items()} if isinstance(v, dict) else v

    @field_validator("values", mode="before")
    @classmethod
    def _value_keys(cls, v: Any) -> Any:
        # YAML reads `1: a` with an int key and `~: x` with None: keys are text or None (empty cell).
        if not isinstance(v, dict):
            return v
        return {
            k: {(None if key is None else str(key)): val for key, val in m.items()} if isinstance(m, dict) else m
            for k, m in v.items()
        }

    @model_validator(mode="after")
    def _file_or_query(self) -> TableMapping:
        if self.query is not None and self.file is not None:
            raise ValueError("`file` and `query` exclude each other: a query reads its `inputs`")
        if self.query is not None and not self.inputs:
            raise ValueError("`query` needs `inputs` (name: file glob) to read from")
        if self.inputs and self.query is None:
            raise ValueError("`inputs` are read by a `query`; add one (or use `file`)")
        return self

    # -- for messages ---------------------------------------------------------------------------
    @property
    def origin(self) -> str:
        """The mapping this entry came from, in backticks (empty when not from a file)."""
        return self._origin

    @property
    def table(self) -> str:
        return self._table

    def where(self, key: str = "") -> str:
        """``\\`map.yml\\`, table \\`leads\\`, \\`filter\\``` for messages."""
        parts = [self._origin or "mapping"]
        if self._table:
            parts.append(f"table `{self._table}`")
        if key:
            parts.append(f"`{key}`")
        return ", ".join(parts)

    def describe(self, column: str) -> str:
        if column in self.columns:
            names = " or ".join(repr(n) for n in self.columns[column])
            return f"mapped from export column {names} by {self._origin}"
        return "not named in the mapping"

    # -- SQL -------------------------------------------------------------------------------------
    def select_exprs(self, table: Table, header: Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
        """SQL expression per contract column over the export's ``header``; and the missing ones.

        Export names match exactly, else ignoring case and surrounding spaces.

        Examples
        --------
        >>> from kpi_helpers.schema import CONTRACT
        >>> m = TableMapping(columns={"revenue": "Umsatz"})
        >>> m.select_exprs(CONTRACT["revenue"], ["month", "Umsatz"])
        ([('month', '"month"'), ('revenue', '"Umsatz"')], [])
        """
        exact = set(header)
        folded = {h.strip().casefold(): h for h in reversed(header)}

        def find(name: str) -> str | None:
            return name if name in exact else folded.get(name.strip().casefold())

        exprs: list[tuple[str, str]] = []
        missing: list[str] = []
        for col in table.columns:
            c = col.name
            if c in self.expressions:
                e = f"({self.expressions[c]})"
            elif c in self.columns:
                found = next((f for f in map(find, self.columns[c]) if f is not None), None)
                if found is None:
                    if c in self.defaults or col.optional:
                        e = literal(self.defaults.get(c))
                    else:
                        missing.append(c)
                        e = "NULL"
                else:
                    e = ident(found)
            elif find(c) is not None:
                e = ident(find(c))  # type: ignore[arg-type]
            elif c in self.defaults:
                e = literal(self.defaults[c])
            elif col.optional:
                e = "NULL"
            else:
                missing.append(c)
                e = "NULL"
            if c in self.formats and e != "NULL":
                # Unparseable text stays as it was so validation can show it.
                e = (
                    f"COALESCE(CAST(try_strptime(CAST({e} AS VARCHAR), {literal(self.formats[c])}) AS VARCHAR), "
                    f"CAST({e} AS VARCHAR))"
                )
            if c in self.values and e != "NULL":
                e = _value_case(e, self.values[c])
            exprs.append((c, e))
        return exprs, missing

    def referenced_columns(self) -> set[str]:
        """Export column names this entry reads (for header detection and duplicate checks)."""
        names = {n for alts in self.columns.values() for n in alts}
        for sql in [*self.expressions.values(), *([self.filter] if self.filter else [])]:
            names |= sqlguard.column_names(sql)
        return names


def _value_case(e: str, pairs: Mapping[str | None, str | None]) -> str:
    """``CASE`` renaming values of ``e`` after trimming; ``""``/``None`` keys match empty cells."""
    text = f"TRIM(CAST({e} AS VARCHAR))"
    whens = []
    for k, v in pairs.items():
        if k == OTHER:
            continue
        cond = f"NULLIF({text}, '') IS NULL" if k in (None, "") else f"{text} = {literal(k)}"
        whens.append(f"WHEN {cond} THEN {literal(v)}")
    other = literal(pairs[OTHER]) if OTHER in pairs else f"CAST({e} AS VARCHAR)"
    if OTHER in pairs and not any(k in (None, "") for k in pairs):
        whens.append(f"WHEN NULLIF({text}, '') IS NULL THEN NULL")  # "*" renames values, not empty cells
    return f"(CASE {' '.join(whens)} ELSE {other} END)"


class MappingFile(_Model):
    """A whole mapping file: its format version, a description, and its tables."""

    version: Literal[1] = VERSION
    description: str | None = None
    tables: dict[str, TableMapping]


def _short(value: Any, n: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def _explain(exc: ValidationError, where: str) -> MappingError:
    """One message naming the mapping, the table and the key of every schema violation."""
    lines = []
    for err in exc.errors():
        loc = [str(x) for x in err["loc"]]
        place = [f"`{where}`"]
        if len(loc) >= 2 and loc[0] == "tables":
            place.append(f"table `{loc[1]}`")
            loc = loc[2:]
        if loc:
            place.append(f"`{'.'.join(loc)}`")
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
            if len(err["loc"]) == 3:
                msg += f"; known: {', '.join(sorted(TableMapping.model_fields))}"
        found = "" if err["type"] in ("extra_forbidden", "missing") else f" (found {_short(err.get('input'))})"
        lines.append(f"{', '.join(place)}: {msg}{found}")
    return MappingError("; ".join(lines))


def _check(tm: TableMapping, tname: str) -> None:
    """Contract names and confined SQL in one table entry; raise :class:`MappingError`."""
    contract_cols = set(CONTRACT[tname].column_names)
    for key in ("columns", "formats", "values", "defaults", "expressions"):
        bad = sorted(set(getattr(tm, key)) - contract_cols)
        if bad:
            raise MappingError(
                f"{tm.where(key)}: {bad} are not contract columns of `{tname}` "
                f"(expected some of {sorted(contract_cols)})"
            )
    # What runs is the SQL as parsed, not the text as written (see sqlguard.check_expression).
    tm.expressions = {
        col: sqlguard.check_expression(sql, where=tm.where(f"expressions.{col}")) for col, sql in tm.expressions.items()
    }
    if tm.filter is not None:
        tm.filter = sqlguard.check_expression(tm.filter, where=tm.where("filter"))
    if tm.file is not None:
        sqlguard.check_glob(tm.file, where=tm.where("file"))
    sqlguard.check_read_options(tm.read, where=tm.where("read"))
    for name, spec in tm.inputs.items():
        sqlguard.check_glob(spec.file, where=tm.where(f"inputs.{name}.file"))
        sqlguard.check_read_options(spec.read, where=tm.where(f"inputs.{name}.read"))
    if tm.query is not None:
        sqlguard.check_query(tm.query, tm.inputs, where=tm.where("query"))
    for key, enc in [("encoding", tm.encoding), *((f"inputs.{n}.encoding", s.encoding) for n, s in tm.inputs.items())]:
        if enc is not None:
            _check_encoding(enc, tm.where(key))


def _check_encoding(name: str, where: str) -> None:
    import codecs

    try:
        codecs.lookup(name)
    except LookupError:
        raise MappingError(
            f"{where}: unknown encoding {_short(name)}; expected a codec name such as utf-8, cp1252, cp1250, latin-1"
        ) from None


def parse_mapping(doc: Any, where: str) -> dict[str, TableMapping]:
    """Validate a mapping document (YAML already parsed) into its table entries.

    Raises :class:`MappingError` naming ``where``, the table and the key.

    Examples
    --------
    >>> m = parse_mapping({"tables": {"revenue": {"columns": {"revenue": "Umsatz"}}}}, "m.yml")
    >>> m["revenue"].columns, m["revenue"].where("columns")
    ({'revenue': ['Umsatz']}, '`m.yml`, table `revenue`, `columns`')
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("tables"), dict):
        raise MappingError(f"`{where}`: expected a top-level `tables:` mapping of contract tables")
    unknown = sorted(str(t) for t in doc["tables"] if t not in CONTRACT)
    if unknown:
        raise MappingError(f"`{where}`: unknown table `{unknown[0]}`; the contract has {', '.join(CONTRACT)}")
    doc = {**doc, "tables": {k: ({} if v is None else v) for k, v in doc["tables"].items()}}
    try:
        parsed = MappingFile.model_validate(doc)
    except ValidationError as exc:
        raise _explain(exc, where) from None
    for tname, tm in parsed.tables.items():
        tm._origin, tm._table = f"`{where}`", tname
        _check(tm, tname)
    return dict(parsed.tables)


def _preset_text(name: str) -> str:
    return resources.files("kpi_helpers").joinpath("presets", PRESETS[name]).read_text(encoding="utf-8")


def load_mapping(ref: str | Path) -> dict[str, TableMapping]:
    """Read one mapping: a preset name (``ga4``, ``hubspot``, ... see :data:`PRESETS`) or a YAML path."""
    key = str(ref)
    if key in PRESETS:
        text = _preset_text(key)
        where = f"preset {key}"
    else:
        path = Path(ref)
        if not path.is_file():
            raise MappingError(f"mapping `{ref}` is neither a file nor a preset ({', '.join(PRESETS)})")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise MappingError(
                f"`{path.name}` is not UTF-8 text (byte 0x{exc.object[exc.start]:02X} at offset {exc.start}); "
                "save it as UTF-8"
            ) from None
        where = path.name
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MappingError(f"`{where}` is not valid YAML: {str(exc).splitlines()[0]}") from None
    return parse_mapping(doc, where)


def load_mappings(refs: str | Path | Iterable[str | Path] | None) -> dict[str, TableMapping]:
    """Merge several mappings; a table mapped twice is an error."""
    if refs is None:
        return {}
    if isinstance(refs, str | Path):
        refs = [refs]
    merged: dict[str, TableMapping] = {}
    for ref in refs:
        for tname, tm in load_mapping(ref).items():
            if tname in merged:
                raise MappingError(f"table `{tname}` is mapped twice ({merged[tname].origin} and {tm.origin})")
            merged[tname] = tm
    return merged


def matches(detect: Sequence[Sequence[str]], header: Iterable[str]) -> bool:
    """Whether a header holds every entry of a ``detect`` signature (any of an entry's names).

    Names compare ignoring case and surrounding spaces.

    Examples
    --------
    >>> matches([["Sessions"], ["Date", "Day"]], ["day", "Sessions", "Users"])
    True
    >>> matches([["Sessions"]], ["Visits"])
    False
    """
    have = {h.strip().casefold() for h in header}
    return bool(detect) and all(any(n.strip().casefold() in have for n in alts) for alts in detect)


def recognise(header: Iterable[str]) -> tuple[str, str] | None:
    """The bundled preset (and its table) whose ``detect`` signature ``header`` matches, or None.

    ``kpi validate`` uses it to say "this looks like a GA4 traffic-acquisition export: add
    ``--mapping ga4``" for a file it cannot read as the contract.

    Examples
    --------
    >>> recognise(["Session primary channel group (Default Channel Group)", "Date", "Sessions",
    ...            "Engaged sessions", "Average engagement time per session"])
    ('ga4', 'web_sessions')
    >>> recognise(["lead_id", "created_at"]) is None
    True
    """
    header = list(header)
    for name in sorted(PRESETS):
        for tname, tm in load_mapping(name).items():
            if matches(tm.detect, header):
                return name, tname
    return None


def preset_description(name: str) -> str:
    """A preset's ``description`` (the export it reads), for messages that suggest it."""
    doc = yaml.safe_load(_preset_text(name))
    return " ".join(str(doc.get("description") or name).split())
