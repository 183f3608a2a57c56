"""Confining the SQL of mapping files: it may read the data folder's files and nothing else.

A mapping is data a user downloads and shares, so every slot of it that takes SQL or a path is
checked before anything runs, by parsing (sqlglot, DuckDB dialect), not by pattern matching:

- ``query``: exactly one ``SELECT`` (``WITH``, ``UNION``/``INTERSECT``/``EXCEPT`` and DuckDB's
  ``PIVOT``/``UNPIVOT`` statements allowed) whose tables are its named inputs or its own ``WITH``
  names: :func:`check_query`;
- ``expressions`` and ``filter``: one expression, no subquery, no table: :func:`check_expression`;
- ``file`` and input globs: relative, inside the folder, no ``..``: :func:`check_glob`, and
  :func:`resolve_glob` keeps only files (symbolic links followed) inside the folder;
- ``read``: a whitelist of reader options with values of the right type, none a path:
  :func:`check_read_options`.

Statements (``COPY``, ``ATTACH``, ``INSTALL``, ``LOAD``, ``SET``, ``PRAGMA``, ``CALL``, ``CREATE``,
``DROP``, ``INSERT``, ...), table functions and functions that read files or settings
(``read_csv``, ``read_text``, ``glob``, ``query``, ``getenv``, ``current_setting``, ...), a path
used as a table, and a second statement after ``;`` are refused with a :class:`MappingError` that
names the mapping, the table and the key.

Defence in depth: :func:`confine` locks the DuckDB connection that runs mapping SQL (a source
opened with a mapping that has ``expressions``, a ``filter`` or a ``query``; without any, nothing
needs containing and the connection stays free for the caller: attaching a warehouse, writing
Parquet). The lock holds for the connection's life, because Parquet tables stay views that run the
mapping's expressions on every query. DuckDB's
``allowed_directories`` lists the folders it may touch, ``enable_external_access=false`` refuses
every other path (``COPY TO`` elsewhere, ``read_text('/etc/passwd')``, ``ATTACH`` of another
file, ``INSTALL``/``LOAD``), and ``lock_configuration=true`` refuses any later ``SET``. The kit
itself attaches its typed-table cache (a ``.duckdb`` file in the user's cache folder) on the same
connection, so the allowed folders are the data folder, the kit's cache folder and the reader's
private scratch folder (transcoded copies), nothing else. ``COPY ... TO`` a path inside an allowed
folder would still write, which is why the parse check above is the first line, not this one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, cast

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from .exceptions import MappingError
from .sqltext import literal_list

#: statement nodes never allowed anywhere in mapping SQL
_STATEMENTS: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, n)
    for n in (
        "Alter",
        "Analyze",
        "Attach",
        "Command",
        "Commit",
        "Copy",
        "Create",
        "Delete",
        "Describe",
        "Detach",
        "Drop",
        "Export",
        "Insert",
        "Install",
        "LoadData",
        "Merge",
        "Pragma",
        "Rollback",
        "Set",
        "Summarize",
        "Transaction",
        "Update",
        "Use",
    )
    if hasattr(exp, n)
)

#: function names (lower case) or prefixes (ending in ``_``) that read files, settings or other SQL
_BLOCKED_FUNCTIONS = (
    "read_",
    "parquet_",
    "sniff_csv",
    "glob",
    "query",
    "query_table",
    "getenv",
    "current_setting",
    "duckdb_",
    "pragma_",
    "load_",
    "install_",
    "iceberg_",
    "delta_",
    "sqlite_",
    "postgres_",
    "mysql_",
    "ducklake_",
    "json_execute_serialized_sql",
    "which_secret",
    "checkpoint",
    "force_checkpoint",
    "enable_",
    "disable_",
    "set_",
    "getvariable",
    "import_database",
    "export_database",
)

#: reader options a mapping may set: name -> (type, allowed values or None)
_READ_OPTIONS: dict[str, tuple[type, Collection[Any] | None]] = {
    "delimiter": (str, None),
    "quote": (str, None),
    "escape": (str, None),
    "header": (bool, None),
    "skip": (int, None),
    "comment": (str, None),
    "null_padding": (bool, None),
    "strict_mode": (bool, None),
    "max_line_size": (int, None),
    "new_line": (str, ("\n", "\r\n", "\r", "\\n", "\\r\\n", "\\r")),
    "nullstr": (str, None),
    "compression": (str, ("auto", "none", "gzip", "zstd")),
}
_ALIASES = {"delim": "delimiter", "sep": "delimiter", "null": "nullstr"}
_MAX_INT = {"skip": 10_000, "max_line_size": 1 << 30}


def _refuse(where: str, what: str, fix: str = "") -> MappingError:
    return MappingError(f"{where}: {what}" + (f"; {fix}" if fix else ""))


def _short(text: str, n: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _parse(sql: str, where: str, kind: str) -> exp.Expression:
    if not isinstance(sql, str) or not sql.strip():
        raise _refuse(where, f"expected {kind}, found nothing")
    try:
        trees = [t for t in sqlglot.parse(sql, read="duckdb") if t is not None]
    except ParseError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise _refuse(where, f"cannot parse {kind} `{_short(sql)}` ({_short(first, 120)})") from None
    if len(trees) != 1:
        raise _refuse(
            where, f"expected one {kind}, found {len(trees)} statements separated by `;`", "remove the others"
        )
    return cast(exp.Expression, trees[0])  # sqlglot 30 types parse() by Expr, the base of every node class


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()


def _blocked(name: str) -> bool:
    return any(name.startswith(b) if b.endswith("_") else name == b for b in _BLOCKED_FUNCTIONS)


def _check_nodes(tree: exp.Expression, where: str) -> None:
    """Refuse statements and file-reading functions anywhere in ``tree``."""
    for node in tree.walk():
        if isinstance(node, _STATEMENTS):
            word = node.sql(dialect="duckdb").split(maxsplit=1)[0].upper() if node.sql() else type(node).__name__
            raise _refuse(
                where,
                f"`{word}` is not allowed: mapping SQL may only read (one SELECT or expression)",
            )
        if isinstance(node, exp.Func) and not isinstance(node, exp.Binary | exp.Predicate):
            name = _function_name(node)
            if _blocked(name):
                raise _refuse(
                    where,
                    f"function `{name}` is not allowed: it reads files, settings or other SQL",
                    "read files through `file:` or `inputs:`",
                )


def check_expression(sql: str, *, where: str) -> str:
    """Check a SQL expression of ``expressions:`` or ``filter:``; return it as parsed (DuckDB SQL).

    The kit runs the returned text, never the user's: whatever it parsed is exactly what runs
    (a trailing ``--`` comment cannot swallow the rest of the kit's statement).

    Raises :class:`MappingError` for a statement, a subquery, a table or a function that reads
    files or settings.

    Examples
    --------
    >>> check_expression('TRY_CAST("Sessions" AS DOUBLE) * 2 -- per day', where="m.yml")
    'TRY_CAST("Sessions" AS DOUBLE) * 2 /* per day */'
    >>> check_expression("read_text('/etc/passwd')", where="m.yml")
    Traceback (most recent call last):
    ...
    kpi_helpers.exceptions.MappingError: m.yml: function `read_text` is not allowed: ...
    """
    tree = _parse(sql, where, "an expression")
    _check_nodes(tree, where)
    if isinstance(tree, exp.Query | exp.Pivot) or tree.find(exp.Query, exp.Table, exp.Subquery) is not None:
        raise _refuse(
            where,
            f"expected an expression over the export's columns, found a query `{_short(sql)}`",
            "reshape with `query:` and `inputs:` instead",
        )
    return tree.sql(dialect="duckdb")


def _cte_names(tree: exp.Expression) -> set[str]:
    return {cte.alias_or_name for cte in tree.find_all(exp.CTE)}


def check_query(sql: str, inputs: Collection[str], *, where: str) -> exp.Expression:
    """Check a ``query:``: one SELECT reading only ``inputs`` (and its own ``WITH`` names).

    Returns the parsed query (see :func:`render_query`).

    Examples
    --------
    >>> _ = check_query("SELECT day AS date, SUM(n) AS sessions FROM hits GROUP BY day", ["hits"], where="q")
    >>> check_query("COPY (SELECT 1) TO 'x.csv'", ["hits"], where="q")
    Traceback (most recent call last):
    ...
    kpi_helpers.exceptions.MappingError: q: expected one SELECT, found `COPY`; ...
    """
    tree = _parse(sql, where, "query")
    if not isinstance(tree, exp.Query | exp.Pivot):
        word = tree.sql(dialect="duckdb").split(maxsplit=1)[0].upper() if tree.sql() else type(tree).__name__
        raise _refuse(
            where, f"expected one SELECT, found `{word}`", "a mapping's query may only read its inputs (SELECT ...)"
        )
    _check_nodes(tree, where)
    known = {n.casefold() for n in inputs} | {n.casefold() for n in _cte_names(tree)}
    for table in tree.find_all(exp.Table):
        ident = table.this
        if not isinstance(ident, exp.Identifier):
            raise _refuse(
                where,
                f"`{_short(table.sql(dialect='duckdb'), 40)}` is not one of the inputs ({', '.join(sorted(inputs))})",
                "table functions and paths are not allowed; name the file under `inputs:`",
            )
        if table.args.get("db") or table.args.get("catalog") or ident.name.casefold() not in known:
            raise _refuse(
                where,
                f"table `{_short(table.sql(dialect='duckdb'), 40)}` is not one of the inputs "
                f"({', '.join(sorted(inputs))})",
                "a query reads its `inputs:` only; add the file there",
            )
    return tree


def render_query(tree: exp.Expression, names: Mapping[str, str]) -> str:
    """DuckDB SQL of a checked query with its inputs renamed (``names``: input -> view name)."""
    folded = {k.casefold(): v for k, v in names.items()}
    ctes = {n.casefold() for n in _cte_names(tree)}
    tree = tree.copy()
    for table in tree.find_all(exp.Table):
        key = table.name.casefold()
        if key in folded and key not in ctes:
            alias = table.alias or table.name
            table.set("this", exp.to_identifier(folded[key], quoted=True))
            table.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
    return tree.sql(dialect="duckdb")


def column_names(sql: str) -> set[str]:
    """Column names an expression or query refers to (empty when it does not parse).

    Examples
    --------
    >>> sorted(column_names('"Close Date" > "Created Date" AND x IS NULL'))
    ['Close Date', 'Created Date', 'x']
    """
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except ParseError:
        return set()
    return {c.name for c in tree.find_all(exp.Column) if c.name}


def check_glob(pattern: str, *, where: str) -> str:
    """Check a file name or glob of a mapping: relative, no ``..``, no home folder.

    Examples
    --------
    >>> check_glob("exports/leads_*.csv", where="m.yml")
    'exports/leads_*.csv'
    >>> check_glob("../secrets.csv", where="m.yml")
    Traceback (most recent call last):
    ...
    kpi_helpers.exceptions.MappingError: m.yml: `../secrets.csv` leaves the data folder; ...
    """
    if not isinstance(pattern, str) or not pattern.strip():
        raise _refuse(where, "expected a file name or glob in the data folder, found nothing")
    posix, win = PurePosixPath(pattern), PureWindowsPath(pattern)
    if posix.is_absolute() or win.is_absolute() or win.drive or pattern.startswith(("~", "\\")):
        raise _refuse(
            where,
            f"`{_short(pattern)}` is an absolute path",
            "name files relative to the data folder (e.g. `leads*.csv`)",
        )
    if ".." in posix.parts or ".." in win.parts:
        raise _refuse(where, f"`{_short(pattern)}` leaves the data folder", "name files inside the data folder")
    if "\0" in pattern or "://" in pattern:
        raise _refuse(where, f"`{_short(pattern)}` is not a file name", "name files inside the data folder")
    return pattern


def resolve_glob(folder: Path, pattern: str, *, where: str) -> list[Path]:
    """Files inside ``folder`` that ``pattern`` matches, sorted; links leading out are refused."""
    check_glob(pattern, where=where)
    root = folder.resolve()
    hits = []
    for p in sorted(root.glob(pattern)):
        real = p.resolve()
        if not real.is_relative_to(root):
            raise _refuse(where, f"`{p.relative_to(root)}` links outside the data folder", "copy the file into it")
        if real.is_file() or real.is_dir():
            hits.append(p)
    return hits


def check_read_options(opts: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """The ``read:`` options, checked against a whitelist and with aliases resolved.

    Examples
    --------
    >>> check_read_options({"delim": ";", "skip": 2}, where="m.yml")
    {'delimiter': ';', 'skip': 2}
    >>> check_read_options({"filename": "/etc/passwd"}, where="m.yml")
    Traceback (most recent call last):
    ...
    kpi_helpers.exceptions.MappingError: m.yml: unknown reader option `filename`; ...
    """
    out: dict[str, Any] = {}
    for key, value in opts.items():
        name = _ALIASES.get(str(key).lower(), str(key).lower())
        if name not in _READ_OPTIONS:
            raise _refuse(
                where, f"unknown reader option `{_short(str(key), 30)}`", f"allowed: {', '.join(_READ_OPTIONS)}"
            )
        kind, allowed = _READ_OPTIONS[name]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if ok and kind is str and name != "nullstr" and len(value) > 4:
            ok = False
        if ok and kind is str and name == "nullstr" and len(value) > 32:
            ok = False
        if ok and kind is int and not 0 <= value <= _MAX_INT.get(name, 1 << 30):
            ok = False
        if ok and allowed is not None and value not in allowed:
            ok = False
        if not ok:
            expect = (
                f"one of {sorted(allowed)}"
                if allowed
                else {bool: "true or false", int: "a whole number >= 0"}.get(kind, "a short text (a character or two)")
            )
            raise _refuse(where, f"option `{name}`: expected {expect}, found {_short(repr(value), 30)}")
        out[name] = value
    return out


def confine(con: Any, directories: Iterable[Path | str]) -> None:
    """Lock a DuckDB connection to ``directories``: no other path, no extensions, no ``SET``.

    Call it once, after the kit's own settings and before any mapping SQL runs. The connection
    can still create temporary tables and views, and attach files inside ``directories``.
    """
    dirs = sorted({str(Path(d).resolve()).rstrip("/") + "/" for d in directories})
    listed = literal_list(dirs)
    raw = getattr(con, "raw_sql", None) or con.execute
    raw(f"SET allowed_directories = [{listed}]")
    raw("SET enable_external_access = false")
    raw("SET lock_configuration = true")
