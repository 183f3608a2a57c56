"""Forecasts for the quarter in progress: distributions (P10, P50, P90) and the probability of a target.

Every forecast is simulated (``draws`` values, vectorised, from a seeded :class:`numpy.random.Generator`)
from the data known at the end of the as-of day (:mod:`kpi_helpers.asof`), so the same code forecasts
today and, in a backtest, any day of a past quarter.

- **Funnel counts** (``leads``, ``mqls``, ``sqls``, ``opportunities`` from leads): the count so far plus
  the rest of the quarter. The rest follows the quarter's seasonal pattern: past years' share of the
  same fiscal quarter's count that had arrived by the same day (``s``) turns the count so far ``c``
  into an expected remainder :math:`c (1 - s) / s`; the remainder is Poisson with a Gamma-distributed
  rate (uncertainty of the pace so far) times a Gamma factor whose variance is what past quarters'
  remainders showed beyond Poisson noise (over-dispersion, a negative-binomial remainder).
- **Bookings and won deals** (``bookings``: amounts of new-business deals from leads won in the
  quarter, the facts' ``lead_revenue``; ``won_deals``: their count; ``all_bookings``: every deal, each
  ``opportunities.type`` modelled on its own, for information): won so far + each open deal won in
  the days left + deals not created yet that will be created and won in time (the opportunity count
  forecast times the chance a new deal closes won within the days left, amounts resampled from
  recent won deals). An open deal is judged by its age, or, with an ``opportunity_history`` table,
  by its current stage and the days spent in it and then through the stages after it: a semi-Markov
  chain whose every stay ends won, lost or moved on, competing outcomes with still-open deals
  censored (the Aalen-Johansen estimator of
  :class:`statsmodels.duration.survfunc.CumIncidenceRight`, per stage), re-estimated on
  Bayesian-bootstrap replicates of the deals so the spread includes the estimate's uncertainty.
  Amounts are those known on the as-of day, revised as won deals' were from the same stage.
- **Recognised revenue** (the monthly ``revenue`` table): the quarter's closed months plus the others
  from a regression of log revenue on a trend and month-of-year effects (last 48 months), with AR(1)
  residuals resampled (residual bootstrap); lagged bookings enter as a leading signal when they are
  significant in the history (p < 0.05, positive).

Bookings (deals won, by close date) and recognised revenue (finance's months) are different numbers.

:func:`forecast_quarter` runs them all on frames; :func:`forecast_source` on a data source with the
targets of the goals (:func:`quarter_targets`); :func:`metrics_block` gives ``metrics.json`` its
``forecast`` block and :func:`forecast_rows` a chart its rows; :func:`cohort_maturity` marks funnel
cohorts still maturing, so a recent quarter never looks worse only because it is recent.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .asof import as_of as _as_of
from .asof import cutoff, event_dates, load_frames, max_date
from .exceptions import KpiError, KpiInputError
from .formats import finite_number
from .periods import Quarter, quarter_of

__all__ = [
    "COUNT_METRICS",
    "DRAWS",
    "METRICS",
    "Forecast",
    "close_probabilities",
    "cohort_maturity",
    "forecast_bookings",
    "forecast_count",
    "forecast_quarter",
    "forecast_revenue",
    "forecast_rows",
    "forecast_source",
    "lead_deals",
    "metrics_block",
    "quarter_targets",
    "targets_of",
    "turned_off",
    "year_targets",
]

DRAWS = 2000
#: metrics forecast by :func:`forecast_quarter`, in the order metrics.json lists them
METRICS = ("revenue", "bookings", "won_deals", "all_bookings", "leads", "mqls", "sqls", "opportunities")
COUNT_METRICS = ("leads", "mqls", "sqls", "opportunities")
_UNITS = {"revenue": "money", "bookings": "money", "all_bookings": "money"}
_DAY = np.timedelta64(1, "D")
#: over-dispersion variance used when the history has too few quarters to measure it
_DEFAULT_DISPERSION = 0.02
#: a deal older than any deal the history followed this long is judged at this survival floor
_SURVIVAL_FLOOR = 0.02
#: fewer closed deals than this in a stage: that stage's deals are judged by age instead
_MIN_STAGE_DEALS = 20


@dataclass(frozen=True, eq=False)
class Forecast:
    """One metric's forecast for a quarter: a distribution, its target and the chance of reaching it.

    ``so_far`` is the metric's value in the quarter up to the as-of day; ``draws`` the simulated
    quarter totals (empty when undefined, then ``reason`` says why).
    """

    metric: str
    quarter: str
    as_of: dt.date
    so_far: float
    p10: float
    p50: float
    p90: float
    target: float | None
    probability_to_hit: float | None
    method: str
    unit: str = "count"
    draws: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    reason: str = ""

    @classmethod
    def from_draws(
        cls,
        metric: str,
        quarter: Quarter,
        as_of: dt.date,
        so_far: float,
        draws: np.ndarray,
        *,
        target: float | None,
        method: str,
    ) -> Forecast:
        """Summarise simulated quarter totals: P10, P50, P90 and P(total >= target)."""
        p10, p50, p90 = (float(v) for v in np.quantile(draws, (0.1, 0.5, 0.9)))
        tgt = finite_number(target)
        prob = None if tgt is None else float(np.mean(draws >= tgt))
        return cls(
            metric,
            quarter.label,
            as_of,
            float(so_far),
            p10,
            p50,
            p90,
            tgt,
            prob,
            method,
            _UNITS.get(metric, "count"),
            np.asarray(draws, dtype=float),
        )

    @classmethod
    def undefined(
        cls, metric: str, quarter: Quarter, as_of: dt.date, reason: str, *, target: float | None = None
    ) -> Forecast:
        """A forecast the data cannot give: every number NaN, ``reason`` says why."""
        nan = math.nan
        unit = _UNITS.get(metric, "count")
        return cls(
            metric, quarter.label, as_of, nan, nan, nan, nan, finite_number(target), None, "", unit, reason=reason
        )  # fmt: skip

    @property
    def defined(self) -> bool:
        return not self.reason

    def to_dict(self) -> dict[str, Any]:
        """``{p10, p50, p90, target, probability_to_hit, as_of}`` for ``metrics.json`` (plus ``so_far``,
        ``unit``, ``method`` and, when undefined, ``reason``); NaN is None."""
        out: dict[str, Any] = {
            "p10": finite_number(self.p10),
            "p50": finite_number(self.p50),
            "p90": finite_number(self.p90),
            "target": self.target,
            "probability_to_hit": self.probability_to_hit,
            "as_of": self.as_of.isoformat(),
            "so_far": finite_number(self.so_far),
            "unit": self.unit,
            "method": self.method,
        }
        if self.reason:
            out["reason"] = self.reason
        return out


def _rng(seed: int, metric: str) -> np.random.Generator:
    """One stream per metric, so a metric's draws do not depend on which others are computed."""
    return np.random.default_rng([seed, METRICS.index(metric) if metric in METRICS else len(METRICS)])


def _day(value: Any) -> dt.date:
    return pd.Timestamp(value).date()


# --------------------------------------------------------------------------------------------------
# Funnel counts


def _quarters_between(first: Quarter, before: Quarter) -> list[Quarter]:
    return [Quarter.from_key(k, first.fy_start_month) for k in range(first.key, before.key)]


