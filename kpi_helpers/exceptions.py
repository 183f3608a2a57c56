"""Errors raised by the kit.

Every error derives from :class:`KpiError` and from the built-in it resembles, so callers may catch
either (``except ValueError`` keeps working). Messages name the thing in backticks, say what was
expected and what came, and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


class KpiError(Exception):
    """Base class of every error the kit raises on purpose.

    ``exit_code`` is what the ``kpi`` command exits with (the contract in ``kpi --help``):
    2 for bad input or usage (invalid data, an unknown option or parameter, a missing folder, a
    quarter outside the data), 1 for a run that failed (a notebook error, a dead kernel, a full disk).
    """

    exit_code: int = 2


class PeriodError(KpiError, ValueError):
    """A quarter or fiscal year could not be parsed or is not covered by the data."""


class MappingError(KpiError, ValueError):
    """A column-mapping file is malformed or does not fit the export it is applied to."""


class ConfigError(KpiError, ValueError):
    """`goals.yml` or another settings file is malformed."""


class KpiInputError(KpiError, ValueError):
    """An option passed to a KPI function is outside its domain (e.g. a margin of 60 instead of 0.6)."""


class GoalError(KpiError, ValueError):
    """A revenue goal cannot be set from the history given (too few completed years, bad rates)."""


class AttributionError(KpiError, ValueError):
    """Attribution input or options are invalid."""


class CacheError(KpiError, OSError):
    """The cache folder cannot be used safely (owned by someone else, writable by others)."""


class ReportError(KpiError, RuntimeError):
    """A report run failed (exit 1); carries the notebook and cell that failed."""

    exit_code = 1


class ReportInputError(KpiError, ValueError):
    """A report cannot start: a bad option, output folder or notebook (exit 2; nothing has run)."""


@dataclass(frozen=True)
class Problem:
    """One contract violation found in a data source.

    ``rows`` are 1-based data-row numbers (the first row under the header is row 1) for file
    sources, ``file:row`` for a table stored as a folder of Parquet files; for database tables
    they are the id values when the table has an id column.
    """

    file: str
    column: str
    expected: str
    count: int
    rows: tuple[str, ...] = ()
    values: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = f"`{self.file}`" + (f", column `{self.column}`" if self.column else "")
        parts = []
        if self.rows:
            more = ", ..." if self.count > len(self.rows) else ""
            parts.append(f"row{'s' if len(self.rows) > 1 else ''} {', '.join(self.rows)}{more}")
        if self.values:
            parts.append("found " + ", ".join(repr(v) for v in self.values))
        n = f"{self.count} row{'s' if self.count != 1 else ''}" if self.count else "missing"
        detail = f" ({'; '.join(parts)})" if parts else ""
        return f"{where}: {n}{detail}; expected {self.expected}"


@dataclass
class SchemaError(KpiError, ValueError):
    """A data source breaks its contract. ``problems`` lists every violation found, all at once."""

    source: str
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.source}: {len(self.problems)} problem{'s' if len(self.problems) != 1 else ''} with the data"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


class MailError(KpiError, ValueError):
    """A mail cannot be composed: not a rendered quarter, a bad address, no sender (exit 2; nothing was sent)."""


class DeliveryError(KpiError, OSError):
    """The mail server could not be reached, or it refused the login or the message (exit 1)."""

    exit_code = 1


class ParameterError(ReportInputError):
    """A report parameter is unknown to the notebooks or cannot be converted to the declared type."""


@dataclass
class NotebookError(ReportError):
    """A notebook raised while a report was rendered.

    ``cell_index`` is 0-based in the *source* notebook (papermill's injected-parameters cell is not
    counted); ``failed_path`` is the executed copy kept for debugging; ``others`` lists further
    notebooks that failed in the same run.
    """

    notebook: str
    cell_index: int | None
    cell_source: str
    ename: str
    evalue: str
    failed_path: str | None = None
    quarter: str = ""
    others: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        # Exceptions pickle through ``args``; rebuild from the fields so the error survives a process pool.
        return (type(self), tuple(getattr(self, f.name) for f in fields(self)))

    def __str__(self) -> str:
        where = "" if self.cell_index is None else f" in cell {self.cell_index + 1} (counting from 1)"
        first = f" `{self.cell_source}`" if self.cell_source else ""
        msg = f"`{self.notebook}` failed{where}{first}: {self.ename}: {self.evalue}"
        if self.failed_path:
            msg += f"; the executed notebook is kept at `{self.failed_path}`"
        if self.quarter:
            msg += f"; the previous report for {self.quarter} is unchanged"
        if self.others:
            msg += f"; also failed: {', '.join(f'`{o}`' for o in self.others)}"
        return msg
