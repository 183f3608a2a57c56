"""As-of reconstruction: the tables as they stood at the end of a given day.

A forecast made "as of" day ``D`` may use only what was known at the end of ``D``; this is what makes
a backtest honest (:mod:`kpi_helpers.backtest`). Known at the end of ``D`` means dated before
``D + 1 day`` (midnight that ends ``D``):

- ``leads``: leads created after ``D`` did not exist; an ``mql_at`` or ``sql_at`` after ``D`` had not
  happened yet (blank);
- ``opportunities``: deals created after ``D`` did not exist; a deal closed after ``D`` was still open
  then (``stage`` ``open``, ``closed_at`` blank) and, with an ``opportunity_history``, its ``amount`` is
  the last one the history recorded by ``D`` (the estimate then, not the final amount); without a
  history the table's amount is all there is;
- ``revenue``: a month finance had not closed by ``D`` (its last day after ``D``) has no row;
- ``opportunity_history`` (optional: ``opportunity_id, changed_at, stage, amount``): changes after
  ``D`` had not happened.

The frames hold only the columns the forecasts need, pulled from the engine once by
:func:`load_frames`; :func:`as_of` then works in memory, so a backtest reconstructs hundreds of days
without querying the engine again. Deals and their history are row-level (the pipeline model follows
each open deal); leads, the largest table, arrive as daily counts of each event (``event``: the column
``created_at``, ``mql_at`` or ``sql_at``; ``day``; ``n``), so what reaches pandas from them is bounded by
the calendar, not by the leads. :func:`as_of` reads both forms of ``leads``.
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .exceptions import KpiInputError

__all__ = ["COLUMNS", "HISTORY_COLUMNS", "LEAD_EVENTS", "as_of", "cutoff", "event_dates", "load_frames", "max_date"]

#: columns each table contributes to the frames (``opportunities.type`` is added when the source has it)
COLUMNS: dict[str, tuple[str, ...]] = {
    "leads": ("lead_id", "created_at", "mql_at", "sql_at"),
    "opportunities": ("opportunity_id", "lead_id", "account_id", "created_at", "closed_at", "stage", "amount"),
    "revenue": ("month", "revenue"),
}
#: the dated events of a lead, counted per day by :func:`load_frames`
LEAD_EVENTS = ("created_at", "mql_at", "sql_at")
#: the optional stage history of deals (not yet a contract table: read when a source provides it)
HISTORY_COLUMNS = ("opportunity_id", "changed_at", "stage", "amount")
#: date columns per table: every one of them is cut at the as-of day
_DATES = {
    "leads": ("created_at", "mql_at", "sql_at", "day"),
    "opportunities": ("created_at", "closed_at"),
    "revenue": ("month",),
    "opportunity_history": ("changed_at",),
}


def cutoff(day: Any) -> pd.Timestamp:
    """The first instant after ``day``: what is known at the end of ``day`` is dated before it.

    Examples
    --------
    >>> cutoff("2026-03-31")
    Timestamp('2026-04-01 00:00:00')
    """
    try:
        stamp = pd.Timestamp(day)
    except (TypeError, ValueError):
        raise KpiInputError(f"as-of day {day!r} is not a date; expected e.g. `2026-03-31`") from None
    if pd.isna(stamp):
        raise KpiInputError("as-of day is missing; expected a date such as `2026-03-31`")
    return stamp.normalize() + pd.Timedelta(days=1)


def load_frames(source: Any) -> dict[str, pd.DataFrame]:
    """Pull the columns the forecasts need from ``source`` (a :class:`~kpi_helpers.source.DataSource`).

    Returns ``{table: DataFrame}`` for each of ``leads``, ``opportunities``, ``revenue`` and
    ``opportunity_history`` the source has, with datetime columns as ``datetime64`` and amounts as
    float. A table the source lacks is absent from the dict (never an empty stand-in).
    """
    if source in _LOADED:
        return dict(_LOADED[source])
    out: dict[str, pd.DataFrame] = {}
    wanted = {**COLUMNS, "opportunity_history": HISTORY_COLUMNS}
    for name, cols in wanted.items():
        if name not in source.present:
            continue
        t = source.table(name)
        if name == "leads":
            out[name] = _lead_event_counts(source, t)
            continue
        extra = ("type",) if name == "opportunities" and "type" in t.columns else ()
        frame = source.fetch(t.select(*cols, *extra), label=f"{name} for forecasts")
        out[name] = _typed(name, pd.DataFrame(frame))
    _encode_deal_ids(out)
    _LOADED[source] = out
    return dict(out)


#: each source's frames, loaded once per process (the report's forecasts and track record share them)
_LOADED: weakref.WeakKeyDictionary[Any, dict[str, pd.DataFrame]] = weakref.WeakKeyDictionary()


def _encode_deal_ids(frames: dict[str, pd.DataFrame]) -> None:
    """Replace ``opportunity_id`` in deals and their history by integer codes shared by both tables.

    The pipeline model matches hundreds of thousands of history rows to deals many times over; on
    integers that is several times faster than on text. Codes follow the ids' text order (so sorting
    by deal is unchanged); a missing id is -1.
    """
    names = [n for n in ("opportunities", "opportunity_history") if n in frames]
    if not names:
        return
    ids = np.concatenate([frames[n]["opportunity_id"].to_numpy(dtype=object) for n in names])
    codes, _ = pd.factorize(ids, sort=True)
    at = 0
    for n in names:
        size = len(frames[n])
        frames[n] = frames[n].assign(opportunity_id=codes[at : at + size].astype(np.int64))
        at += size


def _lead_event_counts(source: Any, t: Any) -> pd.DataFrame:
    """Leads per day of each event (``event``, ``day``, ``n``), counted in the engine."""
    import ibis

    parts = []
    for col in LEAD_EVENTS:
        dated = t.filter(t[col].notnull())
        daily = dated.group_by(day=dated[col].cast("date")).aggregate(n=dated.count())
        parts.append(daily.mutate(event=ibis.literal(col)).select("event", "day", "n"))
    frame = pd.DataFrame(source.fetch(ibis.union(*parts), label="leads by day for forecasts"))
    frame["day"] = pd.to_datetime(frame["day"]).astype("datetime64[ns]")
    frame["n"] = pd.to_numeric(frame["n"]).astype("int64")
    frame["event"] = frame["event"].astype(str)
    return frame.sort_values(["event", "day"], kind="stable").reset_index(drop=True)


def event_dates(leads: pd.DataFrame, event: str) -> pd.Series:
    """One date per lead event (``event`` a column of :data:`LEAD_EVENTS`), NaT for a lead without it
    in the row form, from either form of the ``leads`` frame (row-level, or daily counts)."""
    if "event" not in leads:
        return leads[event]
    rows = leads[leads["event"] == event]
    return pd.Series(np.repeat(rows["day"].to_numpy(), rows["n"].to_numpy()), name=event)


def _typed(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for col in _DATES[name]:
        if col in frame:
            frame[col] = pd.to_datetime(frame[col]).astype("datetime64[ns]")
    for col in ("amount", "revenue"):
        if col in frame:
            frame[col] = pd.to_numeric(frame[col]).astype(float)
    return frame


def as_of(frames: Mapping[str, pd.DataFrame], day: Any) -> dict[str, pd.DataFrame]:
    """The frames as they stood at the end of ``day`` (see the module docstring for the rules).

    Parameters
    ----------
    frames : mapping of str to DataFrame
        Row-level tables as from :func:`load_frames`; tables other than the four named above pass
        through unchanged.
    day : date, Timestamp or ISO string
        The as-of day; rows and values dated after its end are removed or blanked.

    Returns
    -------
    dict of str to DataFrame
        New frames (the input is not modified), rows in their original order.

    Examples
    --------
    >>> opps = pd.DataFrame({"opportunity_id": ["O1", "O2"], "lead_id": ["L1", None], "account_id": ["A", "B"],
    ...     "created_at": pd.to_datetime(["2026-01-05", "2026-02-10"]),
    ...     "closed_at": pd.to_datetime(["2026-03-02", None]), "stage": ["won", "open"], "amount": [10.0, 5.0]})
    >>> as_of({"opportunities": opps}, "2026-02-28")["opportunities"][["opportunity_id", "stage", "closed_at"]]
      opportunity_id stage closed_at
    0             O1  open       NaT
    1             O2  open       NaT
    """
    cut = cutoff(day)
    out: dict[str, pd.DataFrame] = {}
    for name, frame in frames.items():
        if name == "leads":
            out[name] = _leads(frame, cut)
        elif name == "opportunities":
            out[name] = _opportunities(frame, cut)
        elif name == "revenue":
            # a month is closed once its last day has passed: month start + 1 month <= cut
            out[name] = frame[(frame["month"] + pd.DateOffset(months=1)) <= cut].copy()
        elif name == "opportunity_history":
            out[name] = frame[frame["changed_at"] < cut].copy()
        else:
            out[name] = frame
    if "opportunities" in out and "opportunity_history" in out:
        out["opportunities"] = _amounts_known(out["opportunities"], out["opportunity_history"])
    return out


def _amounts_known(opps: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Open deals' amounts as the (already cut) history last recorded them; others unchanged."""
    if "amount" not in history or not len(history):
        return opps
    rows = history.dropna(subset=["amount"]).sort_values("changed_at", kind="stable")
    latest = rows.groupby("opportunity_id", sort=False)["amount"].last()
    known = opps["opportunity_id"].map(latest)
    use = opps["closed_at"].isna() & known.notna()
    if use.any():
        opps = opps.assign(amount=opps["amount"].mask(use, known.astype(float)))
    return opps