def _counts(sorted_dates: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Events in ``[start, end)`` for each pair, on sorted datetime64 values."""
    return np.searchsorted(sorted_dates, ends, side="left") - np.searchsorted(sorted_dates, starts, side="left")


@dataclass(frozen=True)
class _CountModel:
    so_far: int
    remainder: np.ndarray  # simulated events from the day after as-of to the quarter's end
    method: str


def _count_model(
    dates: pd.Series, quarter: Quarter, as_of: dt.date, data_start: dt.date, draws: int, rng: np.random.Generator
) -> _CountModel:
    """The count so far and simulated remainders (see the module docstring)."""
    values = np.sort(pd.to_datetime(dates.dropna()).to_numpy(dtype="datetime64[ns]"))
    q_start = np.datetime64(quarter.start, "ns")
    cut = cutoff(as_of).to_datetime64().astype("datetime64[ns]")
    q_end = np.datetime64(quarter.end, "ns")
    so_far = int(_counts(values, np.array([q_start]), np.array([min(cut, q_end)]))[0])
    if cut >= q_end:
        return _CountModel(so_far, np.zeros(draws), "the quarter has ended: the count is final")
    elapsed = (min(cut, q_end) - q_start) / _DAY
    first = quarter_of(data_start, quarter.fy_start_month)
    if data_start > first.start:
        first = first.shift(1)  # a quarter the data starts inside is no pattern
    past = _quarters_between(first, quarter)
    s, same, disp, n_hist = _seasonal_share(values, past, quarter, elapsed)
    words = []
    if s is None:
        s = elapsed / quarter.days
        words.append("no past quarter to learn the pattern from: the rest follows the days left")
    else:
        kind = f"the same quarter of {same} past year{'s' if same != 1 else ''}" if same else "all past quarters"
        words.append(f"the rest of the quarter from the share {kind} had by day {elapsed:.0f} ({s:.0%})")
    if disp is None:
        disp = _DEFAULT_DISPERSION
        words.append(f"over-dispersion assumed ({_DEFAULT_DISPERSION:.2f}): fewer than 4 past quarters")
    else:
        words.append(f"over-dispersion {disp:.3f} measured on {n_hist} past quarters")
    # The pace so far is uncertain (Gamma posterior of a Poisson rate), the rest over-dispersed.
    pace = rng.gamma(so_far + 0.5, 1.0, size=draws)
    factor = rng.gamma(1 / disp, disp, size=draws) if disp > 0 else np.ones(draws)
    mean = pace * (1 - s) / s * factor
    return _CountModel(so_far, rng.poisson(mean).astype(float), "; ".join(words))


def _seasonal_share(
    values: np.ndarray, past: list[Quarter], quarter: Quarter, elapsed: float
) -> tuple[float | None, int, float | None, int]:
    """Share of a quarter's count in its first ``elapsed`` days, from past quarters; and the
    over-dispersion variance their remainders showed (None with fewer than 4 quarters)."""
    if not past:
        return None, 0, None, 0
    starts = np.array([np.datetime64(p.start, "ns") for p in past])
    ends = np.array([np.datetime64(p.end, "ns") for p in past])
    early = _counts(values, starts, starts + np.timedelta64(round(elapsed * 86400), "s")).astype(float)
    total = _counts(values, starts, ends).astype(float)
    qs = np.array([p.q for p in past])
    ok = total > 0
    same = ok & (qs == quarter.q)
    group = same if same.any() else ok
    if not group.any() or early[group].sum() == 0:
        return None, 0, None, 0
    s = float(early[group].sum() / total[group].sum())
    s = min(max(s, 1e-3), 1.0)
    # Over-dispersion: each past quarter's remainder against its prediction from the others (leave one out).
    resid, noise = [], []
    for i in np.flatnonzero(ok & (early > 0)):
        peers = ok & (qs == qs[i])
        peers[i] = False
        if not peers.any():
            peers = ok.copy()
            peers[i] = False
        if not peers.any() or early[peers].sum() == 0:
            continue
        si = early[peers].sum() / total[peers].sum()
        mu = early[i] * (1 - si) / max(si, 1e-3)
        resid.append(math.log((total[i] - early[i] + 0.5) / (mu + 0.5)))
        noise.append(1 / (mu + 0.5) + 1 / (early[i] + 0.5))
    if len(resid) < 4:
        return s, int(same.sum()), None, len(resid)
    disp = max(float(np.var(resid, ddof=1) - np.mean(noise)), 0.0)
    return s, int(same.sum()), disp, len(resid)


def forecast_count(
    dates: pd.Series,
    quarter: Quarter,
    as_of: Any,
    *,
    data_start: Any,
    target: float | None = None,
    metric: str = "leads",
    draws: int = DRAWS,
    seed: int = 0,
) -> Forecast:
    """Forecast a count of events (one date per event) for ``quarter`` from what happened by ``as_of``.

    Parameters
    ----------
    dates : Series of datetime
        One value per event (NaT ignored), e.g. ``leads.created_at`` or ``leads.mql_at``.
    quarter : Quarter
        The quarter to forecast; ``as_of`` should fall inside it.
    as_of : date
        Events dated after this day are not used (pass as-of frames for a backtest).
    data_start : date
        First day the data covers: quarters from the first whole one serve as the seasonal history.
    target : float, optional
        The quarter's target count; ``probability_to_hit`` is P(total >= target).

    Returns
    -------
    Forecast
        Quarter totals (count so far + simulated remainder).

    Examples
    --------
    Six events in each of two past first quarters, spread evenly, and three by mid-February this year:

    >>> days = pd.to_datetime(["2024-01-05", "2024-01-20", "2024-02-05", "2024-02-20", "2024-03-05",
    ...                        "2024-03-20", "2025-01-05", "2025-01-20", "2025-02-05", "2025-02-20",
    ...                        "2025-03-05", "2025-03-20", "2026-01-05", "2026-01-20", "2026-02-05"])
    >>> f = forecast_count(pd.Series(days), Quarter(2026, 1), "2026-02-14", data_start="2024-01-01", target=5)
    >>> f.so_far, f.p10 >= 3, f.probability_to_hit > 0.5
    (3.0, True, True)
    """
    day = _day(as_of)
    model = _count_model(dates, quarter, day, _day(data_start), draws, _rng(seed, metric))
    return Forecast.from_draws(
        metric, quarter, day, model.so_far, model.so_far + model.remainder, target=target, method=model.method
    )


def _event_dates(frames: Mapping[str, pd.DataFrame], metric: str) -> pd.Series | None:
    if metric in ("leads", "mqls", "sqls"):
        leads = frames.get("leads")
        col = {"leads": "created_at", "mqls": "mql_at", "sqls": "sql_at"}[metric]
        return None if leads is None else event_dates(leads, col)
    opps = frames.get("opportunities")
    if opps is None:
        return None
    return opps.loc[lead_deals(opps), "created_at"] if metric == "opportunities" else opps["created_at"]


def lead_deals(opps: pd.DataFrame) -> pd.Series:
    """Deals that count in the funnel: new business (``type`` ``new`` or empty) with a lead, as
    :mod:`kpi_helpers.facts` counts ``lead_opportunities``, ``lead_won_deals`` and ``lead_revenue``."""
    mask = opps["lead_id"].notna()
    if "type" in opps:
        kind = opps["type"].astype("string").str.strip().str.lower()
        mask &= kind.isna() | kind.eq("new") | kind.eq("")
    return mask


def _crm_start(frames: Mapping[str, pd.DataFrame]) -> dt.date | None:
    """The month the CRM tables start (as :mod:`kpi_helpers.coverage` counts an event table)."""
    firsts = [
        event_dates(f, "created_at").min() for n, f in frames.items() if n in ("leads", "opportunities") and len(f)
    ]
    firsts = [x for x in firsts if pd.notna(x)]
    return min(firsts).date().replace(day=1) if firsts else None


# --------------------------------------------------------------------------------------------------
# Bookings: a semi-Markov model of the pipeline, won and lost as competing outcomes

#: outcome codes of leaving a state; ``_MOVED + j`` is moving on to open stage ``j``
_WON, _LOST, _MOVED = 1, 2, 3
#: Bayesian-bootstrap replicates of the deal history: the estimated exits are uncertain too
_REPLICATES = 10
#: days in a state never reach this: it separates the replicates' blocks in one sorted key
_SPAN = 1e6
#: deals the exits are estimated on at most (a random share of a larger history)
_FIT_DEALS = 10_000
#: draws x open deals simulated at most: a very large pipeline is forecast from fewer draws (at least _MIN_DRAWS)
_MAX_CELLS, _MIN_DRAWS = 4_000_000, 500


@dataclass(frozen=True)
class _Exits:
    """How deals leave one state (an open stage, or "open" judged by age), per bootstrap replicate.

    A discrete distribution over (days in the state, outcome) from the Aalen-Johansen estimate of
    the cumulative incidence of each outcome (deals still in the state censored): replicate ``r``'s
    jumps sit at ``key = r * _SPAN + days`` with ``cum`` running from ``r`` to at most ``r + 1``
    (what is left is the chance of staying beyond the longest stay followed).
    """

    key: np.ndarray
    cum: np.ndarray
    cause: np.ndarray
    won_cum: np.ndarray  # cumulative incidence of won within the replicate's block
    start: np.ndarray  # per replicate, the first index of its block (and the end, last entry)
    limit: np.ndarray  # per replicate, the longest stay the estimate still follows
    exits: int  # deals that left the state in the history

    def _before(self, rep: np.ndarray, days: np.ndarray) -> np.ndarray:
        """Index of the last jump at or before ``days`` in each replicate's block (-1 if none)."""
        i = np.searchsorted(self.key, rep * _SPAN + days, side="right") - 1
        return np.where(i >= self.start[rep], i, -1)

    def won_by(self, rep: np.ndarray, days: np.ndarray) -> np.ndarray:
        """F_won(days): the chance of leaving won within ``days`` of entering."""
        i = self._before(rep, days)
        return np.where(i >= 0, self.won_cum[np.maximum(i, 0)], 0.0)

    def left_by(self, rep: np.ndarray, sojourn: np.ndarray) -> np.ndarray:
        """The chance of having left the state within ``sojourn`` days (at most the limit followed)."""
        a = np.minimum(sojourn, self.limit[rep])
        i = self._before(rep, a)
        return np.where(i >= 0, self.cum[np.maximum(i, 0)] - rep, 0.0)

    def sample(
        self, rep: np.ndarray, sojourn: np.ndarray, rng: np.random.Generator, done: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Days until each deal (in the state for ``sojourn`` days) leaves it, and how; ``inf`` and 0
        when it stays beyond the longest stay followed. A deal in the state longer than the history
        follows is judged at that limit (the count of such deals is returned). ``done``:
        :meth:`left_by` of the same deals, when the caller has it already."""
        beyond = sojourn > self.limit[rep]
        a = np.minimum(sojourn, self.limit[rep])
        if done is None:
            done = self.left_by(rep, sojourn)
        u = rep + done + rng.random(len(rep)) * (1.0 - done)
        j = np.searchsorted(self.cum, u, side="right")
        inside = j < self.start[rep + 1]
        jj = np.minimum(j, len(self.key) - 1)
        days = np.where(inside, self.key[jj] - rep * _SPAN - a, np.inf)
        return days, np.where(inside, self.cause[jj], 0), int(beyond.sum())


def _fit_exits(days: np.ndarray, code: np.ndarray, weights: np.ndarray) -> _Exits | None:
    """:class:`_Exits` from stays (days) and outcome codes (0: still there), one replicate per row
    of ``weights`` (Bayesian-bootstrap weights of the stays); None when nobody has left."""
    from statsmodels.duration.survfunc import CumIncidenceRight

    if not (code > 0).any():
        return None
    days = np.maximum(days, 1e-6)
    keys, cums, causes, wons, starts, limits = [], [], [], [], [], []
    n = 0
    for r, w in enumerate(weights):
        with np.errstate(divide="ignore", invalid="ignore"):
            fit = CumIncidenceRight(days, code.astype(int), freq_weights=w)
        cinc = np.nan_to_num(np.vstack(fit.cinc))  # (outcomes, times)
        mass = np.diff(cinc, axis=1, prepend=0.0).clip(min=0.0)
        k, t = mass.shape
        flat = mass.T.ravel()
        keep = flat > 0
        times = np.repeat(np.asarray(fit.times, float), k)[keep]
        cause = np.tile(np.arange(1, k + 1), t)[keep]
        cum = np.cumsum(flat[keep])
        alive = 1.0 - cum
        followed = times[alive >= _SURVIVAL_FLOOR]
        starts.append(n)
        n += len(times)
        keys.append(r * _SPAN + times)
        cums.append(r + cum)
        causes.append(cause)
        wons.append(np.cumsum(np.where(cause == _WON, flat[keep], 0.0)))
        limits.append(float(followed.max()) if len(followed) else 0.0)
    return _Exits(
        np.concatenate(keys),
        np.concatenate(cums),
        np.concatenate(causes),
        np.concatenate(wons),
        np.array([*starts, n]),
        np.array(limits),
        int((code > 0).sum()),
    )


def _durations(opps: pd.DataFrame, entry: pd.Series, cut: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """Days from ``entry`` to close (or to ``cut`` while open) and the outcome code (0 open)."""
    end = opps["closed_at"].where(opps["closed_at"].notna(), cut)
    duration = ((end - entry).dt.total_seconds() / 86400).to_numpy(dtype=float)
    stage = opps["stage"].astype(str).str.lower().to_numpy()
    status = np.where(opps["closed_at"].isna(), 0, np.where(stage == "won", _WON, _LOST))
    return duration, status


def _current_stages(opps: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """The open-stage changes of the deals in ``opps`` (``opportunity_id, changed_at, stage`` and
    ``amount`` when the history has it; stages stripped and lower-case), sorted by deal and time.

    Only those deals: another deal's rows (a renewal, a sales-sourced deal) would enter a stage's
    estimate with no outcome, as if still open, and bias its chance of winning down.
    """
    cols = [c for c in ("opportunity_id", "changed_at", "stage", "amount") if c in history]
    mine = pd.Series(_ids(history["opportunity_id"])).isin(_ids(opps["opportunity_id"])).to_numpy()
    h = history.loc[mine, cols].dropna(subset=["changed_at", "stage"])
    stage = pd.Series(_normalised(h["stage"]), index=h.index)
    h = h.assign(opportunity_id=_ids(h["opportunity_id"]), stage=stage)
    return h[~stage.isin(_CLOSED_STAGES)].sort_values(["opportunity_id", "changed_at"], kind="stable")


def _ids(column: pd.Series) -> np.ndarray:
    """Deal ids as a numpy array to match on: integer codes (:func:`kpi_helpers.asof.load_frames`)
    as they are, text as objects (hashing them is several times faster than Arrow strings)."""
    if pd.api.types.is_integer_dtype(column.dtype):
        return column.to_numpy()
    return column.to_numpy(dtype=object)


def _normalised(stage: pd.Series) -> np.ndarray:
    """Stage names stripped and lower-case, each distinct name cleaned once (a history repeats a few
    names hundreds of thousands of times)."""
    codes, names = pd.factorize(stage.to_numpy(dtype=object))
    clean = np.array([str(n).strip().lower() for n in names], dtype=object)
    return clean[codes]


#: stage names that close a deal in a stage history (the contract's, and CRMs' usual spellings)
_CLOSED_STAGES = ("won", "lost", "closed won", "closed lost")


def _stage_visits(opps: pd.DataFrame, h: pd.DataFrame, cut: pd.Timestamp) -> pd.DataFrame:
    """One row per stay of a deal in an open stage, from :func:`_current_stages` rows ``h``:
    ``opportunity_id, stage, entered, days, next`` (``next``: the stage moved on to, ``won``,
    ``lost``, or None while the deal is still there)."""
    h = h[h["opportunity_id"].ne(h["opportunity_id"].shift()) | h["stage"].ne(h["stage"].shift())]
    same = h["opportunity_id"].eq(h["opportunity_id"].shift(-1))
    info = opps.set_index(_ids(opps["opportunity_id"]))
    closed = h["opportunity_id"].map(info["closed_at"])
    final = h["opportunity_id"].map(pd.Series(info["stage"].to_numpy(dtype=object), index=info.index).str.lower())
    left = h["changed_at"].shift(-1).where(same, closed.fillna(cut))
    nxt = h["stage"].shift(-1).where(same, final.where(closed.notna()))
    return pd.DataFrame(
        {
            "opportunity_id": h["opportunity_id"].to_numpy(),
            "stage": h["stage"].to_numpy(),
            "entered": h["changed_at"].to_numpy(),
            "days": ((left - h["changed_at"]).dt.total_seconds() / 86400).to_numpy(dtype=float),
            "next": nxt.to_numpy(dtype=object),
        }
    )


@dataclass(frozen=True)
class _Pipeline:
    """The open deals and how they are judged: state ``i`` is ``states[i]`` (an open stage, or
    ``"age"``: by days since created), with its exits ``models[i]`` (None: nobody left it)."""

    states: tuple[str, ...]
    models: tuple[_Exits | None, ...]
    state: np.ndarray  # each open deal's state
    sojourn: np.ndarray  # days it has been in it
    amount: np.ndarray  # amount known on the as-of day
    ratio: tuple[np.ndarray, ...]  # per state, log(final / known amount) of won deals (empty: none)
    by: str  # "stage" | "age"
    note: str

    @property
    def age_model(self) -> _Exits:
        model = self.models[-1]
        assert model is not None
        return model


def _pipeline(
    opps: pd.DataFrame, cut: pd.Timestamp, history: pd.DataFrame | None, rng: np.random.Generator
) -> _Pipeline | None:
    """Fit the pipeline's states on the deals known at ``cut``; None when no deal has closed.

    Without ``history`` every deal is judged by age: won and lost by days since created. With it,
    each open deal is judged by its current stage and the days it has spent there, and the stages
    after it (a semi-Markov chain of stays, each stage's outcomes competing); a stage with fewer than
    :data:`_MIN_STAGE_DEALS` exits judges its open deals by age instead.
    """
    age_days, age_code = _durations(opps, opps["created_at"], cut)
    is_open = age_code == 0
    # A random share of a very large history estimates the exits as well and much faster.
    fit = np.ones(len(opps), bool) if len(opps) <= _FIT_DEALS else rng.permutation(len(opps)) < _FIT_DEALS
    weights = rng.exponential(1.0, size=(_REPLICATES, int(fit.sum())))
    age_model = _fit_exits(age_days[fit], age_code[fit], weights)
    if age_model is None:
        return None
    n_open = int(is_open.sum())
    amount = opps["amount"].to_numpy(dtype=float)[is_open]
    sampled = "" if fit.all() else f", exits estimated on a random {int(fit.sum()):,} of {len(opps):,} deals"
    if history is None or not len(history):
        note = f"open deals judged by age (no stage history), from {len(opps)} deals{sampled}"
        state = np.zeros(n_open, int)
        return _Pipeline(("age",), (age_model,), state, age_days[is_open], amount, (np.zeros(0),), "age", note)
    known = opps[fit | is_open]
    rows = _current_stages(known, history)
    visits = _stage_visits(known, rows, cut)
    stages = tuple(sorted(visits["stage"].unique()))
    index = {s: i for i, s in enumerate(stages)}
    code = (
        visits["next"]
        .map({"won": _WON, "lost": _LOST, **{s: _MOVED + i for s, i in index.items()}})
        .fillna(0)
        .to_numpy(dtype=int)
    )
    # each stay of a deal in the fitted share, with that deal's bootstrap weights
    w_idx = pd.Index(_ids(opps["opportunity_id"])[fit]).get_indexer(visits["opportunity_id"])
    in_fit = w_idx >= 0
    deal_w = weights[:, w_idx[in_fit]]
    fit_stage, fit_days, fit_code = visits["stage"].to_numpy()[in_fit], visits["days"].to_numpy()[in_fit], code[in_fit]
    models: list[_Exits | None] = []
    for s in stages:
        here = fit_stage == s
        models.append(_fit_exits(fit_days[here], fit_code[here], deal_w[:, here]))
    # each open deal's current stay: its last visit, if the deal has not closed
    last = visits.groupby("opportunity_id", sort=False).tail(1).set_index("opportunity_id")
    stay = last.reindex(_ids(opps.loc[is_open, "opportunity_id"]))
    st = stay["stage"].map(index)
    sparse = {i for i, m in enumerate(models) if m is None or m.exits < _MIN_STAGE_DEALS}
    staged = (st.notna() & stay["next"].isna() & ~st.isin(sparse)).to_numpy()
    age_state = len(stages)
    state = np.where(staged, st.fillna(age_state).to_numpy(dtype=float), age_state).astype(int)
    sojourn = np.where(staged, stay["days"].to_numpy(dtype=float), age_days[is_open])
    ratio = _amount_drift(opps[fit], rows, stages)
    note = f"{int(staged.sum())} of {n_open} open deals judged by stage and time in it, the rest by age{sampled}"
    return _Pipeline((*stages, "age"), (*models, age_model), state, sojourn, amount, ratio, "stage", note)


def _amount_drift(opps: pd.DataFrame, h: pd.DataFrame, stages: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """Per stage (and, last, for deals judged by age), log(final amount / amount known in it) of the
    deals won, from :func:`_current_stages` rows ``h``: an early estimate is revised before the deal
    closes. Fewer than 20 in a stage: every stage's pooled."""
    if "amount" not in h:
        return tuple(np.zeros(0) for _ in range(len(stages) + 1))
    won = opps[opps["stage"].astype(str).str.lower().eq("won")]
    final_of = pd.Series(won["amount"].to_numpy(dtype=float), index=_ids(won["opportunity_id"]))
    rows = h[h["opportunity_id"].isin(final_of.index) & h["amount"].notna()]
    last = rows.groupby(["opportunity_id", "stage"], sort=False)["amount"].last()
    final = final_of.reindex(last.index.get_level_values(0)).to_numpy(dtype=float)
    known = last.to_numpy(dtype=float)
    ok = (known > 0) & (final > 0)
    log_ratio = pd.Series(np.log(final[ok] / known[ok]), index=last.index.get_level_values(1)[ok])
    pooled = log_ratio.to_numpy()
    out = []
    for s in stages:
        mine = log_ratio[log_ratio.index == s].to_numpy()
        out.append(mine if len(mine) >= 20 else pooled)
    return (*out, pooled)


def _simulate_wins(
    pipe: _Pipeline, horizon: float, draws: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, int]:
    """Per draw and open deal: won before ``horizon`` days have passed, and its amount then.

    Each deal leaves its current state after a stay drawn from the state's exits given the days
    already spent there; moving on starts a fresh stay in the next stage, until it is won, lost,
    or the days left run out. Draw ``d`` uses bootstrap replicate ``d mod R`` throughout, so the
    spread includes the uncertainty of the estimated exits.
    """
    n = len(pipe.state)
    if n == 0:
        return np.zeros((draws, 0), bool), np.zeros((draws, 0)), 0
    state = np.tile(pipe.state, draws)
    sojourn = np.tile(pipe.sojourn, draws)
    left = np.full(draws * n, float(horizon))
    rep = np.repeat(np.arange(draws) % _REPLICATES, n)
    won = np.zeros(draws * n, bool)
    active = np.ones(draws * n, bool)
    fresh = np.zeros(draws * n, bool)  # in a stay begun during the simulation (0 days in it so far)
    # The chance of having left by now depends on the replicate and the deal, not the draw: found
    # once per pair for the deals' current stays, and once per replicate for fresh stays.
    reps = np.arange(_REPLICATES)
    start_done = np.zeros((_REPLICATES, n))
    fresh_done = np.zeros((len(pipe.models), _REPLICATES))
    for s, model in enumerate(pipe.models):
        if model is None:
            continue
        fresh_done[s] = model.left_by(reps, np.zeros(_REPLICATES))
        cols = np.flatnonzero(pipe.state == s)
        if len(cols):
            grid = model.left_by(np.repeat(reps, len(cols)), np.tile(pipe.sojourn[cols], _REPLICATES))
            start_done[:, cols] = grid.reshape(_REPLICATES, len(cols))
    beyond = 0
    for step in range(2 * len(pipe.states) + 2):
        for s, model in enumerate(pipe.models):
            idx = np.flatnonzero(active & (state == s))
            if not len(idx):
                continue
            if model is None:
                active[idx] = False
                continue
            r = rep[idx]
            done = np.where(fresh[idx], fresh_done[s, r], start_done[r, idx % n])
            days, cause, late = model.sample(r, sojourn[idx], rng, done)
            beyond += late if step == 0 else 0
            in_time = days <= left[idx]
            won[idx[in_time & (cause == _WON)]] = True
            moved = in_time & (cause >= _MOVED)
            active[idx[~moved]] = False
            nxt = idx[moved]
            state[nxt], sojourn[nxt], fresh[nxt] = cause[moved] - _MOVED, 0.0, True
            left[nxt] -= days[moved]
        if not active.any():
            break
    won2 = won.reshape(draws, n)
    amount = np.broadcast_to(pipe.amount, (draws, n)).astype(float)
    for s, pool in enumerate(pipe.ratio):
        cols = np.flatnonzero(pipe.state == s)
        if len(pool) and len(cols):
            amount[:, cols] *= np.exp(pool[rng.integers(0, len(pool), size=(draws, len(cols)))])
    return won2, amount, beyond // draws


def close_probabilities(
    opportunities: pd.DataFrame,
    as_of: Any,
    horizon_days: float,
    *,
    history: pd.DataFrame | None = None,
    draws: int = DRAWS,
    seed: int = 0,
) -> pd.DataFrame:
    r"""Each open deal's probability of being won within ``horizon_days`` after ``as_of``.

    Judged by age (no ``history``):

    .. math:: p_i = \frac{F_{won}(a_i + h) - F_{won}(a_i)}{1 - F_{won}(a_i) - F_{lost}(a_i)}

    with :math:`a_i` the deal's age in days, :math:`h` the horizon and :math:`F` the cumulative
    incidence functions of won and lost (competing outcomes, open deals censored at ``as_of``; the
    Aalen-Johansen estimator of :class:`statsmodels.duration.survfunc.CumIncidenceRight`) of every
    deal created by ``as_of``. With ``history``, the same for the deal's stay in its current stage,
    then through the stages after it (each stage's own incidence of won, lost and moving on), the
    days left shrinking with each stay: the probability is the share of ``draws`` simulated paths
    that end won in time.

    Parameters
    ----------
    opportunities : DataFrame
        As-of deals (``created_at, closed_at, stage, amount``); ``stage`` ``open`` for open deals.
    as_of : date
        The day the deals are seen from.
    horizon_days : float
        Days left (e.g. to the quarter's end).
    history : DataFrame, optional
        ``opportunity_history`` rows (``opportunity_id, changed_at, stage``) known by ``as_of``.

    Returns
    -------
    DataFrame
        One row per open deal: ``opportunity_id``, ``amount``, ``age_days``, ``p_won``, ``judged_by``
        (``stage:<name>`` or ``age``); ``attrs["note"]`` says how the probabilities were judged.

    Examples
    --------
    >>> opps = pd.DataFrame({"opportunity_id": ["A", "B", "C", "D"],
    ...     "created_at": pd.to_datetime(["2026-01-01"] * 4),
    ...     "closed_at": pd.to_datetime(["2026-01-11", "2026-01-21", "2026-01-11", None]),
    ...     "stage": ["won", "won", "lost", "open"], "amount": [1.0, 1.0, 1.0, 5.0]})
    >>> close_probabilities(opps, "2026-01-15", 30)[["opportunity_id", "p_won"]]
      opportunity_id  p_won
    0              D    1.0
    """
    cut = cutoff(as_of)
    rng = np.random.default_rng(seed)
    is_open = opportunities["closed_at"].isna().to_numpy()
    opened = opportunities[is_open]
    ids = opened["opportunity_id"].to_numpy() if "opportunity_id" in opened else np.arange(len(opened))
    age = ((cut - opened["created_at"]).dt.total_seconds() / 86400).to_numpy(dtype=float)
    pipe = _pipeline(opportunities, cut, history, rng)
    if pipe is None:
        out = pd.DataFrame({"opportunity_id": ids, "amount": opened["amount"].to_numpy(float), "age_days": age})
        out = out.assign(p_won=np.nan, judged_by="age")
        out.attrs["note"] = "no closed deal in the history"
        return out
    won, _, beyond = _simulate_wins(pipe, horizon_days, draws, rng)
    out = pd.DataFrame(
        {
            "opportunity_id": ids,
            "amount": pipe.amount,
            "age_days": age,
            "p_won": won.mean(axis=0),
            "judged_by": [s if s == "age" else f"stage:{s}" for s in np.array(pipe.states)[pipe.state]],
        }
    )
    out.attrs["note"] = pipe.note + _beyond_note(beyond)
    return out


def _beyond_note(beyond: int) -> str:
    if not beyond:
        return ""
    deals = f"{beyond} open deal{'s' if beyond != 1 else ''}"
    return f"; {deals} in a state longer than the history follows, judged at its limit"


def _new_deal_win_share(model: _Exits, horizon: float) -> np.ndarray:
    """Per replicate, the chance a deal created uniformly in the next ``horizon`` days is won by
    their end: the mean of F_won(horizon - u) over u."""
    if horizon <= 0:
        return np.zeros(_REPLICATES)
    grid = np.linspace(0, horizon, 64)
    rep = np.repeat(np.arange(_REPLICATES), len(grid))
    return model.won_by(rep, np.tile(horizon - grid, _REPLICATES)).reshape(_REPLICATES, -1).mean(axis=1)


def forecast_bookings(
    frames: Mapping[str, pd.DataFrame],
    quarter: Quarter,
    as_of: Any,
    *,
    targets: Mapping[str, float | None] | None = None,
    metrics: Iterable[str] = ("bookings", "won_deals", "all_bookings"),
    draws: int = DRAWS,
    seed: int = 0,
) -> dict[str, Forecast]:
    """Forecast ``bookings`` and ``won_deals`` (deals from leads) and ``all_bookings`` for ``quarter``
    (those of them named in ``metrics``).

    Quarter total = won so far + open deals won by the quarter's end (simulated paths of
    :func:`close_probabilities`, amounts revised as won deals' were from the stage they are in) +
    deals not created yet that will be created and won in time (the opportunity count forecast's
    remainder x the chance a new deal is won within the days left, amounts resampled from won deals
    of the last year). The exits are re-estimated on Bayesian-bootstrap weights of the deals, one
    replicate per draw, so the spread includes their uncertainty. ``all_bookings`` models each
    ``opportunities.type`` (new business, renewal, expansion) on its own when the column is there.
    ``frames`` must be as of ``as_of``.

    Returns
    -------
    dict of str to Forecast
        Keys: those of ``bookings``, ``won_deals``, ``all_bookings`` asked for; undefined with a reason
        when there are no deals or no closed deal to learn from.
    """
    day = _day(as_of)
    targets = targets or {}
    opps = frames.get("opportunities")
    names = tuple(m for m in ("bookings", "won_deals", "all_bookings") if m in set(metrics))
    if opps is None or opps.empty:
        why = "needs opportunities: add opportunities.csv (the CRM's deals export)"
        return {m: Forecast.undefined(m, quarter, day, why, target=targets.get(m)) for m in names}
    cut = cutoff(day)
    horizon = max((pd.Timestamp(quarter.end) - cut) / pd.Timedelta(days=1), 0.0)
    start = _crm_start(frames) or quarter.start
    history = frames.get("opportunity_history")
    out: dict[str, Forecast] = {}
    if {"bookings", "won_deals"} & set(names):
        lead = opps[lead_deals(opps)]
        sim = _simulate_scope(lead, quarter, cut, horizon, start, history, draws, _rng(seed, "bookings"))
        if isinstance(sim, str):
            for m in ("bookings", "won_deals"):
                out[m] = Forecast.undefined(m, quarter, day, sim, target=targets.get(m))
        else:
            amount, count, so_far, n_so_far, method = sim
            method = "deals from leads: " + method
            out["bookings"] = Forecast.from_draws(
                "bookings", quarter, day, so_far, amount, target=targets.get("bookings"), method=method
            )
            out["won_deals"] = Forecast.from_draws(
                "won_deals", quarter, day, n_so_far, count, target=targets.get("won_deals"), method=method
            )
    if "all_bookings" not in names:
        return {m: out[m] for m in names}
    rng = _rng(seed, "all_bookings")
    kinds = opps["type"].fillna("new").astype(str).str.lower() if "type" in opps else pd.Series("new", opps.index)
    parts = [(k, opps[kinds.eq(k)]) for k in sorted(kinds.unique())]
    sims = [(k, _simulate_scope(g, quarter, cut, horizon, start, history, draws, rng)) for k, g in parts]
    failed = [f"{k}: {s}" for k, s in sims if isinstance(s, str)]
    if failed:
        out["all_bookings"] = Forecast.undefined(
            "all_bookings", quarter, day, "; ".join(failed), target=targets.get("all_bookings")
        )
    else:
        done = [s for _, s in sims if not isinstance(s, str)]
        # a very large group may run fewer draws (_MAX_CELLS); draws are independent, so the first ones pair up
        n = min(len(s[0]) for s in done)
        total = sum(s[0][:n] for s in done)
        so_far = sum(s[2] for _, s in sims if not isinstance(s, str))
        words = "; ".join(f"{k}: {s[4]}" for k, s in sims if not isinstance(s, str))
        out["all_bookings"] = Forecast.from_draws(
            "all_bookings", quarter, day, so_far, np.asarray(total), target=targets.get("all_bookings"),
            method="every deal, for information, each type on its own: " + words,
        )  # fmt: skip
    return {m: out[m] for m in names}


def _simulate_scope(
    sub: pd.DataFrame,
    quarter: Quarter,
    cut: pd.Timestamp,
    horizon: float,
    start: dt.date,
    history: pd.DataFrame | None,
    draws: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, float, int, str] | str:
    """Simulated quarter totals of one group of deals: amounts, counts, amount and count won so far,
    and how; or why it cannot be forecast."""
    if sub.empty:
        return "no deals"
    won_now = sub["stage"].astype(str).str.lower().eq("won") & sub["closed_at"].between(
        pd.Timestamp(quarter.start), cut, inclusive="left"
    )
    amount_now, count_now = float(sub.loc[won_now, "amount"].sum()), int(won_now.sum())
    pipe = _pipeline(sub, cut, history, rng)
    if pipe is None:
        return "no deal has closed yet: no history to judge open deals by"
    asked, draws = draws, min(draws, max(_MIN_DRAWS, _MAX_CELLS // max(len(pipe.state), 1)))
    won, amounts, beyond = _simulate_wins(pipe, horizon, draws, rng)
    open_amount = (won * amounts).sum(axis=1)
    open_count = won.sum(axis=1)
    counts = _count_model(sub["created_at"], quarter, cut.date() - dt.timedelta(days=1), start, draws, rng)
    share = _new_deal_win_share(pipe.age_model, horizon)
    new_count = rng.binomial(counts.remainder.astype(np.int64), share[np.arange(draws) % _REPLICATES])
    pool = _won_amounts(sub, cut)
    new_amount = _sum_resampled(pool, new_count, rng)
    drift = " (amounts revised as won deals' were)" if any(len(r) for r in pipe.ratio) else ""
    method = (
        f"won so far + {len(pipe.state)} open deals ({pipe.note}{_beyond_note(beyond)}{drift}) + deals not "
        f"created yet (count forecast x {share.mean():.0%} won within {horizon:.0f} days left, amounts resampled "
        f"from {len(pool)} won deals); exits re-estimated on {_REPLICATES} bootstrap replicates"
        + (f"; {draws:,} draws for {len(pipe.state):,} open deals" if draws < asked else "")
    )
    total = amount_now + open_amount + new_amount
    return total, count_now + open_count + new_count, amount_now, count_now, method


def _won_amounts(opps: pd.DataFrame, cut: pd.Timestamp) -> np.ndarray:
    """Amounts of deals won in the year before ``cut`` (all won deals when fewer than 20)."""
    won = opps[opps["stage"].astype(str).str.lower().eq("won") & opps["closed_at"].notna()]
    recent = won[won["closed_at"] >= cut - pd.Timedelta(days=365)]
    chosen = recent if len(recent) >= 20 else won
    return chosen["amount"].to_numpy(dtype=float)


def _sum_resampled(pool: np.ndarray, k: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per draw, the sum of ``k[d]`` amounts drawn with replacement from ``pool``."""
    total = int(k.sum())
    if total == 0 or len(pool) == 0:
        return np.zeros(len(k))
    picks = pool[rng.integers(0, len(pool), size=total)]
    return np.bincount(np.repeat(np.arange(len(k)), k), weights=picks, minlength=len(k))


# --------------------------------------------------------------------------------------------------
# Recognised revenue


def _month_index(stamps: pd.Series) -> np.ndarray:
    return (stamps.dt.year * 12 + stamps.dt.month - 1).to_numpy(dtype=np.int64)


def forecast_revenue(
    frames: Mapping[str, pd.DataFrame],
    quarter: Quarter,
    as_of: Any,
    *,
    target: float | None = None,
    draws: int = DRAWS,
    seed: int = 0,
    window_months: int = 48,
) -> Forecast:
    r"""Forecast the quarter's recognised revenue: its closed months plus simulated open ones.

    .. math:: \log r_t = \alpha + \beta t + \gamma_{m(t)} [+ \delta \log(1 + b_{t-3})] + e_t,
              \qquad e_t = \phi e_{t-1} + \eta_t

    fitted by least squares on the last ``window_months`` closed months (month-of-year effects
    :math:`\gamma` with 24 months or more; :math:`b_{t-3}` the bookings of three months before,
    kept when significant); the open months are simulated with resampled innovations
    :math:`\eta` (scaled for the parameters fitted) from the last residual on.

    Returns
    -------
    Forecast
        Undefined (with the reason) without a ``revenue`` table or with fewer than 6 closed months.
    """
    day = _day(as_of)
    rev = frames.get("revenue")
    if rev is None:
        return Forecast.undefined("revenue", quarter, day, "needs revenue: add revenue.csv", target=target)
    rev = rev.dropna(subset=["month"]).sort_values("month")
    month = _month_index(rev["month"])
    first_q = quarter.start.year * 12 + quarter.start.month - 1
    q_months = np.arange(first_q, first_q + 3)
    closed = np.isin(q_months, month)
    so_far = float(rev.loc[np.isin(month, q_months), "revenue"].sum())
    if closed.all():
        return Forecast.from_draws(
            "revenue", quarter, day, so_far, np.full(draws, so_far), target=target, method="every month has closed"
        )
    hist = rev[month < first_q + 3]
    hist_m = _month_index(hist["month"])
    keep = hist_m > hist_m.max() - window_months if len(hist_m) else np.zeros(0, bool)
    hist, hist_m = hist[keep], hist_m[keep]
    y_all = hist["revenue"].to_numpy(dtype=float)
    if len(hist) < 6 or (y_all <= 0).any():
        why = (
            f"needs at least 6 closed months of revenue before {quarter.label}'s open months; found {len(hist)}"
            if len(hist) < 6
            else "a month with zero revenue: log revenue cannot be modelled"
        )
        return Forecast.undefined("revenue", quarter, day, why, target=target)
    y = np.log(y_all)
    last = int(hist_m.max())
    future = np.arange(last + 1, first_q + 3)
    future_open = future[~np.isin(future, month)]
    seasonal = len(hist) >= 24
    X, Xf = _design(hist_m, future_open, seasonal)
    lead, lead_f, lead_note = _booking_signal(frames.get("opportunities"), hist_m, future_open, y, X)
    if lead is not None and lead_f is not None:
        X, Xf = np.column_stack([X, lead]), np.column_stack([Xf, lead_f])
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    phi = float(np.clip(np.corrcoef(resid[:-1], resid[1:])[0, 1], 0.0, 0.95)) if len(resid) > 3 else 0.0
    phi = 0.0 if math.isnan(phi) else phi
    eta = resid[1:] - phi * resid[:-1]
    eta = (eta - eta.mean()) * math.sqrt(len(y) / max(len(y) - X.shape[1], 1))
    rng = _rng(seed, "revenue")
    steps = len(future_open)
    shocks = eta[rng.integers(0, len(eta), size=(draws, future_open.max() - last))]
    e = np.empty_like(shocks)
    prev = np.full(draws, resid[-1])
    for k in range(shocks.shape[1]):
        prev = phi * prev + shocks[:, k]
        e[:, k] = prev
    # only the quarter's open months count (earlier gaps were simulated for the residual's path)
    idx = future_open - last - 1
    # The fitted trend and seasonality are uncertain too: draw them from their sampling distribution.
    sigma2 = float(resid @ resid) / max(len(y) - X.shape[1], 1)
    cov = sigma2 * np.linalg.pinv(X.T @ X)
    coef = rng.multivariate_normal(beta, cov, size=draws, method="eigh")
    sim = np.exp(coef @ Xf.T + e[:, idx])
    words = "trend + month of year" if seasonal else "trend only (fewer than 24 months)"
    method = (
        f"{int(closed.sum())} closed month{'s' if closed.sum() != 1 else ''} + {steps} forecast from log revenue "
        f"({words}, {len(y)} months, AR(1) residuals phi={phi:.2f} resampled, parameter uncertainty drawn){lead_note}"
    )
    return Forecast.from_draws("revenue", quarter, day, so_far, so_far + sim.sum(axis=1), target=target, method=method)


def _design(months: np.ndarray, future: np.ndarray, seasonal: bool) -> tuple[np.ndarray, np.ndarray]:
    origin = months.min()

    def build(m: np.ndarray) -> np.ndarray:
        cols = [np.ones(len(m)), (m - origin) / 12.0]
        if seasonal:
            cols += [(m % 12 == k).astype(float) for k in range(1, 12)]
        return np.column_stack(cols)

    return build(months), build(future)


def _booking_signal(
    opps: pd.DataFrame | None, months: np.ndarray, future: np.ndarray, y: np.ndarray, X: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """log(1 + bookings three months before) as a regressor, when it is significant and positive."""
    if opps is None or opps.empty:
        return None, None, ""
    won = opps[opps["stage"].astype(str).str.lower().eq("won") & opps["closed_at"].notna()]
    if won.empty:
        return None, None, ""
    booked = pd.Series(won["amount"].to_numpy(float), index=_month_index(won["closed_at"])).groupby(level=0).sum()
    start = _month_index(opps["created_at"]).min()
    lag = months - 3
    usable = lag >= start
    if usable.sum() < 24:
        return None, None, ""
    # the module, not statsmodels.api: that imports every model (about a second, on every report)
    from statsmodels.regression.linear_model import OLS

    x = np.log1p(booked.reindex(lag, fill_value=0.0).to_numpy(float))
    fit = OLS(y[usable], np.column_stack([X[usable], x[usable]])).fit()
    if not (fit.params[-1] > 0 and fit.pvalues[-1] < 0.05) or not usable.all():
        return None, None, "; bookings tested as a leading signal, not significant" if usable.all() else ""
    xf = np.log1p(booked.reindex(future - 3, fill_value=0.0).to_numpy(float))
    return x, xf, f"; bookings 3 months before as a leading signal (p={fit.pvalues[-1]:.3f})"


# --------------------------------------------------------------------------------------------------
# All together


def forecast_quarter(
    frames: Mapping[str, pd.DataFrame],
    quarter: Quarter,
    as_of: Any,
    *,
    targets: Mapping[str, float | None] | None = None,
    metrics: Iterable[str] = METRICS,
    draws: int = DRAWS,
    seed: int = 0,
    reconstruct: bool = True,
) -> dict[str, Forecast]:
    """Every forecast of :data:`METRICS` (or those named in ``metrics``) for ``quarter`` as of a day.

    ``frames`` are cut to ``as_of`` first (:func:`kpi_helpers.asof.as_of`) unless ``reconstruct`` is
    false (they already are). ``targets`` maps metric names to the quarter's targets (see
    :func:`quarter_targets`); a metric without a target has ``probability_to_hit`` None.
    """
    wanted = [m for m in METRICS if m in set(metrics)]
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise KpiInputError(f"unknown forecast metric(s) {sorted(unknown)}; expected some of {', '.join(METRICS)}")
    day = _day(as_of)
    if not quarter.start <= day:
        raise KpiInputError(f"as-of day {day} is before {quarter.label} starts ({quarter.start}); nothing to go on")
    known = _as_of(frames, day) if reconstruct else dict(frames)
    targets = targets or {}
    out: dict[str, Forecast] = {}
    if "revenue" in wanted:
        out["revenue"] = forecast_revenue(known, quarter, day, target=targets.get("revenue"), draws=draws, seed=seed)
    deal_metrics = [m for m in ("bookings", "won_deals", "all_bookings") if m in wanted]
    if deal_metrics:
        out.update(
            forecast_bookings(known, quarter, day, targets=targets, metrics=deal_metrics, draws=draws, seed=seed)
        )
    start = _crm_start(known)
    for m in COUNT_METRICS:
        if m not in wanted:
            continue
        dates = _event_dates(known, m)
        if dates is None or start is None:
            table = "leads" if m != "opportunities" else "opportunities"
            out[m] = Forecast.undefined(m, quarter, day, f"needs {table}: add {table}.csv", target=targets.get(m))
            continue
        out[m] = forecast_count(
            dates, quarter, day, data_start=start, target=targets.get(m), metric=m, draws=draws, seed=seed
        )
    return {m: out[m] for m in wanted}


def quarter_targets(source: Any, quarter: Quarter | str) -> dict[str, float | None]:
    """The quarter's targets as the goals set them before its fiscal year began (:func:`targets_of`)."""
    from .metrics import QuarterKpis

    return targets_of(QuarterKpis(source, quarter))


def targets_of(kq: Any) -> dict[str, float | None]:
    """The targets of a :class:`~kpi_helpers.metrics.QuarterKpis`' quarter, by forecast metric.

    ``revenue``: the quarter's share of the revenue goal; ``bookings`` (lead revenue), ``won_deals``,
    ``opportunities``, ``sqls``, ``mqls``, ``leads``: the reverse funnel's requirements
    (:attr:`kpi_helpers.metrics.QuarterKpis.funnel_plan`). Both use only fiscal years before the
    quarter's, so they are what was known when the year's goals were set. None where undefined.
    """
    plan = kq.funnel_plan["required"]
    out: dict[str, float | None] = {
        "revenue": finite_number(kq.revenue_target),
        "bookings": finite_number(plan["lead_revenue"]),
    }
    for m in ("won_deals", "opportunities", "sqls", "mqls", "leads"):
        out[m] = finite_number(plan[m])
    return out


def year_targets(
    source: Any, quarters: Iterable[Quarter], *, kq: Any = None
) -> dict[str, dict[str, float | None] | str]:
    """:func:`targets_of` for each of ``quarters`` (by label), with one
    :class:`~kpi_helpers.metrics.QuarterKpis` per fiscal year (``kq``, if given, serves its own).

    Within a fiscal year the goal and the previous year's rates are the same for every quarter, and
    every stage of the reverse funnel is the revenue target times or over those rates: a quarter's
    targets are its fiscal year's plan scaled by its share of the revenue goal. A fiscal year
    without goals gives each of its quarters the reason instead of targets.
    """
    from .metrics import QuarterKpis

    by_year: dict[int, Any] = {}
    out: dict[str, dict[str, float | None] | str] = {}
    for q in quarters:
        fy = q.fiscal_year
        if fy not in by_year:
            by_year[fy] = kq if kq is not None and kq.quarter.fiscal_year == fy else QuarterKpis(source, q)
        base = by_year[fy]
        try:
            plan = targets_of(base)
        except (KpiError, ValueError) as exc:
            out[q.label] = str(exc)
            continue
        if base.goal_problem:  # no revenue goal: every target is unknown (None) already
            out[q.label] = plan
            continue
        share = float(base.goal.quarterly[q.q]) / float(base.goal.quarterly[base.quarter.q])
        out[q.label] = {m: None if v is None else finite_number(v * share) for m, v in plan.items()}
    return out


def forecast_source(
    source: Any,
    quarter: str | Quarter = "current",
    *,
    targets: Mapping[str, float | None] | None = None,
    metrics: Iterable[str] = METRICS,
    draws: int = DRAWS,
    seed: int = 0,
) -> dict[str, Forecast]:
    """Forecasts for ``quarter`` (default the one in progress) as of the data's end, against the
    goals' targets (:func:`quarter_targets`, unless ``targets`` gives them)."""
    q = source.quarter(quarter)
    day = source.data_end
    if day is None:
        raise KpiInputError("forecasts need dated data; the source has none")
    day = min(day, q.last_day)
    if targets is None:
        try:
            targets = quarter_targets(source, q)
        except (KpiError, ValueError, KeyError):  # a quarter without goals is still forecast, without probabilities
            targets = {}
    frames = load_frames(source)
    # as of the data's own end, the frames are what was known: no need to cut them again
    latest = max_date(frames)
    cut = latest is None or day < latest
    return forecast_quarter(frames, q, day, targets=targets, metrics=metrics, draws=draws, seed=seed, reconstruct=cut)


#: set to 1 to leave the forecasts out of ``metrics.json`` (and the report's pages)
NO_FORECAST_ENV = "KPI_NO_FORECAST"


def turned_off() -> str:
    """Why forecasts are off (``KPI_NO_FORECAST=1``), or ``""`` when they are on."""
    import os

    if os.environ.get(NO_FORECAST_ENV, "") not in ("", "0"):
        return f"forecasts are turned off ({NO_FORECAST_ENV}=1)"
    return ""


def metrics_block(kq: Any) -> tuple[dict[str, dict[str, Any]] | None, str]:
    """The ``forecast`` block of ``metrics.json`` for a :class:`~kpi_helpers.metrics.QuarterKpis`:
    ``({metric: Forecast.to_dict()}, "")`` for a quarter in progress, else ``(None, why)``.

    Memoised per data, quarter, as-of day and targets (:meth:`DataSource.memo`), so the report's
    process and its kernels compute it once; ``KPI_NO_FORECAST=1`` turns it off.
    """
    q = kq.quarter
    off = turned_off()
    if off:
        return None, off
    if not kq.in_progress:
        return None, f"{q.label} is not in progress: its actuals are final, there is nothing to forecast"
    day = kq.source.data_end
    if day is None:
        return None, "no dated data to forecast from"
    targets = targets_of(kq)
    key = ("forecast", q.start, q.end, min(day, q.last_day), DRAWS, tuple(sorted(targets.items())))

    def compute() -> dict[str, dict[str, Any]]:
        return {m: f.to_dict() for m, f in forecast_source(kq.source, q, targets=targets).items()}

    return kq.source.memo(key, compute), ""


def forecast_rows(m: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The forecasts of a quarter's metrics (``m["forecast"]``) that have a P50 and a target, in
    :data:`METRICS` order, for a chart (:func:`kpi_helpers.charts.plot_forecasts`).

    Each row: ``key`` (the KPI row's metric, or ``<metric> forecast``), ``label``, ``unit``,
    ``so_far``, ``p10``, ``p50``, ``p90``, ``target``, ``probability_to_hit``, ``baseline``,
    ``higher_is_better`` and ``status``. A KPI row of ``m["kpis"]`` on the same metric and target
    lends its status (it judged this P50) and baseline; otherwise the one rule judges the P50
    against the target (:func:`kpi_helpers.status.judge`).
    """
    from .registry import label_of, unit_of
    from .status import FORECAST_KEYS, judge, of_row

    kpi_rows = {str(k.get("metric")): k for k in m.get("kpis") or [] if k.get("metric")}
    block = m.get("forecast") or {}
    out = []
    for name in METRICS:
        f = block.get(name)
        if not isinstance(f, Mapping) or f.get("p50") is None or f.get("target") is None:
            continue
        key = FORECAST_KEYS[name]
        row = kpi_rows.get(name)
        same = row is not None and row.get("target") is not None and math.isclose(row["target"], f["target"])
        status = of_row(dict(row)) if same and row is not None else judge(f["so_far"], f["target"], projected=f["p50"])
        out.append(
            {
                "key": name if same else f"{name} forecast",
                "label": label_of(key),
                "unit": unit_of(key) or "count",
                **{k: f.get(k) for k in ("so_far", "p10", "p50", "p90", "target", "probability_to_hit")},
                "baseline": row.get("baseline") if same and row is not None else None,
                "higher_is_better": True,
                "status": status,
            }
        )
    return out


# --------------------------------------------------------------------------------------------------
# Immature cohorts


def cohort_maturity(
    start: pd.Series,
    end: pd.Series,
    cohort: pd.Series,
    as_of: Any,
    *,
    horizon_days: float = 180.0,
    mature_share: float = 0.95,
) -> pd.DataFrame:
    r"""Conversion of each cohort, adjusted for the time its members have had to convert.

    A lead created last week has had no time to become an SQL; its cohort's rate so far is low only
    because it is recent. With :math:`F(t)` the Kaplan-Meier probability of converting within
    :math:`t` days (pooled over every cohort, members not yet converted censored at ``as_of``), a
    cohort whose members have ages :math:`a_i` has matured

    .. math:: m = \frac{1}{n} \sum_i \frac{F(\min(a_i, H))}{F(H)}

    of its conversions within the horizon :math:`H`; its adjusted rate is the rate so far / m (at
    most 1), and it is ``maturing`` while :math:`m` < ``mature_share``.

    Parameters
    ----------
    start, end : Series of datetime
        When each member entered (e.g. ``created_at``) and converted (e.g. ``sql_at``; NaT if not yet).
    cohort : Series
        Each member's cohort label (e.g. the quarter it was created in).
    as_of : date
        Conversions after this day are ignored.
    horizon_days : float, default 180
        Conversions later than this after entry do not count (the rate is "within H days").

    Returns
    -------
    DataFrame
        Indexed by cohort (sorted): ``members``, ``converted``, ``rate_so_far``, ``matured``,
        ``adjusted_rate``, ``maturing``.

    Examples
    --------
    >>> start = pd.Series(pd.to_datetime(["2026-01-01"] * 4 + ["2026-06-20"] * 2))
    >>> end = pd.Series(pd.to_datetime(["2026-01-11", "2026-02-20", None, None, "2026-06-25", None]))
    >>> out = cohort_maturity(start, end, pd.Series(["Q1"] * 4 + ["Q2"] * 2), "2026-06-30", horizon_days=60)
    >>> out["maturing"].to_dict(), out["converted"].to_dict()
    ({'Q1': False, 'Q2': True}, {'Q1': 2, 'Q2': 1})
    """
    from statsmodels.duration.survfunc import SurvfuncRight

    cut = cutoff(as_of)
    s = pd.to_datetime(start).reset_index(drop=True)
    e = pd.to_datetime(end).reset_index(drop=True)
    e = e.where(e < cut)
    age = ((cut - s) / pd.Timedelta(days=1)).to_numpy(dtype=float)
    took = ((e - s) / pd.Timedelta(days=1)).to_numpy(dtype=float)
    converted = ~np.isnan(took) & (took <= horizon_days)
    follow = np.where(converted, np.maximum(took, 0.0), np.minimum(age, horizon_days))
    km = SurvfuncRight(np.maximum(follow, 1e-6), converted.astype(int))
    times, surv = np.asarray(km.surv_times, float), np.asarray(km.surv_prob, float)

    def cdf(t: np.ndarray) -> np.ndarray:
        i = np.searchsorted(times, t, side="right") - 1
        return np.where(i >= 0, 1 - surv[np.clip(i, 0, None)], 0.0)

    total = float(cdf(np.array([horizon_days]))[0])
    share = cdf(np.minimum(age, horizon_days)) / total if total > 0 else np.ones(len(age))
    frame = pd.DataFrame({"cohort": cohort.to_numpy(), "converted": converted, "share": share})
    g = frame.groupby("cohort", sort=True)
    out = pd.DataFrame(
        {"members": g.size(), "converted": g["converted"].sum().astype(int), "matured": g["share"].mean()}
    )
    out["rate_so_far"] = out["converted"] / out["members"]
    out["adjusted_rate"] = np.minimum(out["rate_so_far"] / out["matured"].where(out["matured"] > 0), 1.0)
    out["maturing"] = out["matured"] < mature_share
    return out[["members", "converted", "rate_so_far", "matured", "adjusted_rate", "maturing"]]
