"""Backtest: how the forecasts did in past quarters, against the run rate and the weighted pipeline.

For every past quarter with enough history (a target set from the fiscal years before it, and a year
of data before it), the kit forecasts the quarter as of each of ``days`` (default 30, 45, 60, 75) into
it, from the data as it stood that day (:mod:`kpi_helpers.asof`), and each forecast is scored against
what happened:

- **Brier score** of "hit the target": mean of :math:`(p - o)^2`, with :math:`p` the forecast's
  probability of reaching the target and :math:`o` 1 when the quarter did, else 0 (lower is better);
- **coverage** of the P10-P90 interval: the share of quarters whose actual fell inside (80% nominal);
- **MAPE** of P50: mean of :math:`|P50 - actual| / actual` over actuals above 0.

Two baselines are scored on the same forecasts: the **run rate** (the value so far x days in the
quarter / days so far; for revenue, closed months x 3 / months closed) and the **weighted pipeline**
(won so far + each open deal's amount x the historical win rate, by stage when an
``opportunity_history`` gives stages; for bookings and won deals only). A baseline's probability is 1
when its projection reaches the target, else 0; it has no interval.

Forecasts within a quarter share its outcome, so the difference in Brier score (kit - baseline) gets
a bootstrap interval that resamples whole quarters. The targets are the goals' quarterly targets
(:func:`kpi_helpers.forecast.quarter_targets`), which use only fiscal years before the quarter's.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import forecast as F
from .asof import as_of, load_frames
from .exceptions import KpiInputError, PeriodError
from .periods import Quarter, quarter_of
from .registry import label_of
from .status import FORECAST_KEYS

__all__ = [
    "DAYS",
    "backtest_forecasts",
    "brier_difference",
    "format_scores",
    "run_backtest",
    "score",
    "track_record",
]

DAYS = (30, 45, 60, 75)
#: forecasts per quarter and bootstrap resamples: a backtest runs many forecasts, each needs fewer draws
BACKTEST_DRAWS = 2000
BOOTSTRAP = 2000
LEVEL = 0.9
_PIPELINE_METRICS = ("bookings", "won_deals", "all_bookings")


def _actual(frames: Mapping[str, pd.DataFrame], metric: str, q: Quarter) -> float | None:
    """What the quarter ended with (None when the data does not give it)."""
    lo, hi = pd.Timestamp(q.start), pd.Timestamp(q.end)
    if metric == "revenue":
        rev = frames.get("revenue")
        if rev is None:
            return None
        rows = rev[(rev["month"] >= lo) & (rev["month"] < hi)]
        return float(rows["revenue"].sum()) if len(rows) == 3 else None
    if metric in _PIPELINE_METRICS:
        opps = frames.get("opportunities")
        if opps is None:
            return None
        sub = opps if metric == "all_bookings" else opps[F.lead_deals(opps)]
        won = sub[sub["stage"].astype(str).str.lower().eq("won") & (sub["closed_at"] >= lo) & (sub["closed_at"] < hi)]
        return float(len(won)) if metric == "won_deals" else float(won["amount"].sum())
    dates = F._event_dates(frames, metric)
    if dates is None:
        return None
    return float(((dates >= lo) & (dates < hi)).sum())


def _run_rate(known: Mapping[str, pd.DataFrame], forecast: F.Forecast, q: Quarter, day: dt.date) -> float | None:
    """The run-rate projection the kit's pacing gives (see ``QuarterKpis.pacing``)."""
    if not forecast.defined:
        return None
    if forecast.metric == "revenue":
        rev = known.get("revenue")
        if rev is None:
            return None
        months = int(((rev["month"] >= pd.Timestamp(q.start)) & (rev["month"] < pd.Timestamp(q.end))).sum())
        return forecast.so_far * 3 / months if months else None
    elapsed = (day - q.start).days + 1
    return forecast.so_far * q.days / elapsed


