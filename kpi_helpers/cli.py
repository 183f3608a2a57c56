"""The ``kpi`` command: validate data, print a quarter's KPIs, make sample data, render and send reports,
backtest the forecasts.

Bad data, bad options and failed runs end with a clear message on stderr and the exit code of the
contract below, never a raw traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any

from . import __version__
from .exceptions import KpiError, SchemaError

EXIT_CODES = """\
exit codes:
  0  done
  1  a run failed (a notebook error, a dead kernel, a full disk); the previous report is unchanged
  2  bad input or usage (invalid data, an unknown option or parameter, a missing folder, a quarter
     outside the data); nothing was run
"""


def _add_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="data/sample", help="data folder of exports (default: %(default)s)")
    p.add_argument(
        "--mapping",
        action="append",
        default=None,
        metavar="FILE|PRESET",
        help="column mapping: a YAML file or a bundled preset (see kpi_helpers/presets); repeatable",
    )
    p.add_argument("--goals", default=None, metavar="FILE", help="goals.yml (default: DATA/goals.yml)")
    p.add_argument(
        "--engine", default="duckdb", help="duckdb (files in --data) or an Ibis URL such as duckdb:///file.db, pyspark"
    )


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="kpi", description=__doc__.splitlines()[0], epilog=EXIT_CODES, formatter_class=fmt
    )
    parser.add_argument("--version", action="version", version=f"kpi {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "validate", help="check a data source against the data contract", epilog=EXIT_CODES, formatter_class=fmt
    )
    _add_source_args(p)
    p.add_argument("--table", action="append", default=None, help="check only this table (repeatable)")

    p = sub.add_parser("summary", help="print a quarter's KPI table", epilog=EXIT_CODES, formatter_class=fmt)
    _add_source_args(p)
    p.add_argument("--quarter", default="latest", help="2026Q3, FY2026Q1, latest or current")
    p.add_argument("--attribution-model", default="position_based", help="attribution model for channel ROI")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON instead of a table")

    p = sub.add_parser("sample", help="write seeded sample data", epilog=EXIT_CODES, formatter_class=fmt)
    p.add_argument("--out", required=True, help="folder to write")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--scale", type=float, default=1.0, help="1 = the committed sample; 100 = 100x rows")
    p.add_argument("--format", choices=("csv", "parquet"), default="csv")

    p = sub.add_parser(
        "report", help="render the quarterly report (every notebook to HTML)", epilog=EXIT_CODES, formatter_class=fmt
    )
    _add_source_args(p)
    p.add_argument("--quarter", default="latest", help="2026Q3, FY2026Q1, latest or current")
    p.add_argument("--out", default="reports", help="reports folder (default: %(default)s)")
    p.add_argument("--notebooks", nargs="+", default=None, help="notebooks to run (default: notebooks/*.ipynb)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="notebook parameter (repeatable); unknown keys are refused before anything runs",
    )
    p.add_argument("--jobs", type=int, default=None, help="notebooks run at once (default: cores)")
    p.add_argument(
        "--cell-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="fail a cell that runs longer, rounded up to whole seconds (default: %(default)s; a scheduled run "
        "must not hang)",
    )
    p.add_argument("--pdf", action="store_true", help="also print report.pdf with headless Chromium")
    p.add_argument(
        "--paper",
        type=_paper,
        default="A4",
        metavar="SIZE",
        help="page size of report.pdf and of report.html when printed: A4 or Letter (default: %(default)s)",
    )
    p = sub.add_parser(
        "backtest",
        help="score the forecasts on past quarters against the run rate and the weighted pipeline",
        description="Forecast every past quarter with a year of history before it, as of each of --days into it, "
        "from the data as it stood then; score against what happened (Brier score of hitting the target, "
        "P10-P90 coverage, MAPE of P50) beside the run rate and the weighted pipeline, with a bootstrap "
        "interval (whole quarters resampled) of the kit's Brier score minus each baseline's.",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    _add_source_args(p)
    p.add_argument(
        "--days",
        type=_days,
        default=None,
        help="days into each quarter to forecast from, comma-separated (default: 30,45,60,75)",
    )
    p.add_argument("--metric", default="bookings", help="forecast to backtest: bookings (default), won_deals, "
                   "revenue, leads, mqls, sqls, opportunities")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the scores as JSON instead of a table")

    p = sub.add_parser(
        "send",
        help="mail a quarter's brief, with report.pdf (or report.html) attached",
        description="Mail the brief of a rendered quarter as the message, with the report attached. Credentials come "
        "from the environment only: KPI_SMTP_USER and KPI_SMTP_PASSWORD.",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    p.add_argument(
        "folder",
        metavar="OUT/QUARTER",
        help="a quarter `kpi report` rendered (reports/2026Q3; reports/latest: the newest)",
    )
    p.add_argument("--to", nargs="+", action="extend", required=True, metavar="ADDR", help="recipients")
    p.add_argument(
        "--smtp", default=None, metavar="HOST:PORT", help="mail server (default: $KPI_SMTP, else localhost:25)"
    )
    p.add_argument("--from", dest="sender", default=None, metavar="ADDR", help="sender (default: $KPI_MAIL_FROM)")
    p.add_argument(
        "--dry-run", action="store_true", help="write the message to kpi-<quarter>.eml in this folder; send nothing"
    )
    p = sub.add_parser("cache", help="show the kit's cache folder, or clear it", epilog=EXIT_CODES, formatter_class=fmt)
    p.add_argument("--clear", action="store_true", help="remove every file the kit wrote in its cache folder")
    return parser


def _paper(text: str) -> str:
    """``--paper``: a page size of :data:`kpi_helpers.onefile.PAPERS`, in any case."""
    from .onefile import PAPERS

    found = [p for p in PAPERS if p.lower() == text.strip().lower()]
    if not found:
        raise argparse.ArgumentTypeError(f"expected {' or '.join(PAPERS)}; got {text!r}")
    return found[0]


def _days(text: str) -> tuple[int, ...]:
    """``--days``: whole days into a quarter, 1-91, comma-separated."""
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected whole days separated by commas, e.g. 30,45,60,75; got {text!r}"
        ) from None
    if not values or any(not 1 <= v <= 91 for v in values):
        raise argparse.ArgumentTypeError(f"days must be 1-91, e.g. 30,45,60,75; got {text!r}")
    return values


def _cmd_backtest(args: argparse.Namespace) -> int:
    import json

    from .backtest import DAYS, format_scores, run_backtest
    from .source import DataSource

    src = DataSource.open(args.data, mapping=args.mapping, goals=args.goals, engine=args.engine)
    result = run_backtest(src, days=args.days or DAYS, metric=args.metric)
    print(json.dumps(result, indent=2) if args.json else format_scores(result, metric=args.metric))
    return 0


def _cmd_cache(args: argparse.Namespace) -> int:
    from . import cache

    usage = cache.clear() if args.clear else cache.info()
    verb = "removed" if args.clear else "holds"
    print(f"{usage.folder}: {verb} {usage.entries} entries, {usage.bytes / 2**20:.1f} MiB")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from .source import DataSource

    t0 = time.perf_counter()
    src = DataSource.open(args.data, mapping=args.mapping, goals=args.goals, engine=args.engine, tables=args.table)
    if not src.present:
        advice = "".join(f"\n  {line}" for line in _unread(src))
        raise KpiError(
            f"`{src.name}` holds no export of a contract table (leads.csv, web_sessions.csv, ...: see "
            f"docs/data-contract.md), so no KPI can be computed{advice or ''}"
        )
    cov = src.coverage.as_dict()
    print(f"{src.name}: valid ({time.perf_counter() - t0:.1f} s)")
    for name in src.tables:
        if name not in src.present:
            continue
        c = cov.get(name, {})
        span = f"{c.get('first_date')} to {c.get('last_date')}" if c.get("first_date") else "covers no period"
        print(f"  {name:<14} {c.get('rows', 0):>10,} rows  {span:<26}  {_origin(src, name)}")
    absent = [name for name in src.tables if name not in src.present]
    if absent:
        print(f"  absent: {', '.join(absent)} (the KPIs that need them are n/a)")
    print(f"  data end: {src.data_end}")
    for gap in _gaps(src):
        print(f"  gap: {gap}")
    for w in src.warnings:
        print(f"  warning: {w}")
    for line in _unread(src):
        print(f"  {line}")
    return 0


#: files in a data folder that are exports (the kit's own goals.yml and mappings are not)
_EXPORT_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".txt", ".parquet", ".xlsx", ".xls")


def _unread(src: Any) -> list[str]:
    """Export files in the data folder no table read, with the preset their header matches."""
    from pathlib import Path

    from .exports import suggestion

    folder = Path(src.name)
    read = {Path(p).resolve() for p in src.inputs}
    out = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not path.is_file() or not path.name.lower().endswith(_EXPORT_SUFFIXES) or path.resolve() in read:
            continue
        if path.name.lower().endswith((".xlsx", ".xls")):
            out.append(
                f"not read: `{path.name}` is an Excel workbook; save it as CSV UTF-8 (File > Save As > CSV UTF-8) "
                "and name it after its table (e.g. leads.csv), or map it with --mapping"
            )
            continue
        hint = suggestion(path)
        out.append(f"not read: {hint}" if hint else f"not read: `{path.name}` (no table or preset matches its name)")
    return out


def _origin(src: Any, name: str) -> str:
    paths = src.table_files.get(name) or ([src.files[name]] if name in src.files else [])
    if not paths:
        return "(database table)"
    names = [getattr(p, "name", str(p)) for p in paths]
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _gaps(src: Any) -> list[str]:
    """Days without rows inside a daily table's span (a site has sessions every day)."""
    out = []
    for name, c in src.coverage.tables.items():
        if c.kind == "daily" and c.gaps:
            runs = ", ".join(str(g) for g in c.gaps[:5]) + (", ..." if len(c.gaps) > 5 else "")
            days = sum(g.days for g in c.gaps)
            out.append(f"`{name}` has no rows on {days} day{'s' if days != 1 else ''}: {runs}")
    return out


