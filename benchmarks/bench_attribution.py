"""Time attribution on a million-journey path table against ChannelAttribution, and every model on
about a million touch-level journeys.

**Path table** (``--part paths``). A seeded random path table (1M journeys over 12 channels, about
300k distinct paths, converting and not, with values; see :func:`random_paths`) is attributed by
the kit's exact Markov model, from a pandas DataFrame and from an ibis table of a DuckDB
connection (the form a data source's contract table ``paths`` has), and by ChannelAttribution's
simulated ``markov_model`` with 1e5 and 1e6 simulations (``pip install channelattribution``; a
benchmark-only tool, skipped with a note when missing). Each is timed ``--repeat`` times (median
shown), and its credit is compared with the exact answer: the largest absolute difference in a
channel's share of conversions and of value, in percentage points. The rule-based models and
Shapley on the same table are timed too.

**Touch level** (``--part touch``). By default synthetic contract tables (``touchpoints``,
``leads``, ``opportunities``) are generated with numpy straight into an in-memory DuckDB
connection; ``--data DIR`` reads those three tables from contract files instead
(``DIR/<table>.parquet`` or ``DIR/<table>.csv``), e.g. the output of ``kpi sample --scale``. Two
timings per model:

- ``cold``: :func:`kpi_helpers.attribution.attribute` on the lazy journeys, so the engine builds the
  journeys (joins and window functions over every touch) inside each call, as a notebook's first
  call does;
- ``warm``: on journeys materialised once into a DuckDB table (:meth:`Journeys.materialize`,
  timed on its own row).

Each figure is wall-clock and CPU seconds (CPU summed over DuckDB's threads); on a shared machine
the CPU figure is the steadier one.

Usage::

    .venv/bin/python benchmarks/bench_attribution.py                 # both parts, 1M journeys, 2 threads
    .venv/bin/python benchmarks/bench_attribution.py --part paths    # the path table only
    .venv/bin/python benchmarks/bench_attribution.py --leads 100000 --journeys 100000  # quicker
    .venv/bin/python benchmarks/bench_attribution.py --part touch --data data/sample --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa

from kpi_helpers.attribution import MODELS, TOUCH_LEVEL_ONLY, attribute, touch_journeys
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
PATH_CHANNELS = (*CHANNELS, "Affiliate", "Events", "Partner", "Video")
#: a path is at most this long (the integer key that finds distinct paths has one digit per touch)
MAX_TOUCHES = 16


def random_paths(n_journeys: int, seed: int, *, extra_touches: float = 3.2) -> pd.DataFrame:
    """A path table of ``n_journeys`` random journeys over the 12 :data:`PATH_CHANNELS`.

    Each journey has ``1 + Poisson(extra_touches)`` touches (at most :data:`MAX_TOUCHES`), each
    channel drawn from one Dirichlet-weighted distribution; it converts with a probability that
    grows with its touches (a channel's own uplift summed over them, capped at 0.9), for a
    log-normal value rounded to cents. Journeys with the same path are summed: ``path``
    (channels joined by ``" > "``), ``conversions``, ``value`` and ``nulls``. With 1M journeys
    and the defaults about 300k distinct paths, 15% of journeys converting.
    """
    rng = np.random.default_rng(seed)
    k = len(PATH_CHANNELS)
    length = np.minimum(1 + rng.poisson(extra_touches, n_journeys), MAX_TOUCHES)
    journey = np.repeat(np.arange(n_journeys), length)
    channel = rng.choice(k, len(journey), p=rng.dirichlet(np.full(k, 3.0)))
    uplift = rng.uniform(0.005, 0.06, k)
    converts = rng.random(n_journeys) < np.minimum(np.bincount(journey, uplift[channel], n_journeys), 0.9)
    cents = np.where(converts, np.round(rng.lognormal(7.0, 1.0, n_journeys) * 100), 0).astype("int64")
    # a path as an integer: one base-(k+1) digit per touch, channel + 1, first touch highest
    first = np.r_[0, np.cumsum(length)[:-1]]
    place = length[journey] - 1 - (np.arange(len(journey)) - first[journey])
    key = np.zeros(n_journeys, dtype="int64")
    np.add.at(key, journey, (channel + 1) * (k + 1) ** place)
    keys, inverse = np.unique(key, return_inverse=True)
    names = []
    for x in keys.tolist():  # only the distinct paths are spelled out
        digits = []
        while x:
            x, d = divmod(x, k + 1)
            digits.append(PATH_CHANNELS[d - 1])
        names.append(" > ".join(reversed(digits)))
    conversions = np.bincount(inverse, converts, len(keys)).astype("int64")
    return pd.DataFrame(
        {
            "path": pd.array(names, dtype="str"),
            "conversions": conversions,
            # summed in integer cents: exact
            "value": np.bincount(inverse, cents, len(keys)).round().astype("int64") / 100,
            "nulls": np.bincount(inverse, minlength=len(keys)).astype("int64") - conversions,
        }
    )


def synthetic(con: ibis.BaseBackend, n_leads: int, seed: int) -> None:
    """Write synthetic contract tables into ``con``: ~1 journey and ~3 touches per lead.

    Leads are created over two years; each has 1 + Poisson(2.3) touches from 90 days before to 60
    days after its creation, the channel repeating the previous one with probability 0.3 (so
    collapsing repeats matters). 22% of leads get an opportunity (60% won, 30% lost, 10% open),
    1% of the won ones a second won deal; amounts are log-normal. A lead's own channel (its
    source, credited when it has no touch before the close) is drawn like a touch's.
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
    # drawn last, so the touches and deals are those of earlier versions of this benchmark
    l_channel = rng.choice(len(CHANNELS), n_leads, p=CHANNEL_P)
    l_campaign = l_channel * CAMPAIGNS_PER_CHANNEL + rng.integers(0, CAMPAIGNS_PER_CHANNEL, n_leads)

    # through memtables: ibis 12's create_table(name, <arrow table>) emits SQL sqlglot 30 cannot parse
    raw = {
        "t_raw": {"lead": t_lead, "touched_at": touched, "ch": channel, "cp": campaign},
        "l_raw": {"lead": lead, "created_at": created, "ch": l_channel, "cp": l_campaign},
        "o_raw": {"lead": o_lead, "created_at": o_created, "closed_at": o_closed, "stage": stage, "amount": amount},
    }
    for name, columns in raw.items():
        con.create_table(name, ibis.memtable(pa.table(columns)))
    names = "CASE ch " + " ".join(f"WHEN {i} THEN '{c}'" for i, c in enumerate(CHANNELS)) + " END"
    # ids and labels are made in the engine: string building in numpy would dominate the setup
    con.raw_sql(f"""
        CREATE TABLE touchpoints AS SELECT 'L' || lead AS lead_id, touched_at, {names} AS channel,
            CASE WHEN ch = 0 THEN NULL ELSE 'cmp-' || cp END AS campaign FROM t_raw;
        CREATE TABLE leads AS SELECT 'L' || lead AS lead_id, created_at, {names} AS channel,
            CASE WHEN ch = 0 THEN NULL ELSE 'cmp-' || cp END AS campaign FROM l_raw;
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


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds of every thread): CPU time is the steadier figure on a
    shared machine."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def median_of(fn: Callable[[], Any], repeat: int) -> tuple[Any, float, float]:
    """``fn`` run ``repeat`` times: (last result, median wall seconds, median CPU seconds)."""
    runs = [timed(fn) for _ in range(repeat)]
    return runs[-1][0], statistics.median(r[1] for r in runs), statistics.median(r[2] for r in runs)


def shares(credit: pd.DataFrame) -> pd.DataFrame:
    """Each channel's share of the credited conversions and value, in percent."""
    return credit / credit.sum() * 100


def max_gap(credit: pd.DataFrame, exact: pd.DataFrame) -> tuple[float, float]:
    """Largest absolute difference in share of conversions and of value (percentage points)."""
    gap = (shares(credit.reindex(exact.index).fillna(0.0)) - shares(exact)).abs().max()
    return float(gap["conversions"]), float(gap["value"])


def channel_attribution(paths: pd.DataFrame, simulations: float) -> pd.DataFrame | None:
    """ChannelAttribution's ``markov_model`` (first order, its defaults otherwise, seed 0), as
    credit indexed by channel; None when the package is not installed."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints a banner on import
            import ChannelAttribution as ca
    except ImportError:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        out = ca.markov_model(
            paths,
            "path",
            "conversions",
            var_value="value",
            var_null="nulls",
            nsim_start=simulations,
            verbose=False,
            flg_pro=False,
        )
    out = out.set_index("channel_name").rename(
        columns={"total_conversions": "conversions", "total_conversion_value": "value"}
    )
    return out[["conversions", "value"]].sort_index()


def bench_paths(args: argparse.Namespace) -> None:
    """The path-table part: one table, every contender, a table of figures."""
    paths, _, setup = timed(lambda: random_paths(args.journeys, args.seed))
    con = ibis.duckdb.connect()
    con.raw_sql(f"SET threads = {args.threads}")
    # the default backend runs models on a DataFrame (shipped to it as an in-memory table)
    ibis.get_backend().raw_sql(f"SET threads = {args.threads}")
    in_engine = con.create_table("paths", ibis.memtable(paths))
    print(
        f"path table: {int(paths.conversions.sum() + paths.nulls.sum()):,} journeys "
        f"({int(paths.conversions.sum()):,} converting) over {len(PATH_CHANNELS)} channels, "
        f"{len(paths):,} distinct paths, seed {args.seed}; built in {setup:.1f} s CPU. "
        f"DuckDB threads: {args.threads}; median of {args.repeat} runs"
    )
    exact, *kit_df = median_of(lambda: attribute(paths, "markov"), args.repeat)
    rows: list[tuple[str, float, float, str, str]] = []

    def row(name: str, credit: pd.DataFrame | None, wall: float, cpu: float) -> None:
        if credit is None:
            rows.append((name, wall, cpu, "", ""))
            return
        conv, value = max_gap(credit, exact)
        rows.append((name, wall, cpu, f"{conv:.2g}", f"{value:.2g}"))

    row("kit markov, exact (DataFrame)", exact, *kit_df)
    row("kit markov, exact (ibis table)", *median_of(lambda: attribute(in_engine, "markov"), args.repeat))
    skipped = None
    for simulations in (1e5, 1e6):
        credit, wall, cpu = median_of(lambda s=simulations: channel_attribution(paths, s), args.repeat)
        if credit is None:
            skipped = "ChannelAttribution is not installed (pip install channelattribution): its rows are skipped"
            break
        row(f"ChannelAttribution markov_model, {simulations:,.0f} sims", credit, wall, cpu)
    for model in (m for m in MODELS if m not in TOUCH_LEVEL_ONLY and m != "markov"):
        credit, wall, cpu = median_of(lambda m=model: attribute(paths, m), args.repeat)
        rows.append((f"kit {model} (DataFrame)", wall, cpu, "", ""))

    print(f"\n{'path table':<48}{'wall s':>8}{'cpu s':>8}{'max share gap to exact, points':>34}")
    print(f"{'':<64}{'conversions':>17}{'value':>17}")
    for name, wall, cpu, conv, value in rows:
        print(f"{name:<48}{wall:8.2f}{cpu:8.2f}{conv:>17}{value:>17}")
    if skipped:
        print(f"skipped: {skipped}")
    print(
        "cpu s sums every thread (DuckDB's for the kit; ChannelAttribution runs one); a share gap is "
        "max over channels of |share - exact share| in percentage points."
    )


def bench_touch(args: argparse.Namespace) -> None:
    """The touch-level part: every model on lazy and on materialised journeys."""
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
    sources = warm.credit_sources()
    print(
        f"source: {source}; DuckDB threads: {args.threads}; {size['journeys']:,} journeys "
        f"({size['conversions']:,} converting, {size['nulls']:,} not), {size['touches']:,} touches, "
        f"{n_paths:,} distinct paths; table setup {setup:.1f} s CPU; "
        f"{sources.loc['own_channel', 'value_share']:.1%} of the value from leads' own channels"
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("paths", "touch", "both"), default="both")
    ap.add_argument("--journeys", type=int, default=1_000_000, help="journeys of the random path table")
    ap.add_argument("--repeat", type=int, default=3, help="runs per path-table figure (the median is shown)")
    ap.add_argument("--data", type=Path, help="directory with touchpoints, leads, opportunities files")
    ap.add_argument("--leads", type=int, default=1_000_000, help="synthetic leads (about one journey each)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2, help="DuckDB threads")
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS, metavar="MODEL")
    ap.add_argument("--start", type=dt.date.fromisoformat, help="conversion window start (default: open)")
    ap.add_argument("--end", type=dt.date.fromisoformat, help="conversion window end, exclusive")
    ap.add_argument("--skip-cold", action="store_true", help="time only on materialised journeys")
    args = ap.parse_args(argv)
    if args.part in ("paths", "both"):
        bench_paths(args)
    if args.part == "both":
        print()
    if args.part in ("touch", "both"):
        bench_touch(args)


if __name__ == "__main__":
    main()
