"""The ``kpi`` command: validate data, print a quarter's KPIs, make sample data, render reports.

Bad data, bad options and failed runs end with a clear message on stderr and a non-zero exit
code (2 for usage and data problems, 1 for a failed report), never a raw traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from . import __version__
from .exceptions import KpiError, SchemaError


def _add_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="data/sample", help="data folder of exports (default: %(default)s)")
    p.add_argument(
        "--mapping",
        action="append",
        default=None,
        metavar="FILE",
        help="column mapping YAML or preset (ga4, hubspot, salesforce); repeatable",
    )
    p.add_argument("--goals", default=None, metavar="FILE", help="goals.yml (default: DATA/goals.yml)")
    p.add_argument(
        "--engine", default="duckdb", help="duckdb (files in --data) or an Ibis URL such as duckdb:///file.db, pyspark"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kpi", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"kpi {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a data source against the data contract")
    _add_source_args(p)
    p.add_argument("--table", action="append", default=None, help="check only this table (repeatable)")

    p = sub.add_parser("summary", help="print a quarter's KPI table")
    _add_source_args(p)
    p.add_argument("--quarter", default="latest", help="2026Q3, FY2026Q1, latest or current")
    p.add_argument("--attribution-model", default="position_based", help="attribution model for ROI")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON instead of a table")

    p = sub.add_parser("sample", help="write seeded sample data")
    p.add_argument("--out", required=True, help="folder to write")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--scale", type=float, default=1.0, help="1 = the committed sample; 100 = 100x rows")
    p.add_argument("--format", choices=("csv", "parquet"), default="csv")

    p = sub.add_parser("report", help="render the quarterly report (every notebook to HTML)")
    _add_source_args(p)
    p.add_argument("--quarter", default="latest", help="2026Q3, FY2026Q1, latest or current")
    p.add_argument("--out", default="reports", help="reports folder (default: %(default)s)")
    p.add_argument("--notebooks", nargs="+", default=None, help="notebooks to run (default: notebooks/*.ipynb)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="notebook parameter (repeatable); unknown keys are an error",
    )
    p.add_argument("--jobs", type=int, default=None, help="notebooks run at once (default: cores)")
    p.add_argument(
        "--cell-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="fail a cell that runs longer (default: %(default)s; a scheduled run must not hang)",
    )
    return parser


def _cmd_validate(args: argparse.Namespace) -> int:
    from .source import DataSource

    t0 = time.perf_counter()
    src = DataSource.open(args.data, mapping=args.mapping, goals=args.goals, engine=args.engine, tables=args.table)
    counts = {name: int(src.fetch(t.count(), label=f"count {name}")) for name, t in src.tables.items()}
    print(f"{src.name}: valid ({time.perf_counter() - t0:.1f} s)")
    for name, n in counts.items():
        origin = src.files.get(name)
        print(f"  {name:<14} {n:>10,} rows  {origin.name if origin else '(absent: empty)'}")
    print(f"  data end: {src.data_end}")
    return 0


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
    from .report import parse_params, render_report

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

        return quarter_metrics(source(), quarter, attribution_model=model)

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
    )
    print(f"report: {index}")
    return 0


COMMANDS = {"validate": _cmd_validate, "summary": _cmd_summary, "sample": _cmd_sample, "report": _cmd_report}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SchemaError as exc:
        print(f"kpi {args.command}: invalid data\n{exc}", file=sys.stderr)
        return 2
    except KpiError as exc:
        code = 1 if type(exc).__name__ == "ReportError" else 2
        print(f"kpi {args.command}: {exc}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
