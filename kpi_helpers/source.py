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
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import ibis
import ibis.expr.types as ir

from . import cache, exports, validation
from . import mapping as mapping_mod
from .config import Settings, load_settings
from .coverage import Coverage, measure
from .exceptions import KpiError, Problem, SchemaError
from .periods import Quarter
from .schema import CONTRACT, IBIS_TYPES, Table
from .sqltext import ident, literal

ROW = validation.ROW
ROW_FILE = validation.ROW_FILE
T = TypeVar("T")


def _find_file(folder: Path, table: str, explicit: str | None) -> Path | None:
    """The one file holding ``table``, None when absent (see ``exports.find_files``).

    A table in two formats, or an Excel workbook where its CSV belongs, raises :class:`KpiError`.
    """
    found = exports.find_files(folder, table, explicit)
    if found.problem is not None:
        raise KpiError(str(found.problem))
    return found.files[0] if found.files else None


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
        files: Mapping[str, Any] | None = None,
        cache_key: str | None = None,
        present: Iterable[str] | None = None,
        warnings: Iterable[str] = (),
        declared: Mapping[str, tuple[dt.date, dt.date]] | None = None,
        inputs: Iterable[Path] = (),
        table_files: Mapping[str, list[Path]] | None = None,
    ) -> None:
        self.con = con
        self._tables = dict(tables)
        self.name = name
        self.settings = settings
        self.files = dict(files or {})
        #: the contract tables the source has (a file, or a database table), with or without rows
        self.present: frozenset[str] = frozenset(self.files if present is None else present)
        #: what validation found suspicious but not wrong (exact duplicate rows, stages out of order)
        self.warnings: list[str] = list(warnings)
        #: periods declared by a mapping or an export's banner, per table
        self.declared: dict[str, tuple[dt.date, dt.date]] = dict(declared or {})
        #: every file a table was read from (a folder source), for "files nothing read" advice
        self.inputs: list[Path] = [Path(p) for p in inputs]
        #: per table, the export files it was read from (several for monthly files or a query's inputs)
        self.table_files: dict[str, list[Path]] = dict(table_files or {})
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
            goals_path: Path | None = Path(goals) if goals else folder / "goals.yml"
            settings = load_settings(goals_path, required=bool(goals))
            return cls._open_folder(folder, mapping, settings, validate, tables)
        if mapping:
            raise KpiError(
                "column mappings apply to exported files read with the duckdb engine; for another engine "
                "create views with the contract's names instead (see docs/engines.md)"
            )
        goals_path = Path(goals) if goals else (Path(data) / "goals.yml" if data else None)
        settings = load_settings(goals_path, required=bool(goals))
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
            .config("spark.sql.session.timeZone", settings.timezone)
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
        _session_time_zone(con, settings)
        wanted = set(only) if only is not None else set(CONTRACT)
        unknown = wanted - set(CONTRACT)
        if unknown:
            raise KpiError(f"unknown table(s) {sorted(unknown)}; the contract has {', '.join(CONTRACT)}")
        # A mapping's SQL runs on a connection confined to the data folder and the kit's cache.
        reader = exports.ExportReader(
            con, folder, allow=[cache.cache_dir()] if cache.enabled() else [], confine=exports.holds_sql(maps.values())
        )
        located = {t: reader.locate(CONTRACT[t], maps.get(t)) for t in wanted}
        # one file per table as before (messages and the materialising below); the stamp hashes every file
        found = {t: (m.files[0] if m.files else None) for t, m in located.items()}
        stamp_files = {f"{t}:{i}": p for t, m in located.items() for i, p in enumerate(m.files)}
        src_name = str(folder)
        stamp = (
            cache.validation_stamp(
                stamp_files,
                (
                    repr(sorted(CONTRACT.items())),
                    repr(sorted((k, repr(v)) for k, v in maps.items())),
                    # typing converts offsets to this zone; validation checks this currency
                    settings.timezone,
                    settings.currency,
                ),
            )
            if only is None
            else None
        )
        cache_key = stamp.key if stamp is not None else None
        if stamp is not None and validate and stamp.attach_typed(con, "kpi_cache", CONTRACT):
            # These exact bytes were validated and typed before: read the typed tables, skip the parse.
            typed = {t: con.create_view(t, con.sql(f"SELECT * FROM kpi_cache.main.{ident(t)}")) for t in CONTRACT}
            periods = {t: reader.period(CONTRACT[t], maps.get(t), located[t]) for t in wanted if located[t].files}
            reader.close()
            return cls(
                con,
                typed,
                name=src_name,
                settings=settings,
                files={k: v for k, v in found.items() if v},
                cache_key=cache_key,
                warnings=stamp.warnings(),
                declared=_declared(periods),
                inputs=list(stamp_files.values()),
                table_files={t: list(m.files) for t, m in located.items() if m.files},
            )
        raw: dict[str, ir.Table] = {}
        files: dict[str, Path] = {}
        problems: list[Problem] = []
        absent: dict[str, set[str]] = {}
        #: what reading found per table (period, currencies, hints, files): see exports.RawTable
        read: dict[str, exports.RawTable] = {}
        try:
            for table in CONTRACT.values():
                if table.name not in wanted:
                    raw[table.name] = cls._empty(con, table)
                    continue
                spec = maps.get(table.name)
                got = reader.read(table, spec, located[table.name])
                read[table.name] = got
                problems += got.problems
                # Amounts in another currency are refused (never summed); dates get their hint in validation.
                problems += exports.currency_problems(got, settings.currency)
                if got.relation is None:
                    # A refused table stays out of `files`: its references are not checked against
                    # an empty stand-in (no cascade of dangling-reference problems).
                    raw[table.name] = cls._empty(con, table)
                    continue
                one_file = len(got.files) == 1 and got.label == got.files[0].name
                files[table.name] = got.files[0] if one_file else folder / got.label
                absent[table.name] = set(got.missing)
                for col, why in got.missing.items():
                    expected = (
                        f"the mapping's expression for it to work on this export ({why})"
                        if why
                        else "the column to be present (required by the contract"
                        + (
                            f"; {spec.describe(col)}"
                            if spec is not None and spec.columns
                            else "; map it with `--mapping`"
                        )
                        + ")"
                    )
                    problems.append(Problem(got.label, col, expected, 0))
                raw[table.name] = got.relation
        finally:
            reader.close()
        plain: dict[str, set[str]] = {}
        verdict = stamp.read() if stamp is not None and validate and not problems else None
        stamp_warnings: list[str] = []
        if verdict is not None:
            validate = False  # these exact bytes passed validation before (see cache.validation_stamp)
            plain, stamp_warnings, stamp = verdict, list(stamp.warnings()), None  # type: ignore[union-attr]
        typed, warnings = cls._validate_and_type(
            con,
            raw,
            files,
            problems,
            validate,
            file_source=True,
            name=src_name,
            absent=absent,
            plain=plain,
            settings=settings,
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
            stamp.write(plain, con if all_csv else None, CONTRACT, warnings=warnings)
            cache.prune(keep=stamp.key)
        return cls(
            con,
            typed,
            name=src_name,
            settings=settings,
            files=files,
            cache_key=cache_key,
            warnings=warnings or stamp_warnings,
            declared=_declared({t: r.period for t, r in read.items()}),
            inputs=list(stamp_files.values()),
            table_files={t: list(m.files) for t, m in located.items() if m.files},
        )

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
        present = set(con.list_tables()) & set(CONTRACT)
        if getattr(con, "name", "") == "duckdb":
            _session_time_zone(con, settings)
        problems: list[Problem] = []
        raw: dict[str, ir.Table] = {}
        absent: dict[str, set[str]] = {}
        for table in CONTRACT.values():
            if table.name not in present:
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
        typed, warnings = cls._validate_and_type(
            con,
            raw,
            {},
            problems,
            validate,
            file_source=False,
            name=name,
            absent=absent,
            settings=settings,
            present=present,
        )
        return cls(con, typed, name=name, settings=settings, present=present, warnings=warnings)

    @staticmethod
    def _empty(con: Any, table: Table) -> ir.Table:
        schema = ibis.schema({c.name: IBIS_TYPES[c.kind] for c in table.columns})
        return ibis.memtable(schema.to_pyarrow().empty_table())

    @classmethod
    def _validate_and_type(
        cls,
        con: Any,
        raw: dict[str, ir.Table],
        files: Mapping[str, Any],
        problems: list[Problem],
        validate: bool,
        *,
        file_source: bool,
        name: str,
        absent: Mapping[str, set[str]],
        plain: dict[str, set[str]] | None = None,
        settings: Settings | None = None,
        present: Iterable[str] | None = None,
    ) -> tuple[dict[str, ir.Table], list[str]]:
        """Check every present table (when ``validate``) and type every table (:mod:`kpi_helpers.validation`).

        Raises :class:`SchemaError` with ``problems`` and every problem found; returns the typed
        tables and the warnings.
        """
        has = set(files) if file_source else set(present or ())
        typed, verdict = validation.validate_and_type(
            raw,
            has,
            validation.file_labels(files),
            validate=validate,
            absent=absent,
            plain=plain,
            currency=settings.currency if settings is not None else None,
        )
        problems += verdict.problems
        if problems:
            raise SchemaError(name, problems)
        return typed, verdict.warnings

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

        For a folder source the result is kept under ``$KPI_CACHE_DIR/results/<data>/``, where
        ``<data>`` hashes every input file's bytes, the mapping and the kit's code (:attr:`cache_key`);
        a process computing a key holds a lock on it, so parallel report kernels wait for each
        other's result instead of computing it again (:func:`kpi_helpers.cache.memoize`). ``key`` must
        name everything the result depends on besides the data (e.g. the quarter's dates and the
        model). Databases and Spark (no ``cache_key``), ``key=None`` and ``KPI_NO_CACHE=1`` compute
        every time; so does a result of a type the cache does not store (:func:`kpi_helpers.cache.put`).
        """
        return cache.memoize(self.cache_key, key, compute)

    @cached_property
    def coverage(self) -> Coverage:
        """What each present table covers, the data's end and the quarter rules (:mod:`kpi_helpers.coverage`)."""
        return measure(
            self._tables,
            self.present,
            self.fetch,
            fy_start_month=self.settings.fiscal_year_start_month,
            declared=self.declared,
        )

    @property
    def data_end(self) -> dt.date | None:
        """The latest date in the activity tables present (see :mod:`kpi_helpers.coverage`)."""
        return self.coverage.data_end

    def quarter(self, text: str | Quarter, *, today: Any = None) -> Quarter:
        """Parse a quarter name against this source's fiscal calendar and coverage.

        Raises :class:`~kpi_helpers.exceptions.PeriodError` (exit 2) for a quarter no table covers.
        """
        return self.coverage.quarter(text, today=today)

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


def _declared(periods: Mapping[str, Any]) -> dict[str, tuple[dt.date, dt.date]]:
    """Periods declared by a mapping or an export's banner, per table (see ``exports.RawTable.period``)."""
    return {t: (p.start, p.end) for t, p in periods.items() if p is not None}


def _session_time_zone(con: Any, settings: Settings) -> None:
    """The engine's session time zone is the source's: timestamps with an offset are converted to it
    (see :mod:`kpi_helpers.validation`, the one time-zone rule)."""
    zone = getattr(settings, "timezone", "UTC") or "UTC"
    con.raw_sql(f"SET TimeZone = {literal(zone)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
