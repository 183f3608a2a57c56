r"""Immature cohorts: how much of a quarter's funnel has had time to happen.

The funnel by channel (:func:`kpi_helpers.breakdowns.channel_funnel`) follows the leads created in
the quarter to the data's end. A lead created three weeks before that end has had no time to become
an SQL, let alone a won deal: a recent quarter's stage rates are low, and its days between stages
short (only the fast ones have arrived), only because it is recent. :func:`funnel_maturity` says, for
each stage step, how far the quarter's cohort has matured and what its rate is expected to be once
it has, from the time the same step took the leads of the quarters before
(:func:`kpi_helpers.forecast.cohort_maturity`: a Kaplan-Meier estimate with the members that have
not converted yet censored at the data's end):

.. math::

    m = \frac{1}{n} \sum_i \frac{F(\min(a_i, H))}{F(H)}, \qquad
    \hat r_{\text{mature}} = \frac{r_{\text{so far}}}{m}

with :math:`a_i` the days member :math:`i` has had since entering the step's first stage,
:math:`F(t)` the probability of taking the step within :math:`t` days, and :math:`H` the horizon
(:data:`HORIZON_DAYS`: a rate is "within a year"). A step is *maturing* while :math:`m` < 95%:
compare it with earlier quarters only once it has matured, or through its expected rate.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import ibis
import pandas as pd

from . import facts
from .facts import _between as between
from .uncertainty import proportion_interval

if TYPE_CHECKING:
    from .metrics import QuarterKpis

__all__ = [
    "HISTORY_QUARTERS",
    "HORIZON_DAYS",
    "MATURE_SHARE",
    "STEPS",
    "expected_rate_interval",
    "funnel_maturity",
    "lead_stage_times",
    "maturing_labels",
    "maturity_record",
]

#: a step's rate counts the conversions within this many days of entering it
HORIZON_DAYS = 365.0
#: a cohort has matured once this share of its expected conversions has had time to happen
MATURE_SHARE = 0.95
#: quarters before the report's whose leads teach how long each step takes
HISTORY_QUARTERS = 8
#: stage step (the funnel's rate column) -> (when a lead entered it, when it took it), columns of
#: :func:`lead_stage_times`; and the funnel's days column that times it, if any
STEPS: dict[str, tuple[str, str, str | None]] = {
    "lead_to_mql_rate": ("created_at", "mql_at", "days_lead_to_mql"),
    "mql_to_sql_rate": ("mql_at", "sql_at", "days_mql_to_sql"),
    "sql_to_opportunity_rate": ("sql_at", "opportunity_at", "days_sql_to_opportunity"),
    "opportunity_to_won_rate": ("opportunity_at", "won_at", "days_opportunity_to_won"),
    "lead_to_sql_rate": ("created_at", "sql_at", None),
    "lead_to_won_rate": ("created_at", "won_at", None),
}


def lead_stage_times(kq: QuarterKpis, *, history_quarters: int = HISTORY_QUARTERS) -> pd.DataFrame:
    """One row per lead created from ``history_quarters`` quarters before ``kq``'s quarter to its end
    (so far): ``created_at``, ``mql_at``, ``sql_at``, ``opportunity_at`` (its
    first new-business deal's creation) and ``won_at`` (its first won new-business deal's close), as
    :func:`kpi_helpers.facts.cohort_funnel` counts them; NaT where not reached (or not recorded)."""
    src, q = kq.source, kq.quarter
    first = q.shift(-history_quarters)
    end = facts.so_far(src, q)[1]
    leads = src.table("leads")
    leads = leads.filter(between(leads.created_at, first.start, end))
    if kq.has("opportunities"):
        opps = src.table("opportunities").filter(lambda o: o.lead_id.notnull() & facts.is_new_business(o))
        per_lead = (
            opps.group_by("lead_id")
            .aggregate(
                opportunity_at=opps.created_at.min(),
                won_at=(opps.stage == "won").ifelse(opps.closed_at, ibis.null("timestamp")).min(),
            )
            .rename(o_lead_id="lead_id")
        )
        j = leads.left_join(per_lead, leads.lead_id == per_lead.o_lead_id)
        stages = j.select("created_at", "mql_at", "sql_at", "opportunity_at", "won_at")
    else:
        null = ibis.null("timestamp")
        stages = leads.select("created_at", "mql_at", "sql_at", opportunity_at=null, won_at=null)
    df = src.fetch(stages, label="lead stage times")
    for col in ("created_at", "mql_at", "sql_at", "opportunity_at", "won_at"):
        df[col] = pd.to_datetime(df[col])
    # sorted on every column: the same rows in the same order whatever the engine returns
    return df.sort_values(list(df.columns), kind="stable").reset_index(drop=True)


def funnel_maturity(
    kq: QuarterKpis,
    *,
    history_quarters: int = HISTORY_QUARTERS,
    horizon_days: float = HORIZON_DAYS,
    mature_share: float = MATURE_SHARE,
) -> pd.DataFrame:
    """How far the quarter's funnel cohort (its leads, every channel) has matured, per stage step.

    Returns
    -------
    DataFrame
        Indexed by step (:data:`STEPS`, the funnel's rate columns; a step whose stages the export
        does not record is left out): ``entered`` (the quarter's leads that reached the step's first
        stage), ``took`` (of those, the ones that took it within the horizon so far), ``rate_so_far``,
        ``matured`` (share of the step's expected conversions that have had time to happen, 0-1),
        ``expected_rate`` (the rate once mature, at most 1) with its 90% interval ``expected_rate_low``
        and ``expected_rate_high`` (Wilson on the effective members, ``entered`` x ``matured``: the
        fewer have had time, the wider), ``maturing`` (bool), ``days_column`` (the
        funnel's days column of the step, "" if none). ``attrs``: ``as_of`` (the data's last day),
        ``youngest_days`` and ``oldest_days`` (the ages of the quarter's leads), ``horizon_days``.
        Empty without leads.
    """
    from .forecast import cohort_maturity  # lazy: the forecast module reads the survival stack

    cols = [
        "entered",
        "took",
        "rate_so_far",
        "matured",
        "expected_rate",
        "expected_rate_low",
        "expected_rate_high",
        "maturing",
        "days_column",
    ]
    q = kq.quarter
    if not kq.has("leads") or kq.source.data_end is None:
        return pd.DataFrame(columns=cols)
    times = kq._memo(
        "lead stage times", history_quarters, compute=lambda: lead_stage_times(kq, history_quarters=history_quarters)
    )
    as_of = kq.source.data_end
    start_, end_ = facts.so_far(kq.source, q)
    mine = (times["created_at"] >= pd.Timestamp(start_)) & (times["created_at"] < pd.Timestamp(end_))
    rows: dict[str, list[Any]] = {}
    filled = kq.coverage.filled.get("leads", frozenset())
    recorded = {
        "mql_at": "mql_at" in filled,
        "sql_at": "sql_at" in filled,
        "opportunity_at": kq.has("opportunities"),
        "won_at": kq.has("opportunities"),
    }
    for step, (start, end, days) in STEPS.items():
        if not all(recorded.get(c, True) for c in (start, end)) or not mine.any():
            continue
        entered = times[start].notna()
        if not (entered & mine).any():
            continue
        cohort = pd.Series(["history"] * len(times), index=times.index).where(~mine, "quarter")
        stats: dict[Any, Any] = (
            cohort_maturity(
                times.loc[entered, start],
                times.loc[entered, end],
                cohort[entered],
                as_of,
                horizon_days=horizon_days,
                mature_share=mature_share,
            )
            .loc["quarter"]
            .to_dict()
        )
        low, high = expected_rate_interval(stats["converted"], stats["members"], stats["matured"])
        rows[step] = [
            int(stats["members"]),
            int(stats["converted"]),
            float(stats["rate_so_far"]),
            float(stats["matured"]),
            float(stats["adjusted_rate"]),
            low,
            high,
            bool(stats["maturing"]),
            days or "",
        ]
    out = pd.DataFrame.from_dict(rows, orient="index", columns=cols) if rows else pd.DataFrame(columns=cols)
    out.index.name = "step"
    ages = (pd.Timestamp(as_of) + pd.Timedelta(days=1) - times.loc[mine, "created_at"]) / pd.Timedelta(days=1)
    out.attrs.update(
        as_of=str(as_of),
        youngest_days=float(ages.min()) if len(ages) else float("nan"),
        oldest_days=float(ages.max()) if len(ages) else float("nan"),
        horizon_days=horizon_days,
    )
    return out


def expected_rate_interval(took: float, members: float, matured: float) -> tuple[float, float]:
    r"""90% interval of a cohort's rate once mature: Wilson on its effective members.

    A cohort of :math:`n` members that has had :math:`m` of its time weighs as :math:`n m` members that
    have had all of it, so :math:`k` conversions so far give the interval of :math:`k / (n m)` with
    :math:`n m` trials (:func:`kpi_helpers.uncertainty.proportion_interval`): the less time, the wider.
    The survival curve's own uncertainty, estimated on the many members of earlier quarters, is left
    out (on simulated cohorts the interval holds the truth about 88% of the time, ``tests/test_cohorts.py``).

    Examples
    --------
    11 conversions among 138 members that have had 32% of their time: 11 / 44.2 = 24.9%.

    >>> tuple(round(x, 3) for x in expected_rate_interval(11, 138, 0.32))
    (0.159, 0.368)
    >>> expected_rate_interval(0, 10, 0.0)
    (nan, nan)
    """
    effective = float(members) * float(matured)
    if not effective > 0:
        return math.nan, math.nan
    return proportion_interval(min(float(took), effective), effective)


def maturing_labels(maturity: pd.DataFrame) -> dict[str, str]:
    """Column headers that mark the funnel's columns of maturing steps: the step's rate and its days
    between stages (``"MQL to SQL (still maturing)"``), for :func:`kpi_helpers.tables.styled_table`."""
    from .registry import label_of

    out: dict[str, str] = {}
    for step, row in maturity.iterrows():
        if row["maturing"]:
            out[str(step)] = f"{label_of(str(step))} (still maturing)"
            if row["days_column"]:
                out[str(row["days_column"])] = f"{label_of(str(row['days_column']))} (still maturing)"
    return out


def maturity_record(maturity: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """``funnel_maturity`` as plain values for a notebook's record."""
    return {
        str(step): {
            "matured": float(r["matured"]),
            "maturing": bool(r["maturing"]),
            "rate_so_far": float(r["rate_so_far"]),
            "expected_rate": float(r["expected_rate"]),
        }
        for step, r in maturity.iterrows()
    }