def _weighted_pipeline(
    known: Mapping[str, pd.DataFrame],
    metric: str,
    so_far: float,
    day: dt.date,
    rates: dict[str, tuple[np.ndarray, np.ndarray] | None] | None = None,
) -> float | None:
    """Won so far + open amount (or count) x the historical win rate, by stage when stages are known.

    ``rates``: a dict shared by the metrics of one as-of day, so each group of deals (from leads,
    all) has its open deals' win rates estimated once."""
    opps = known.get("opportunities")
    if metric not in _PIPELINE_METRICS or opps is None:
        return None
    scope = "all" if metric == "all_bookings" else "leads"
    rates = {} if rates is None else rates
    if scope not in rates:
        rates[scope] = _open_win_rates(known, opps if scope == "all" else opps[F.lead_deals(opps)])
    found = rates[scope]
    if found is None:
        return None
    rate, amount = found
    weight = np.ones(len(rate)) if metric == "won_deals" else amount
    return so_far + float(weight @ rate)


def _open_win_rates(known: Mapping[str, pd.DataFrame], sub: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """Per open deal of ``sub``: the historical win rate (by its stage when the history gives one)
    and its amount; None when no deal has closed."""
    stage = sub["stage"].astype(str).str.lower()
    closed = sub["closed_at"].notna()
    won, lost = int((closed & stage.eq("won")).sum()), int((closed & stage.eq("lost")).sum())
    if won + lost == 0:
        return None
    rate = np.full(int((~closed).sum()), won / (won + lost))
    history = known.get("opportunity_history")
    if history is not None and len(history):
        rate = _stage_win_rates(sub, history, rate)
    return rate, sub.loc[~closed, "amount"].to_numpy(float)


def _stage_win_rates(opps: pd.DataFrame, history: pd.DataFrame, default: np.ndarray) -> np.ndarray:
    """Per open deal, the win rate of closed deals that passed through its current stage."""
    h = F._current_stages(opps, history)
    info = opps.set_index("opportunity_id")
    status = info["stage"].astype(str).str.lower()
    passed = h.drop_duplicates(["opportunity_id", "stage"])
    passed = passed.assign(closed=passed["opportunity_id"].map(info["closed_at"].notna()))
    passed = passed.assign(won=passed["opportunity_id"].map(status.eq("won")))
    closed = passed[passed["closed"].fillna(False).astype(bool)]
    rates = closed.groupby("stage")["won"].mean()
    sizes = closed.groupby("stage").size()
    latest = h.groupby("opportunity_id").tail(1).set_index("opportunity_id")["stage"]
    open_ids = opps.loc[opps["closed_at"].isna(), "opportunity_id"]
    now = open_ids.map(latest)
    by_stage = now.map(rates.where(sizes >= F._MIN_STAGE_DEALS)).to_numpy(dtype=float)
    return np.where(np.isnan(by_stage), default, by_stage)


def eligible_quarters(source: Any, frames: Mapping[str, pd.DataFrame]) -> list[Quarter]:
    """Past quarters with a year of data before them, up to the latest complete one (none while no
    quarter is complete yet)."""
    start = F._crm_start(frames)
    if start is None:
        return []
    fy = source.settings.fiscal_year_start_month
    first = quarter_of(start, fy)
    if start > first.start:
        first = first.shift(1)
    try:
        last = source.coverage.latest()
    except PeriodError:  # the data does not yet cover a whole quarter: nothing to score
        return []
    return [Quarter.from_key(k, fy) for k in range(first.key + 4, last.key + 1)]


def backtest_forecasts(
    source: Any,
    *,
    days: Sequence[int] = DAYS,
    metrics: Iterable[str] = ("bookings",),
    quarters: Sequence[Quarter] | None = None,
    draws: int = BACKTEST_DRAWS,
    seed: int = 0,
    kq: Any = None,
    frames: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Every backtest forecast, one row per (quarter, day, metric).

    ``quarters`` defaults to :func:`eligible_quarters`; ``kq`` (a
    :class:`~kpi_helpers.metrics.QuarterKpis`) lends its fiscal year's targets
    (:func:`kpi_helpers.forecast.year_targets`). Columns: ``quarter, day, as_of, metric, target,
    actual, hit, p10, p50, p90, probability, run_rate, weighted_pipeline, method``. A quarter
    without a target for the metric is left out (there is nothing to hit); ``attrs["skipped"]``
    names those quarters and why. ``frames``: the source's tables as :func:`kpi_helpers.asof.load_frames`
    gives them, when the caller has them already.
    """
    metrics = tuple(metrics)
    bad = [d for d in days if not (isinstance(d, int | np.integer) and 1 <= d <= 91)]
    if bad or not days:
        raise KpiInputError(f"`days` must be whole days into the quarter, 1-91; got {list(days)!r}")
    frames = load_frames(source) if frames is None else frames
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    chosen = eligible_quarters(source, frames) if quarters is None else list(quarters)
    all_targets = F.year_targets(source, chosen, kq=kq)
    for q in chosen:
        targets = all_targets[q.label]
        if isinstance(targets, str):
            skipped[q.label] = targets
            continue
        wanted: dict[str, tuple[float, float]] = {}
        for metric in metrics:
            target, actual = targets.get(metric), _actual(frames, metric, q)
            if target is None or actual is None:
                skipped[f"{q.label} {metric}"] = "no target" if target is None else "no actual"
            else:
                wanted[metric] = (target, actual)
        if not wanted:
            continue
        for d in days:
            day = min(q.start + dt.timedelta(days=int(d) - 1), q.last_day)
            known = as_of(frames, day)
            rates: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
            forecasts = F.forecast_quarter(
                known,
                q,
                day,
                targets={m: t for m, (t, _) in wanted.items()},
                metrics=tuple(wanted),
                draws=draws,
                seed=seed,
                reconstruct=False,
            )
            for metric, (target, actual) in wanted.items():
                fc = forecasts[metric]
                rows.append(
                    {
                        "quarter": q.label,
                        "day": int(d),
                        "as_of": day,
                        "metric": metric,
                        "target": target,
                        "actual": actual,
                        "hit": actual >= target,
                        "p10": fc.p10,
                        "p50": fc.p50,
                        "p90": fc.p90,
                        "probability": fc.probability_to_hit,
                        "run_rate": _run_rate(known, fc, q, day),
                        "weighted_pipeline": (
                            _weighted_pipeline(known, metric, fc.so_far, day, rates) if fc.defined else None
                        ),
                        "method": fc.method or fc.reason,
                    }
                )
    out = pd.DataFrame(rows)
    out.attrs["skipped"] = skipped
    return out


#: the forecasts the report's track record scores (those with a target)
TRACK_METRICS = ("revenue", "bookings", "won_deals", "opportunities", "sqls", "mqls", "leads")
#: the track record's columns: units and headers for :func:`kpi_helpers.tables.styled_table`
TRACK_UNITS = {
    "quarters": "count",
    "inside": "count",
    "coverage_p10_p90": "percent",
    "mape_p50": "percent",
    "brier": "ratio",
    "brier_run_rate": "ratio",
}
TRACK_LABELS = {
    "label": "Forecast",
    "quarters": "Quarters",
    "inside": "Actual inside P10-P90",
    "coverage_p10_p90": "Share inside",
    "mape_p50": "Mean error of P50",
    "brier": "Brier score",
    "brier_run_rate": "Brier score, run rate",
}


def track_record(kq: Any, *, quarters: int = 4, draws: int = 1000, seed: int = 0) -> pd.DataFrame:
    """How the forecasts did in the last ``quarters`` complete quarters before ``kq``'s quarter in
    progress, each forecast as of the same day into its quarter as ``kq``'s data reaches now.

    One row per metric of :data:`TRACK_METRICS` that could be scored, in that order: ``metric``,
    ``label`` (what it counts), ``quarters`` (forecasts scored), ``inside`` (actuals inside P10-P90),
    ``coverage_p10_p90``, ``mape_p50``, ``brier`` (the kit's) and ``brier_run_rate`` (Brier scores:
    the mean of (probability - outcome)^2; the run rate's probability is 0 or 1, and it is None
    where the run rate has no projection, e.g. revenue before a month of the quarter has closed).
    ``attrs["day"]`` is the day into the quarter. Memoised per data (:meth:`DataSource.memo`).
    Empty when the quarter is not in progress or forecasts are off (:func:`kpi_helpers.forecast.turned_off`).
    """
    src = kq.source
    end = src.data_end
    if not kq.in_progress or end is None or F.turned_off():
        return pd.DataFrame()
    day = (min(end, kq.quarter.last_day) - kq.quarter.start).days + 1
    past = [kq.quarter.shift(-i) for i in range(quarters, 0, -1)]

    def compute() -> pd.DataFrame:
        frames = load_frames(src)
        eligible = {q.label for q in eligible_quarters(src, frames)}
        chosen = [q for q in past if q.label in eligible]
        table = backtest_forecasts(
            src, days=(day,), metrics=TRACK_METRICS, quarters=chosen, draws=draws, seed=seed, kq=kq, frames=frames
        )
        out = []
        for metric in TRACK_METRICS:
            rows = table[(table["metric"] == metric) & table["probability"].notna()] if len(table) else table
            if not len(rows):
                continue
            hit, actual = rows["hit"].to_numpy(float), rows["actual"].to_numpy(float)
            inside = ((rows["p10"] <= rows["actual"]) & (rows["actual"] <= rows["p90"])).to_numpy()
            kit = _summary(rows["probability"].to_numpy(float), hit, rows["p50"].to_numpy(float), actual, inside)
            rr = rows[rows["run_rate"].notna()]
            proj = rr["run_rate"].to_numpy(float)
            run = _summary((proj >= rr["target"].to_numpy(float)).astype(float), rr["hit"].to_numpy(float), proj,
                           rr["actual"].to_numpy(float), None)  # fmt: skip
            out.append(
                {
                    "metric": metric,
                    "label": label_of(FORECAST_KEYS[metric]),
                    "quarters": kit["n_forecasts"],
                    "inside": int(inside.sum()),
                    "coverage_p10_p90": kit["coverage_p10_p90"],
                    "mape_p50": kit["mape_p50"],
                    "brier": kit["brier"],
                    "brier_run_rate": run["brier"],
                }
            )
        return pd.DataFrame(out)

    result = src.memo(("track record", kq.quarter.start, day, quarters, draws, seed, TRACK_METRICS), compute)
    result.attrs["day"] = day
    return result


def _summary(prob: np.ndarray, hit: np.ndarray, point: np.ndarray, actual: np.ndarray, inside: np.ndarray | None):
    n = len(prob)
    if n == 0:
        return {"brier": None, "coverage_p10_p90": None, "mape_p50": None, "n_forecasts": 0}
    positive = actual > 0
    return {
        "brier": float(np.mean((prob - hit) ** 2)),
        "coverage_p10_p90": None if inside is None else float(np.mean(inside)),
        "mape_p50": float(np.mean(np.abs(point[positive] - actual[positive]) / actual[positive]))
        if positive.any()
        else None,
        "n_forecasts": int(n),
    }


def score(table: pd.DataFrame, *, bootstrap: int = BOOTSTRAP, level: float = LEVEL, seed: int = 0) -> dict[str, Any]:
    """Score backtest rows (one metric, or several pooled) as :func:`run_backtest` reports them.

    Only rows where the kit and every baseline that applies have a value are scored, so all are
    judged on the same forecasts. A baseline that does not apply to the rows (the weighted pipeline
    for counts or revenue) gets None everywhere.
    """
    empty = {"brier": None, "coverage_p10_p90": None, "mape_p50": None, "n_forecasts": 0}
    if not len(table):  # nothing to score (no quarter with a year of history and a target)
        return {"kit": empty, "run_rate": empty, "weighted_pipeline": empty,
                "brier_difference": {"run_rate": None, "weighted_pipeline": None}}  # fmt: skip
    t = table
    with_wp = bool(t["weighted_pipeline"].notna().any())
    keep = t["probability"].notna() & t["p50"].notna() & t["run_rate"].notna()
    t = t[keep & t["weighted_pipeline"].notna()] if with_wp else t[keep]
    hit = t["hit"].to_numpy(dtype=float)
    actual = t["actual"].to_numpy(dtype=float)
    target = t["target"].to_numpy(dtype=float)
    p = t["probability"].to_numpy(dtype=float)
    inside = ((t["p10"] <= t["actual"]) & (t["actual"] <= t["p90"])).to_numpy()
    out: dict[str, Any] = {
        "kit": _summary(p, hit, t["p50"].to_numpy(float), actual, inside),
    }
    baselines = {"run_rate": True, "weighted_pipeline": with_wp}
    diffs: dict[str, Any] = {}
    for name, applies in baselines.items():
        if not applies:
            out[name], diffs[name] = empty, None
            continue
        proj = t[name].to_numpy(dtype=float)
        bp = (proj >= target).astype(float)
        out[name] = _summary(bp, hit, proj, actual, None)
        diffs[name] = (
            brier_difference(
                t["quarter"].to_numpy(), (p - hit) ** 2 - (bp - hit) ** 2, bootstrap=bootstrap, level=level, seed=seed
            )
            if bootstrap > 0
            else None
        )
    out["brier_difference"] = diffs
    return out


def brier_difference(
    quarters: np.ndarray, diff: np.ndarray, *, bootstrap: int = BOOTSTRAP, level: float = LEVEL, seed: int = 0
) -> dict[str, Any] | None:
    """Mean of ``diff`` (kit's squared error - baseline's, per forecast) with a bootstrap interval
    that resamples whole quarters (forecasts within a quarter share its outcome).

    Returns ``{estimate, low, high, level, quarters, share_kit_better}`` (``share_kit_better``: the
    share of resamples where the kit's Brier score is lower); None without forecasts.

    Examples
    --------
    >>> out = brier_difference(np.array(["Q1", "Q1", "Q2", "Q2"]), np.array([-0.2, -0.2, -0.1, -0.1]))
    >>> round(out["estimate"], 2), out["quarters"], round(out["low"], 2), round(out["high"], 2)
    (-0.15, 2, -0.2, -0.1)
    """
    if len(diff) == 0:
        return None
    labels, idx = np.unique(quarters, return_inverse=True)
    sums = np.bincount(idx, weights=diff)
    counts = np.bincount(idx).astype(float)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(labels), size=(bootstrap, len(labels)))
    boot = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(boot, (alpha, 1 - alpha))
    return {
        "estimate": float(diff.mean()),
        "low": float(low),
        "high": float(high),
        "level": level,
        "quarters": len(labels),
        "share_kit_better": float(np.mean(boot < 0)),
    }


def run_backtest(
    source: Any,
    goals: str | Path | None = None,
    days: Sequence[int] = DAYS,
    *,
    metric: str = "bookings",
    draws: int = BACKTEST_DRAWS,
    seed: int = 0,
) -> dict[str, Any]:
    """Backtest one metric (default ``bookings``: won deals from leads against the lead-revenue target).

    ``source`` is a :class:`~kpi_helpers.source.DataSource` or a data folder (opened with ``goals``).
    Returns ``{"kit": {brier, coverage_p10_p90, mape_p50, n_forecasts}, "run_rate": {...},
    "weighted_pipeline": {...}, "brier_difference": {"run_rate": {...}, "weighted_pipeline": {...}}}``.
    """
    if metric not in F.METRICS:
        raise KpiInputError(f"unknown metric `{metric}`; expected one of {', '.join(F.METRICS)}")
    if isinstance(source, str | Path):
        from .source import DataSource

        source = DataSource.open(source, goals=goals)
    elif goals is not None:
        raise KpiInputError("`goals` applies when `source` is a data folder; open the DataSource with `goals=` instead")
    table = backtest_forecasts(source, days=days, metrics=(metric,), draws=draws, seed=seed)
    return score(table, seed=seed)


def format_scores(result: Mapping[str, Any], *, metric: str = "bookings") -> str:
    """The scores as a small text table, with the Brier differences and their intervals."""

    def num(x: Any, fmt: str) -> str:
        missing = x is None or (isinstance(x, float) and math.isnan(x))
        return "n/a" if missing else format(x, fmt)

    lines = [f"backtest of `{metric}`: {result['kit']['n_forecasts']} forecasts", ""]
    lines.append(f"{'':<18} {'Brier':>7} {'P10-P90':>8} {'MAPE P50':>9}")
    for name in ("kit", "run_rate", "weighted_pipeline"):
        r = result[name]
        brier, cover, mape = num(r["brier"], ".3f"), num(r["coverage_p10_p90"], ".0%"), num(r["mape_p50"], ".1%")
        lines.append(f"{name:<18} {brier:>7} {cover:>8} {mape:>9}")
    for name, d in result["brier_difference"].items():
        if d is None:
            continue
        lines.append(
            f"kit - {name}: Brier {d['estimate']:+.3f} ({d['level']:.0%} interval {d['low']:+.3f} to {d['high']:+.3f}, "
            f"{d['quarters']} quarters; kit better in {d['share_kit_better']:.0%} of resamples)"
        )
    return "\n".join(lines)