def _cmd_summary(args: argparse.Namespace) -> int:
    from .metrics import format_summary, quarter_metrics, to_json
    from .source import DataSource

    src = DataSource.open(args.data, mapping=args.mapping, goals=args.goals, engine=args.engine)
    m = quarter_metrics(src, args.quarter, attribution_model=args.attribution_model)
    print(to_json(m) if args.json else format_summary(m))
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from .sample import generate

    t0 = time.perf_counter()
    counts = generate(args.out, seed=args.seed, scale=args.scale, fmt=args.format)
    print(f"wrote {args.out} in {time.perf_counter() - t0:.1f} s")
    for name, n in counts.items():
        print(f"  {name:<14} {n:>12,} rows")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .planning import parse_params
    from .runner import render_report

    params = parse_params(args.param)
    model = str(params.get("attribution_model", "position_based"))
    opened: dict[str, Any] = {}

    def source() -> Any:
        # Opened (and validated) once in this process, while the kernels boot: this also fills the
        # validation cache, so the notebooks' own opens of the same bytes skip the parse and checks.
        from .source import DataSource

        if "src" not in opened:
            opened["src"] = DataSource.open(args.data, mapping=args.mapping, goals=args.goals, engine=args.engine)
        return opened["src"]

    def resolve_quarter(text: str) -> str:
        return source().quarter(text).label

    def metrics_fn(*, quarter: str, **_: Any) -> dict[str, Any]:
        from .metrics import quarter_metrics
        from .model_metrics import model_entries

        m = quarter_metrics(source(), quarter, attribution_model=model)
        # the models' blocks: the same fits as notebooks 04 and 05 (cached, so computed once between them)
        entries = model_entries(source(), m["quarter"], attribution_model=model, params=params)
        m["undefined"] = {**(m.get("undefined") or {}), **entries.pop("undefined")}
        return {**m, **entries}

    index = render_report(
        data=args.data,
        quarter=args.quarter,
        out=args.out,
        mapping=args.mapping,
        goals=args.goals,
        engine=args.engine,
        notebooks=args.notebooks,
        params=params,
        jobs=args.jobs,
        metrics_fn=metrics_fn,
        resolve_quarter=resolve_quarter,
        cell_timeout=args.cell_timeout,
        pdf=args.pdf,
        paper=args.paper,
    )
    print(f"report: {index}")
    return 0


def _cmd_send(args: argparse.Namespace) -> int:
    from .mail import send

    print(send(args.folder, args.to, server=args.smtp, sender=args.sender, dry_run=args.dry_run))
    return 0


COMMANDS = {
    "validate": _cmd_validate,
    "summary": _cmd_summary,
    "sample": _cmd_sample,
    "report": _cmd_report,
    "backtest": _cmd_backtest,
    "send": _cmd_send,
    "cache": _cmd_cache,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kpi`` command; return its exit code (0 done, 1 a run failed, 2 bad input or usage)."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line(args.command)
            return COMMANDS[args.command](args)
    except SchemaError as exc:
        print(f"kpi {args.command}: invalid data\n{exc}", file=sys.stderr)
        return 2
    except KpiError as exc:
        print(f"kpi {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _one_line(command: str) -> Any:
    """Kit warnings (a damaged cache entry, recomputed) as one line on stderr, in the command's voice."""

    def show(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        print(f"kpi {command}: warning: {message}", file=sys.stderr)

    return show


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
