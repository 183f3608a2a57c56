"""Open a data source, map it to the contract, validate it, and hand out typed Ibis tables.

A data source is a folder with one file per contract table (``<table>.csv``, ``<table>.csv.gz``,
``<table>.parquet`` or a folder ``<table>/`` of Parquet files), read by embedded DuckDB, or any
database Ibis connects to (``duckdb:///file.db``, ``postgres://...``, ``pyspark``, ...) whose tables
carry the contract's names and columns.

Everything that shrinks data runs in the engine. :meth:`DataSource.fetch` is the one door from the
engine to pandas; it counts the rows that pass through it so tests can prove that only aggregated
rows ever reach pandas.

Validation runs on every open, in the engine, and reports every problem of the source together
(:class:`~kpi_helpers.exceptions.SchemaError`).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import math
import os
import pickle
import shutil
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import ibis
import ibis.expr.types as ir
import pandas as pd
from ibis import _

from . import mapping as mapping_mod
from .config import Settings, load_settings
from .exceptions import KpiError, Problem, SchemaError
from .periods import Quarter, parse_quarter
from .schema import CONTRACT, COVERAGE, IBIS_TYPES, REFERENCES, Column, Table

ROW = "__row"  # 1-based data-row number of file sources, for error messages
ROW_FILE = "__file"  # the file of a row, for a table stored as a folder of Parquet files
#: bump when what a memoised result holds changes shape (old cache entries are then ignored)
RESULTS_FORMAT = 1
#: cache entries (stamps, memoised results) of data not seen for this many days are removed
CACHE_DAYS = 30
T = TypeVar("T")
EXAMPLES = 5  # offending rows shown per problem

_EXPECTED = {
    "date": "an ISO date YYYY-MM-DD",
    "timestamp": "an ISO date-time YYYY-MM-DD[ HH:MM:SS]",
    "count": "a whole number",
    "amount": "a number",
    "seconds": "a number of seconds",
}


def _q_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _q_str(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _find_file(folder: Path, table: str, explicit: str | None) -> Path | None:
    if explicit:
        hits = sorted(folder.glob(explicit))
        return hits[0] if len(hits) == 1 else (folder / explicit if not hits else None)
    for name in (f"{table}.parquet", f"{table}.csv", f"{table}.csv.gz", table):
        p = folder / name
        if p.is_file() or (p.is_dir() and any(p.glob("*.parquet"))):
            return p
    return None


def _is_parquet(path: Path) -> bool:
    return path.is_dir() or path.suffix == ".parquet"


def _reader_sql(path: Path, read_opts: Mapping[str, Any], *, row_numbers: bool = False) -> str:
    """DuckDB table function reading ``path`` raw: CSV as text (types are checked by us).

    ``row_numbers`` adds Parquet's ``file_row_number`` (and ``filename`` for a folder of files):
    free when a query does not select them, unlike a window over the whole table.
    """
    if _is_parquet(path):
        glob = path / "*.parquet" if path.is_dir() else path
        extra = (", file_row_number=true" + (", filename=true" if path.is_dir() else "")) if row_numbers else ""
        return f"read_parquet({_q_str(str(glob))}{extra})"
    opts = {"header": True, "all_varchar": True, **read_opts}
    rendered = []
    for k, v in opts.items():
        if isinstance(v, bool):
            rendered.append(f"{k}={'true' if v else 'false'}")
        elif isinstance(v, int | float):
            rendered.append(f"{k}={v}")
        else:
            rendered.append(f"{k}={_q_str(str(v))}")
    return f"read_csv({_q_str(str(path))}, {', '.join(rendered)})"


def _is_string(dtype: Any) -> bool:
    return dtype.is_string()


def _kind_matches(kind: str, dtype: Any) -> bool:
    if kind == "string":
        return dtype.is_string()
    if kind == "date":
        return dtype.is_date() or dtype.is_timestamp()
    if kind == "timestamp":
        return dtype.is_timestamp() or dtype.is_date()
    return dtype.is_numeric()


def _typed(col: Column, raw: ir.Value) -> ir.Value:
    """Cast a raw column to its contract type (NULL where blank or unparseable)."""
    target = IBIS_TYPES[col.kind]
    dtype = raw.type()
    if col.kind == "string":
        v = raw.cast("string").strip()
        v = v.nullif("")
        return v.lower() if col.accepted else v
    if not _is_string(dtype):
        if col.kind == "date":
            return raw.cast("timestamp").date() if dtype.is_timestamp() else raw.cast("date")
        if col.kind == "timestamp":
            return raw.cast("timestamp")
        return raw.cast(target)
    text = raw.strip().nullif("")
    if col.kind == "date":
        return text.try_cast("timestamp").date()
    if col.kind == "timestamp":
        return text.try_cast("timestamp")
    number = text.try_cast("float64")
    return number.cast("int64") if col.kind == "count" else number


@dataclass
class _Check:
    column: str
    expected: str
    cond: ir.BooleanValue
    show: str | None = None  # column whose offending values are shown


class DataSource:
    """A validated data source: the contract's tables as typed Ibis expressions.

    Use :meth:`open`; then :meth:`table` for a typed table, :attr:`data_end` for coverage, and
    :meth:`fetch` to execute an (aggregated) expression into pandas.
    """

    def __init__(
        self,
        con: Any,
        tables: Mapping[str, ir.Table],
        *,
        name: str,
        settings: Settings,
        files: Mapping[str, Path] | None = None,
        cache_key: str | None = None,
    ) -> None:
        self.con = con
        self._tables = dict(tables)
        self.name = name
        self.settings = settings
        self.files = dict(files or {})
        #: names the exact input bytes (and mapping) of a file source; None: results are not memoised
        self.cache_key = cache_key
        #: rows that crossed from the engine into pandas through :meth:`fetch`
        self.rows_fetched = 0
        self.fetches: list[tuple[str, int]] = []

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        data: str | Path | None = None,
        *,
        mapping: str | Path | Iterable[str | Path] | None = None,
        goals: str | Path | None = None,
        engine: str = "duckdb",
        validate: bool = True,
        tables: Iterable[str] | None = None,
    ) -> DataSource:
        """Open ``data`` (a folder of exports) with ``engine`` (``duckdb`` or an Ibis URL).

        ``goals`` defaults to ``goals.yml`` in the data folder. Raises :class:`SchemaError`
        listing every contract violation when ``validate`` is true (the default). ``tables``
        restricts a folder source to some contract tables (the others are empty), e.g. to check
        one export and its mapping on its own.
        """
        if engine in (None, "", "duckdb"):
            if data is None:
                raise KpiError("a data folder is needed with the duckdb engine (`--data DIR`)")
            folder = Path(data).expanduser().resolve()
            if not folder.is_dir():
                raise KpiError(f"data folder `{data}` does not exist or is not a folder")
            goals_path = Path(goals) if goals else folder / "goals.yml"
            settings = load_settings(goals_path)
            return cls._open_folder(folder, mapping, settings, validate, tables)
        if mapping:
            raise KpiError(
                "column mappings apply to exported files read with the duckdb engine; for another engine "
                "create views with the contract's names instead (see docs/engines.md)"
            )
        goals_path = Path(goals) if goals else (Path(data) / "goals.yml" if data else None)
        settings = load_settings(goals_path)
        if engine == "pyspark" or engine.startswith("pyspark://"):
            return cls._open_spark(data, settings, validate)
        return cls._open_connection(engine, settings, validate)

    @classmethod
    def _open_spark(cls, data: str | Path | None, settings: Settings, validate: bool) -> DataSource:
        """Spark: the active session (or a new one; ``SPARK_REMOTE`` and spark-defaults apply).

        With ``data``, Spark reads the folder's contract files itself (Parquet, or CSV as text,
        typed by the contract); without, the session's catalog must hold the contract's tables.
        """
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise KpiError("the pyspark engine needs PySpark: pip install 'pyspark>=3.5,<4.1'") from None
        spark = SparkSession.getActiveSession() or (
            SparkSession.builder.appName("kpi-kit")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        if data is not None:
            folder = Path(data).expanduser().resolve()
            for table in CONTRACT.values():
                path = _find_file(folder, table.name, None)
                if path is None:
                    continue
                if path.suffix == ".parquet" or path.is_dir():
                    frame = spark.read.parquet(str(path))
                else:
                    frame = spark.read.option("header", True).option("encoding", "UTF-8").csv(str(path))
                frame.createOrReplaceTempView(table.name)
        con = ibis.pyspark.connect(spark)
        return cls.from_connection(
            con, settings=settings, validate=validate, name=f"pyspark {data}" if data else "pyspark catalog"
        )

    @classmethod
    def _open_folder(
        cls, folder: Path, mapping: Any, settings: Settings, validate: bool, only: Iterable[str] | None = None
    ) -> DataSource:
        maps = mapping_mod.load_mappings(mapping)
        con = ibis.duckdb.connect()
        # DuckDB draws a progress bar on long queries; it would land in notebook outputs.
        con.raw_sql("SET enable_progress_bar = false")
        wanted = set(only) if only is not None else set(CONTRACT)
        unknown = wanted - set(CONTRACT)
        if unknown:
            raise KpiError(f"unknown table(s) {sorted(unknown)}; the contract has {', '.join(CONTRACT)}")
        found = {t: _find_file(folder, t, maps.get(t, mapping_mod.TableMapping()).file) for t in wanted}
        src_name = str(folder)
        complete = all(found.get(t.name) for t in CONTRACT.values() if t.required and t.name in wanted)
        stamp = _validated_stamp({k: v for k, v in found.items() if v}, maps) if complete and only is None else None
        cache_key = stamp.name if stamp is not None else None
        cached = _typed_cache(stamp) if validate else None
        if cached is not None:
            # These exact bytes were validated and typed before: read the typed tables, skip the parse.
            con.raw_sql(f"ATTACH {_q_str(str(cached))} AS kpi_cache (READ_ONLY)")
            typed = {t: con.create_view(t, con.sql(f"SELECT * FROM kpi_cache.main.{_q_ident(t)}")) for t in CONTRACT}
            return cls(
                con,
                typed,
                name=src_name,
                settings=settings,
                files={k: v for k, v in found.items() if v},
                cache_key=cache_key,
            )
        raw: dict[str, ir.Table] = {}
        files: dict[str, Path] = {}
        problems: list[Problem] = []
        absent: dict[str, set[str]] = {}
        for table in CONTRACT.values():
            spec = maps.get(table.name, mapping_mod.TableMapping())
            path = found.get(table.name)
            label = spec.file or f"{table.name}.csv"
            if path is None and table.name not in wanted:
                raw[table.name] = cls._empty(con, table)
                continue
            if path is None:
                if table.required:
                    problems.append(
                        Problem(
                            label,
                            "",
                            f"a file `{table.name}.csv` or `{table.name}.parquet` in `{folder}` (required table)",
                            0,
                        )
                    )
                raw[table.name] = cls._empty(con, table)
                continue
            files[table.name] = path
            try:
                rel, missing = cls._raw_relation(con, table, path, spec)
            except Exception as exc:  # unreadable file: report it with the others
                problems.append(Problem(path.name, "", f"a readable CSV/Parquet file ({_first_line(exc)})", 0))
                raw[table.name] = cls._empty(con, table)
                continue
            absent[table.name] = {c.partition("\0")[0] for c in missing}
            for c in missing:
                col, _, why = c.partition("\0")
                expected = (
                    f"the mapping's expression for it to work on this export ({why})"
                    if why
                    else "the column to be present (required by the contract"
                    + (f"; {spec.describe(col)}" if spec.columns else "; map it with `--mapping`")
                    + ")"
                )
                problems.append(Problem(path.name, col, expected, 0))
            raw[table.name] = rel
        plain: dict[str, set[str]] = {}
        if stamp is not None and validate and not problems and stamp.exists():
            validate = False  # these exact bytes passed validation before (see _validated_stamp)
            plain = _read_stamp(stamp)
            stamp = None
        typed = cls._validate_and_type(
            con, raw, files, problems, validate, file_source=True, name=src_name, absent=absent, plain=plain
        )
        # Materialise CSV tables once (parsing text on every query is slow); Parquet stays a view.
        all_csv = True
        for name, expr in typed.items():
            path = files.get(name)
            if path is not None and path.suffix != ".parquet" and not path.is_dir():
                con.create_table(name, expr)
                typed[name] = con.table(name)  # unqualified, as the cached path names it: same SQL, same memo keys
            else:
                all_csv = all_csv and path is None
                typed[name] = con.create_view(name, expr)
        if stamp is not None and validate:
            _write_stamp(stamp, con if all_csv else None, plain)
            _prune_cache(keep=stamp.name)
        return cls(con, typed, name=src_name, settings=settings, files=files, cache_key=cache_key)

    @classmethod
    def _open_connection(cls, url: str, settings: Settings, validate: bool) -> DataSource:
        try:
            con = ibis.connect(url)
        except Exception as exc:
            raise KpiError(f"cannot connect to engine `{url}`: {_first_line(exc)}") from None
        return cls.from_connection(con, settings=settings, validate=validate, name=url)

    @classmethod
    def from_connection(
        cls, con: Any, *, settings: Settings | None = None, validate: bool = True, name: str | None = None
    ) -> DataSource:
        """Use an existing Ibis connection whose database holds the contract's tables."""
        settings = settings or Settings()
        name = name or f"{con.name} connection"
        present = set(con.list_tables())
        problems: list[Problem] = []
        raw: dict[str, ir.Table] = {}
        absent: dict[str, set[str]] = {}
        for table in CONTRACT.values():
            if table.name not in present:
                if table.required:
                    problems.append(Problem(table.name, "", "a table with this name (required)", 0))
                raw[table.name] = cls._empty(con, table)
                continue
            t = con.table(table.name)
            missing = [c.name for c in table.columns if c.name not in t.columns and not c.optional]
            problems += [Problem(table.name, c, "the column to be present", 0) for c in missing]
            absent[table.name] = set(missing)
            sel = {}
            for c in table.columns:
                if c.name in t.columns:
                    sel[c.name] = t[c.name]
                else:
                    sel[c.name] = ibis.null(IBIS_TYPES[c.kind])
            raw[table.name] = t.select(**sel)
        typed = cls._validate_and_type(con, raw, {}, problems, validate, file_source=False, name=name, absent=absent)
        return cls(con, typed, name=name, settings=settings)

    @staticmethod
    def _empty(con: Any, table: Table) -> ir.Table:
        schema = ibis.schema({c.name: IBIS_TYPES[c.kind] for c in table.columns})
        return ibis.memtable(schema.to_pyarrow().empty_table())

    @staticmethod
    def _raw_relation(con: Any, table: Table, path: Path, spec: mapping_mod.TableMapping) -> tuple[ir.Table, list[str]]:
        reader = _reader_sql(path, spec.read)
        header = con.sql(f"SELECT * FROM {reader} LIMIT 0").columns
        exprs, missing = spec.select_exprs(table, header)
        # A mapping expression over a column the export lacks: name it, read the rest.
        for i, (col, expr) in enumerate(exprs):
            if col in spec.expressions:
                try:
                    con.raw_sql(f"SELECT {expr} FROM {reader} LIMIT 0").fetchall()
                except Exception as exc:
                    missing.append(f"{col}\0{_first_line(exc)}")
                    exprs[i] = (col, "NULL")
        where = f" WHERE {spec.filter}" if spec.filter else ""
        selected = ", ".join(f"{e} AS {_q_ident(n)}" for n, e in exprs)
        if _is_parquet(path):
            # Parquet is typed and columnar: a view, scanned in parallel by each query and never held in
            # memory. Row numbers (for error messages) come from the file, not from a window.
            row = f"file_row_number + 1 AS {ROW}"
            if path.is_dir():
                row += f", parse_filename(filename) AS {ROW_FILE}"
            sql = f"SELECT {row}, {selected} FROM {_reader_sql(path, spec.read, row_numbers=True)}{where}"
            return con.create_view(f"__raw_{table.name}", con.sql(sql), overwrite=True), missing
        inner = f"SELECT row_number() OVER () AS {ROW}, * FROM {reader}"
        sql = f"SELECT {ROW}, {selected} FROM ({inner}){where}"
        # CSV: one parse of the text into a temp table; validation and typing then read that.
        tmp = f"__raw_{table.name}"
        con.raw_sql(f"CREATE OR REPLACE TEMP TABLE {tmp} AS {sql}")
        return con.table(tmp), missing

    @classmethod
    def _validate_and_type(
        cls,
        con: Any,
        raw: dict[str, ir.Table],
        files: Mapping[str, Path],
        problems: list[Problem],
        validate: bool,
        *,
        file_source: bool,
        name: str,
        absent: Mapping[str, set[str]],
        plain: dict[str, set[str]] | None = None,
    ) -> dict[str, ir.Table]:
        """Check every table (when ``validate``) and type it.

        ``plain`` (filled in by the checks, or read from a validation stamp) names the text columns
        whose raw values already equal their typed form (no padding, no empty strings, lower case
        where the contract lowers): those are used as they are, sparing every later query a
        trim over millions of rows.
        """
        plain = {} if plain is None else plain
        typed: dict[str, ir.Table] = {}
        for table in CONTRACT.values():
            r = raw[table.name]
            label = files[table.name].name if table.name in files else table.name
            if (validate and table.name in files) or (validate and not file_source):
                found, plain[table.name] = cls._check_table(table, r, label, absent.get(table.name, set()))
                problems += found
            as_is = plain.get(table.name, set())
            typed[table.name] = r.select(
                **{c.name: r[c.name] if c.name in as_is else _typed(c, r[c.name]) for c in table.columns}
            )
        if validate:
            problems += cls._check_references(typed, files)
        if problems:
            raise SchemaError(name, problems)
        return typed

    @staticmethod
    def _checks(table: Table, r: ir.Table, plain: Collection[str] = ()) -> list[_Check]:
        """The contract's rules for ``table`` as conditions on its raw rows (true: the row breaks it).

        Columns in ``plain`` hold text already in typed form (see ``_plain_text_columns``), so they are
        compared as they are: no trim over every row.
        """
        checks: list[_Check] = []
        t = {c.name: r[c.name] if c.name in plain else _typed(c, r[c.name]) for c in table.columns}
        for c in table.columns:
            v = r[c.name]
            dtype = v.type()
            textual = _is_string(dtype) and c.name not in plain
            blank = v.isnull() | (v.cast("string").strip() == "") if textual else v.isnull()
            if not c.nullable:
                checks.append(_Check(c.name, "a value in every row (found empty cells)", blank))
            if c.kind != "string":
                if _is_string(dtype):
                    bad = ~blank & t[c.name].isnull()
                    if c.kind == "count":
                        as_float = v.strip().nullif("").try_cast("float64")
                        bad = ~blank & (as_float.isnull() | (as_float != as_float.floor()))
                    checks.append(_Check(c.name, _EXPECTED[c.kind], bad, show=c.name))
                elif not _kind_matches(c.kind, dtype) and not dtype.is_null():
                    checks.append(_Check(c.name, f"{_EXPECTED[c.kind]} (column type is {dtype})", ~blank))
                if c.kind in ("count", "amount", "seconds"):
                    checks.append(_Check(c.name, "a value >= 0", t[c.name] < 0, show=c.name))
            if c.accepted:
                allowed = ", ".join(c.accepted)
                checks.append(
                    _Check(c.name, f"one of {allowed}", ~blank & ~t[c.name].isin(list(c.accepted)), show=c.name)
                )
            if c.unique:
                key = t[c.name]
                # A hash aggregate and a semi-join: several times faster than a window over every row.
                keys = r.select(k=key).filter(_.k.notnull())
                repeated = keys.group_by("k").aggregate(n=_.count()).filter(_.n > 1).k
                dup = key.notnull() & key.isin(repeated)
                checks.append(_Check(c.name, "unique values (found duplicates)", dup, show=c.name))
        # Row rules between columns (see schema.Table.rules).
        if table.name == "opportunities":
            checks.append(
                _Check("closed_at", "closed_at >= created_at", t["closed_at"] < t["created_at"], show="closed_at")
            )
            closed_stage = t["stage"].isin(["won", "lost"])
            checks.append(
                _Check(
                    "closed_at",
                    "a close date when stage is won or lost",
                    closed_stage & t["closed_at"].isnull(),
                    show="stage",
                )
            )
        elif table.name == "web_sessions":
            checks.append(
                _Check(
                    "engaged_sessions",
                    "engaged_sessions <= sessions",
                    t["engaged_sessions"] > t["sessions"],
                    show="engaged_sessions",
                )
            )
            checks.append(_Check("new_users", "new_users <= users", t["new_users"] > t["users"], show="new_users"))
        elif table.name == "revenue":
            checks.append(_Check("month", "the first day of a month", t["month"].day() != 1, show="month"))
        elif table.name == "content":
            checks.append(
                _Check(
                    "email_opens", "email_opens <= email_sends", t["email_opens"] > t["email_sends"], show="email_opens"
                )
            )
        return checks

    @classmethod
    def _check_table(cls, table: Table, r: ir.Table, label: str, absent: set[str]) -> tuple[list[Problem], set[str]]:
        """The table's problems, and its text columns that need no typing (see ``_validate_and_type``)."""
        # Columns already reported missing would only repeat as "empty in every row".
        plain = cls._plain_text_columns(table, r, absent)
        checks = [c for c in cls._checks(table, r, plain) if c.column not in absent]
        if not checks:
            return [], plain
        flagged = r.mutate(**{f"__c{i}": ch.cond.fill_null(False) for i, ch in enumerate(checks)})
        counts = (
            flagged.aggregate(**{f"__c{i}": flagged[f"__c{i}"].cast("int64").sum() for i in range(len(checks))})
            .execute()
            .iloc[0]
        )
        problems = []
        order = ROW if ROW in r.columns else None
        in_file = ROW_FILE if ROW_FILE in r.columns else None
        id_col = next((c.name for c in table.columns if c.unique), None)
        for i, ch in enumerate(checks):
            n = int(counts[f"__c{i}"] or 0)
            if n == 0:
                continue
            cols = [c for c in (in_file, order, id_col, ch.show) if c]
            ex = flagged.filter(flagged[f"__c{i}"]).select(*dict.fromkeys(cols))
            ex = (ex.order_by([c for c in (in_file, order) if c]) if order else ex).limit(EXAMPLES).execute()
            if order and in_file:
                rows = tuple(f"{f}:{int(x)}" for f, x in zip(ex[in_file], ex[ROW], strict=True))
            elif order:
                rows = tuple(str(int(x)) for x in ex[ROW])
            else:
                rows = tuple(str(x) for x in ex[id_col]) if id_col else ()
            values: tuple[str, ...] = ()
            if ch.show:
                values = tuple(dict.fromkeys(str(x) for x in ex[ch.show] if pd.notna(x)))[:EXAMPLES]
            problems.append(Problem(label, ch.column, ch.expected, n, rows, values))
        return problems, plain

    @staticmethod
    def _plain_text_columns(table: Table, r: ir.Table, absent: set[str]) -> set[str]:
        """Text columns none of whose values typing would change (trim, empty -> NULL, lower case).

        Tested on each column's distinct values, in one query: far cheaper than trimming every row.
        """
        text = [
            c for c in table.columns if c.kind == "string" and c.name not in absent and _is_string(r[c.name].type())
        ]
        if not text:
            return set()
        parts = []
        for i, c in enumerate(text):
            d = r.select(v=r[c.name]).filter(_.v.notnull()).distinct()
            parts.append(
                d.aggregate(col=ibis.literal(i), changed=(_typed(c, d.v) != d.v).fill_null(True).cast("int64").sum())
            )
        found = ibis.union(*parts).execute() if len(parts) > 1 else parts[0].execute()
        return {text[int(i)].name for i, n in zip(found["col"], found["changed"], strict=True) if not (n or 0)}

    @staticmethod
    def _check_references(typed: Mapping[str, ir.Table], files: Mapping[str, Path]) -> list[Problem]:
        problems = []
        for (tname, col), (ref_t, ref_c) in REFERENCES.items():
            if files and not (tname in files and ref_t in files):
                continue  # a table left out or missing is reported elsewhere
            t, ref = typed[tname], typed[ref_t]
            bad = t.filter(t[col].notnull() & ~t[col].isin(ref[ref_c]))
            n = int(bad.count().execute())
            if n:
                ids = tuple(dict.fromkeys(str(x) for x in bad.select(col).limit(EXAMPLES).execute()[col]))
                label = files[tname].name if tname in files else tname
                problems.append(
                    Problem(label, col, f"ids that exist in `{ref_t}.{ref_c}` (dangling references)", n, (), ids)
                )
        return problems

    # -- using -----------------------------------------------------------------------------------
    def table(self, name: str) -> ir.Table:
        """The typed contract table ``name`` (an Ibis expression; nothing is loaded)."""
        if name not in self._tables:
            raise KpiError(f"unknown table `{name}`; the contract has {', '.join(CONTRACT)}")
        return self._tables[name]

    @property
    def tables(self) -> dict[str, ir.Table]:
        return dict(self._tables)

    def fetch(self, expr: ir.Expr, *, label: str = "") -> Any:
        """Execute ``expr`` in the engine and return pandas; counts the rows that reach pandas.

        Results are memoised by the expression's SQL (see :meth:`memo`), so the report's notebooks
        and the runner compute each aggregate of the same data once between them.
        """
        result = self.memo(("sql", ibis.to_sql(expr)) if self.cache_key else None, expr.execute)
        n = len(result) if hasattr(result, "__len__") and not isinstance(result, str) else 1
        self.rows_fetched += n
        self.fetches.append((label or type(expr).__name__, n))
        return result

    def memo(self, key: Any, compute: Callable[[], T]) -> T:
        """``compute()``, computed once per ``key`` for these input bytes, across processes.

        For a folder source the result is kept (pickled) under ``$KPI_CACHE_DIR/results/<data>/``,
        where ``<data>`` hashes every input file's bytes and the mapping (:attr:`cache_key`); a
        process computing a key holds a lock on it, so parallel report kernels wait for each
        other's result instead of computing it again. ``key`` must name everything the result
        depends on besides the data (e.g. the quarter's dates and the model). Databases and
        Spark (no ``cache_key``), ``key=None`` and ``KPI_NO_CACHE=1`` compute every time.
        """
        if self.cache_key is None or key is None or os.environ.get("KPI_NO_CACHE"):
            return compute()
        h = hashlib.blake2b(repr((RESULTS_FORMAT, _engine_versions(), key)).encode(), digest_size=20)
        path = _cache_root() / "results" / self.cache_key / f"{h.hexdigest()}.pkl"
        found = _load_result(path)
        if found is not _MISSING:
            return found
        if getattr(_MEMO, "computing", False):
            # Nested in another key's computation: never wait for a second lock, so two processes
            # can never wait on each other (each holds at most one lock).
            value = compute()
            _store_result(path, value)
            return value
        with _flock(path.with_suffix(".lock")):
            found = _load_result(path)  # another process may have finished it while we waited
            if found is not _MISSING:
                return found
            _MEMO.computing = True
            try:
                value = compute()
            finally:
                _MEMO.computing = False
            _store_result(path, value)
        return value

    @cached_property
    def data_end(self) -> dt.date | None:
        """Last date the data covers: the earliest of the latest dates of the core activity tables.

        A quarter counts as covered only when every core table reaches its end.
        """
        ends = []
        for tname, col in COVERAGE:
            v = self.fetch(self.table(tname)[col].max(), label=f"max {tname}.{col}")
            if v is not None and not pd.isna(v):
                ends.append(pd.Timestamp(v).date())
        return min(ends) if ends else None

    def quarter(self, text: str | Quarter, *, today: Any = None) -> Quarter:
        """Parse a quarter name against this source's fiscal calendar and coverage."""
        return parse_quarter(
            text, fy_start_month=self.settings.fiscal_year_start_month, data_end=self.data_end, today=today
        )

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 over a content summary of every table, computed in the engine.

        Per table: row count; per column: non-empty count, and the sum (numbers), distinct count
        (text) or min and max (dates). The same data gives the same fingerprint on any engine
        (DuckDB files, a database, Spark), so reports from two engines can be compared.
        """
        return self.memo(("fingerprint",), self._fingerprint)

    def _fingerprint(self) -> str:
        summary: dict[str, Any] = {}
        for name in sorted(self._tables):
            t = self._tables[name]
            aggs: dict[str, Any] = {"__rows": t.count()}
            for col, dtype in t.schema().items():
                aggs[f"{col}__n"] = t[col].count()
                if dtype.is_numeric():
                    aggs[f"{col}__sum"] = t[col].cast("float64").sum()
                elif dtype.is_string():
                    aggs[f"{col}__distinct"] = t[col].nunique()
                else:
                    aggs[f"{col}__min"] = t[col].min().cast("string")
                    aggs[f"{col}__max"] = t[col].max().cast("string")
            row = self.fetch(t.aggregate(**aggs), label=f"fingerprint {name}").iloc[0]
            summary[name] = {k: _canonical(v) for k, v in row.items()}
        text = json.dumps(summary, sort_keys=True)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _canonical(value: Any) -> Any:
    """Engine-independent form of an aggregate (float sums rounded; timestamps as ISO text)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float):
        return float(f"{value:.10g}")
    if hasattr(value, "item"):
        return _canonical(value.item())
    text = str(value)
    return text.replace("T", " ")[:19] if len(text) >= 19 and text[4] == "-" else text


