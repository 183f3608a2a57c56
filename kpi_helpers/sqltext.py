"""SQL text the kit builds: identifiers and string literals quoted one way.

Names and values reach SQL text from places the kit does not control (a column named in an export,
a path, a mapping's value); quoted here they stay a name or a value, whatever characters they
hold. Standard SQL, as DuckDB, Spark SQL in ANSI mode and every engine the kit uses read it: an
identifier in double quotes with ``"`` doubled, a literal in single quotes with ``'`` doubled.

>>> ident('a"b'), literal("it's")
('"a""b"', "'it''s'")
>>> f"SELECT {ident('Lead source')} FROM t WHERE x = {literal('Q3')}"
'SELECT "Lead source" FROM t WHERE x = \\'Q3\\''
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["ident", "literal", "literal_list"]


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier (``"`` doubled inside).

    >>> ident("leads"), ident('Lead "source" name')
    ('"leads"', '"Lead ""source"" name"')
    """
    return '"' + str(name).replace('"', '""') + '"'


def literal(value: Any) -> str:
    """``value`` as an SQL string literal (``'`` doubled inside); None as ``NULL``.

    Any other value is written as its text (``3`` -> ``'3'``): the engine casts it where the query
    needs a number.

    >>> literal("O'Brien"), literal(None), literal(3)
    ("'O''Brien'", 'NULL', "'3'")
    """
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def literal_list(values: Iterable[Any]) -> str:
    """Values as a comma-separated list of literals (for ``IN (...)`` and ``[...]``).

    >>> literal_list(["/data/", "/it's/"])
    "'/data/', '/it''s/'"
    """
    return ", ".join(literal(v) for v in values)
