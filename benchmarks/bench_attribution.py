"""Time every attribution model on about a million touch-level journeys.

By default synthetic contract tables (``touchpoints``, ``leads``, ``opportunities``) are generated
with numpy straight into an in-memory DuckDB connection; ``--data DIR`` reads those three tables
from contract files instead (``DIR/<table>.parquet`` or ``DIR/<table>.csv``), e.g. the output of
``kpi sample --scale``.

Two timings per model:

- ``cold``: :func:`kpi_helpers.attribution.attribute` on the lazy journeys, so the engine builds the
  journeys (joins and window functions over every touch) inside each call, as a notebook's first
  call does;
- ``warm``: on journeys materialised once into a DuckDB table (:meth:`Journeys.materialize`,
  timed on its own row).

Each figure is wall-clock and CPU seconds (CPU summed over DuckDB's threads); on a shared machine
the CPU figure is the steadier one.

Usage::

    .venv/bin/python benchmarks/bench_attribution.py                 # 1M journeys, 2 threads
    .venv/bin/python benchmarks/bench_attribution.py --leads 100000  # quicker
    .venv/bin/python benchmarks/bench_attribution.py --data data/sample --threads 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa

from kpi_helpers.attribution import MODELS, attribute, touch_journeys
from kpi_helpers.schema import CONTRACT, IBIS_TYPES

CHANNELS = (
    "Direct",
    "Display",
    "Email",
    "Organic Search",
    "Organic Social",
    "Paid Search",
    "Paid Social",
    "Referral",
)
CHANNEL_P = np.array([0.14, 0.08, 0.16, 0.22, 0.08, 0.16, 0.10, 0.06])
CAMPAIGNS_PER_CHANNEL = 5
EPOCH = np.datetime64("2024-01-01T00:00:00", "s")
DAY = 86_400


def synthetic(con: ibis.BaseBackend, n_leads: int, seed: int) -> None:
    """Write synthetic contract tables into ``con``: ~1 journey and ~3 touches per lead.

    Leads are created over two years; each has 1 + Poisson(2.3) touches from 90 days before to 60
    days after its creation, the channel repeating the previous one with probability 0.3 (so
    collapsing repeats matters). 22% of leads get an opportunity (60% won, 30% lost, 10% open),
    1% of the won ones a second won deal; amounts are log-normal.
    """
    rng = np.random.default_rng(seed)
    lead = np.arange(n_leads)
    created = EPOCH + rng.integers(0, 730 * DAY, n_leads).astype("timedelta64[s]")

    per_lead = 1 + rng.poisson(2.3, n_leads)
    t_lead = np.repeat(lead, per_lead)
    offset = rng.integers(-90 * DAY, 60 * DAY, len(t_lead)).astype("timedelta64[s]")
    touched = created[t_lead] + offset
    channel = rng.choice(len(CHANNELS), len(t_lead), p=CHANNEL_P)
    # stickiness: a touch repeats the previous touch's channel 30% of the time (within a lead)
    same_lead = np.r_[False, t_lead[1:] == t_lead[:-1]]
    repeat = same_lead & (rng.random(len(t_lead)) < 0.3)
    idx = np.where(repeat, 0, np.arange(len(t_lead)))
    channel = channel[np.maximum.accumulate(idx)]
    campaign = channel * CAMPAIGNS_PER_CHANNEL + rng.integers(0, CAMPAIGNS_PER_CHANNEL, len(t_lead))

    has_opp = rng.random(n_leads) < 0.22
    o_lead = lead[has_opp]
    stage = rng.choice(3, len(o_lead), p=[0.6, 0.3, 0.1])  # won, lost, open
    second = (stage == 0) & (rng.random(len(o_lead)) < 0.01)
    n_first = len(o_lead)
    o_lead = np.r_[o_lead, o_lead[second]]
    stage = np.r_[stage, np.zeros(second.sum(), dtype=stage.dtype)]
    o_created = created[o_lead] + rng.integers(DAY, 30 * DAY, len(o_lead)).astype("timedelta64[s]")
    o_created[n_first:] += np.timedelta64(90 * DAY, "s")  # the second deal comes a quarter later
    o_closed = o_created + rng.integers(5 * DAY, 60 * DAY, len(o_lead)).astype("timedelta64[s]")
    amount = np.round(rng.lognormal(8.5, 1.0, len(o_lead)), 2)

    # through memtables: ibis 12's create_table(name, <arrow table>) emits SQL sqlglot 30 cannot parse
    raw = {
        "t_raw": {"lead": t_lead, "touched_at": touched, "ch": channel, "cp": campaign},
        "l_raw": {"lead": lead, "created_at": created},
        "o_raw": {"lead": o_lead, "created_at": o_created, "closed_at": o_closed, "stage": stage, "amount": amount},
    }
    for name, columns in raw.items():
        con.create_table(name, ibis.memtable(pa.table(columns)))
    names = "CASE ch " + " ".join(f"WHEN {i} THEN '{c}'" for i, c in enumerate(CHANNELS)) + " END"
    # ids and labels are made in the engine: string building in numpy would dominate the setup
    con.raw_sql(f"""
        CREATE TABLE touchpoints AS SELECT 'L' || lead AS lead_id, touched_at, {names} AS channel,
            CASE WHEN ch = 0 THEN NULL ELSE 'cmp-' || cp END AS campaign FROM t_raw;
        CREATE TABLE leads AS SELECT 'L' || lead AS lead_id, created_at FROM l_raw;
        CREATE TABLE opportunities AS SELECT 'O' || row_number() OVER () AS opportunity_id,
            'L' || lead AS lead_id, 'A' || lead AS account_id, created_at,
            CASE WHEN stage = 2 THEN NULL ELSE closed_at END AS closed_at,
            CASE stage WHEN 0 THEN 'won' WHEN 1 THEN 'lost' ELSE 'open' END AS stage, amount
            FROM o_raw;
        DROP TABLE t_raw; DROP TABLE l_raw; DROP TABLE o_raw;
    """)


def load(con: ibis.BaseBackend, data: Path) -> None:
    """Read the three contract tables from ``data`` (parquet or csv), typed per the contract."""
    for name in ("touchpoints", "leads", "opportunities"):
        pq, csv = data / f"{name}.parquet", data / f"{name}.csv"
        if pq.exists():
            t = con.read_parquet(pq)
        elif csv.exists():
            t = con.read_csv(csv)
        else:
            sys.exit(f"{data}: neither {pq.name} nor {csv.name} found")
        spec = CONTRACT[name]
        casts = {c.name: t[c.name].cast(IBIS_TYPES[c.kind]) for c in spec.columns if c.name in t.columns}
        con.create_table(name, t.select(**casts))


def timed(fn):
    """(result, wall seconds, CPU seconds of every thread): CPU time is the steadier figure on a
    shared machine."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="directory with touchpoints, leads, opportunities files")
    ap.add_argument("--leads", type=int, default=1_000_000, help="synthetic leads (about one journey each)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2, help="DuckDB threads")
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS, metavar="MODEL")
    ap.add_argument("--start", type=dt.date.fromisoformat, help="conversion window start (default: open)")
    ap.add_argument("--end", type=dt.date.fromisoformat, help="conversion window end, exclusive")
    ap.add_argument("--skip-cold", action="store_true", help="time only on materialised journeys")
    args = ap.parse_args(argv)

    con = ibis.duckdb.connect()
    con.raw_sql(f"SET threads = {args.threads}")
    if args.data:
        *_, setup = timed(lambda: load(con, args.data))
        source = str(args.data)
    else:
        *_, setup = timed(lambda: synthetic(con, args.leads, args.seed))
        source = f"synthetic, {args.leads:,} leads"
    tables = [con.table(n) for n in ("touchpoints", "leads", "opportunities")]
    lazy = touch_journeys(*tables, start=args.start, end=args.end)

    warm, build_wall, build_cpu = timed(lazy.materialize)
    size = warm.summary()
    n_paths = len(warm.paths())
    print(
        f"source: {source}; DuckDB threads: {args.threads}; {size['journeys']:,} journeys "
        f"({size['conversions']:,} converting, {size['nulls']:,} not), {size['touches']:,} touches, "
        f"{n_paths:,} distinct paths; table setup {setup:.1f} s CPU"
    )
    print(
        "seconds: wall-clock and CPU (all threads); warm = on materialised journeys, cold = lazy "
        "journeys built inside the call"
    )
    header = f"{'model':<17}{'warm wall':>10}{'warm cpu':>10}{'cold wall':>10}{'cold cpu':>10}"
    print(header + f"{'journeys':>11}{'touches':>11}")
    count = f"{size['journeys']:>11,}{size['touches']:>11,}"
    print(f"{'(materialize)':<17}{build_wall:10.2f}{build_cpu:10.2f}{'':>20}{count}")
    _, wall, cpu = timed(warm.paths)
    print(f"{'(paths)':<17}{wall:10.2f}{cpu:10.2f}{'':>20}{count}")
    results = {}
    for model in args.models:
        results[model], wall, cpu = timed(lambda m=model: attribute(warm, m))
        cold = "" if args.skip_cold else "".join(f"{x:10.2f}" for x in timed(lambda m=model: attribute(lazy, m))[1:])
        print(f"{model:<17}{wall:10.2f}{cpu:10.2f}{cold:>20}{count}")
    value = pd.DataFrame({m: r["value"] for m, r in results.items()})
    print("\nvalue credited, share of total:")
    print((value / value.sum()).round(3).to_string())


if __name__ == "__main__":
    main()