def _leads(frame: pd.DataFrame, cut: pd.Timestamp) -> pd.DataFrame:
    if "event" in frame:  # daily counts: an event known by the cut is dated before it
        return frame[frame["day"] < cut].copy()
    kept = frame[frame["created_at"] < cut].copy()
    for col in ("mql_at", "sql_at"):
        if col in kept:
            kept[col] = kept[col].where(kept[col] < cut)
    return kept


def _opportunities(frame: pd.DataFrame, cut: pd.Timestamp) -> pd.DataFrame:
    kept = frame[frame["created_at"] < cut].copy()
    later = kept["closed_at"].notna() & (kept["closed_at"] >= cut)
    kept["closed_at"] = kept["closed_at"].where(~later)
    kept["stage"] = kept["stage"].mask(later, "open")
    return kept


def max_date(frames: Mapping[str, pd.DataFrame]) -> dt.date | None:
    """The latest day any date in the frames falls on (a revenue month counts to its last day).

    ``as_of(frames, max_date(frames))`` returns the frames unchanged.
    """
    days: list[pd.Timestamp] = []
    for name, frame in frames.items():
        for col in _DATES.get(name, ()):
            if col not in frame or not frame[col].notna().any():
                continue
            top = frame[col].max()
            days.append(top + pd.DateOffset(months=1) - pd.Timedelta(days=1) if name == "revenue" else top)
    return max(days).date() if days else None