def _cache_root() -> Path:
    return Path(os.environ.get("KPI_CACHE_DIR") or Path.home() / ".cache" / "kpi-kit")


_MEMO = threading.local()
_MISSING = object()


@functools.cache
def _engine_versions() -> tuple[str, ...]:
    """Versions that can change a memoised result (a new DuckDB may sum in another order)."""
    import duckdb

    from . import __version__

    return __version__, ibis.__version__, duckdb.__version__, pd.__version__


def _load_result(path: Path) -> Any:
    # Pickle from the user's own cache folder: as trusted as the kit's installed code.
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except Exception:  # missing, truncated or from an incompatible pandas: compute it
        return _MISSING


def _store_result(path: Path, value: Any) -> None:
    """Write atomically (temporary name, then rename): readers never see half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except Exception:  # a read-only or full cache only costs the next run the computation
        pass


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    """Exclusive ``flock`` on ``path`` (released by the OS if the process dies); no lock without fcntl."""
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+b")  # noqa: SIM115 - held for the duration of the block
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield
    finally:
        fh.close()  # releases the lock


def _validated_stamp(files: Mapping[str, Path], maps: Mapping[str, Any]) -> Path | None:
    """Marker whose existence says: these files, under this mapping and contract, passed validation.

    The name hashes the contract, the mapping and every input file's bytes (not its time stamp),
    so any change of content validates again. Kept in ``$KPI_CACHE_DIR`` (default
    ``~/.cache/kpi-kit``); ``KPI_NO_CACHE=1`` turns it off. It spares the report's notebooks from
    validating the same data once each.
    """
    if os.environ.get("KPI_NO_CACHE"):
        return None
    h = hashlib.blake2b(digest_size=20)
    h.update(repr(sorted(CONTRACT.items())).encode())
    h.update(repr(sorted((k, repr(v)) for k, v in maps.items())).encode())
    for name in sorted(files):
        path = files[name]
        for p in sorted(path.glob("*.parquet")) if path.is_dir() else [path]:
            h.update(f"{name}:{p.name}:".encode())
            with open(p, "rb") as fh:
                for chunk in iter(lambda fh=fh: fh.read(1 << 22), b""):
                    h.update(chunk)
    return _cache_root() / "validated" / h.hexdigest()


def _typed_cache(stamp: Path | None) -> Path | None:
    """The typed tables saved with a stamp (CSV sources only), when both exist."""
    if stamp is None or not stamp.exists():
        return None
    db = stamp.with_suffix(".duckdb")
    return db if db.exists() else None


def _read_stamp(stamp: Path) -> dict[str, set[str]]:
    """The text columns that need no typing, as validation found them (empty for an old stamp)."""
    try:
        found = json.loads(stamp.read_text(encoding="utf-8"))["plain"]
        return {str(t): {str(c) for c in cols} for t, cols in found.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _write_stamp(stamp: Path, con: Any = None, plain: Mapping[str, set[str]] | None = None) -> None:
    """Mark the data validated, with the columns that need no typing; for CSV sources also save the
    typed tables next to the stamp.

    Written to a temporary name and renamed, so parallel report kernels never read half a file.
    """
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        if con is not None:
            tmp = stamp.with_suffix(f".{os.getpid()}.tmp")
            con.raw_sql(f"ATTACH {_q_str(str(tmp))} AS kpi_out")
            try:
                for name in CONTRACT:
                    con.raw_sql(f"CREATE TABLE kpi_out.main.{_q_ident(name)} AS SELECT * FROM {_q_ident(name)}")
            finally:
                con.raw_sql("DETACH kpi_out")
            os.replace(tmp, stamp.with_suffix(".duckdb"))
        text = json.dumps({"plain": {t: sorted(cols) for t, cols in sorted((plain or {}).items())}})
        tmp = stamp.with_suffix(f".{os.getpid()}.json.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, stamp)
    except Exception:  # a read-only or full cache only costs the next open its parse and validation
        pass


def _prune_cache(*, keep: str, max_age_days: float = CACHE_DAYS) -> None:
    """Remove cache entries untouched for ``max_age_days`` (modification time: a stamp is written
    once, a results folder whenever a result is added; reading does not count); ``keep`` stays.
    At worst a pruned entry costs its data one validation and one computation of each result."""
    cutoff = time.time() - max_age_days * 86400
    root = _cache_root()
    for entry in [*root.glob("validated/*"), *root.glob("results/*")]:
        if entry.name.split(".")[0] == keep:
            continue
        try:
            if entry.stat().st_mtime >= cutoff:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink()
        except OSError:  # another process removed it first
            pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def open_source(data: str | Path | None = None, **kwargs: Any) -> DataSource:
    """Shorthand for :meth:`DataSource.open`."""
    return DataSource.open(data, **kwargs)
