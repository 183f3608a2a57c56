"""Multi-touch attribution: credit conversions and their value to the channels that touched them.

Two kinds of input are accepted by :func:`attribute`:

- a **path table**, the shape web analytics conversion-path exports have: columns ``path``
  (channels joined by ``" > "``), ``conversions`` and, optionally, ``value`` and ``nulls``
  (journeys of the same path that did not convert; both default to 0), as a pandas DataFrame or
  as an ibis table (a data source's contract table ``paths``);
- **touch-level journeys** built by :func:`touch_journeys` from the contract's ``touchpoints``,
  ``leads`` and ``opportunities`` tables, where a lead without touches is one touch of its own
  channel (the own-channel rule). They stay in the database engine: rule-based models
  weight every touch there with window functions and sum per channel; ``markov`` counts the
  transitions between channels there and only solves the small chain in numpy; ``shapley`` sums
  there too. pandas only ever sees aggregated rows.

A path table is split into touches in its engine (a DataFrame is shipped to DuckDB as an
in-memory table first) and goes through the same code, so both inputs give the same credit
wherever both apply. ``markov`` needs non-converting journeys; without them it refuses, or runs
in the converters-only mode when asked (:func:`attribute`), and says which mode ran.

Every model returns a DataFrame indexed by channel (sorted) with the credited ``conversions`` and
``value``; their sums equal the input's total conversions and value. Rule-based models give each
touch ``i`` of a converting journey ``j`` a weight :math:`w_{ij}` with :math:`\\sum_i w_{ij} = 1`:

.. math::

    \\text{conversions}_c = \\sum_j \\text{conv}_j \\sum_{i: c_{ij} = c} w_{ij}, \\qquad
    \\text{value}_c = \\sum_j \\text{value}_j \\sum_{i: c_{ij} = c} w_{ij}

The data-driven models credit channels by their share of a removal effect (``markov``) or a Shapley
value (``shapley``). :func:`describe_model` says in plain words what each model assumes.

Results are deterministic: labels are sorted, touches are ordered by time then channel then
campaign, and engine sums are exact decimal sums (a float sum in a multi-threaded engine changes
in its last bits from run to run).

References
----------
.. [1] Anderl, Becker, von Wangenheim, Schumann (2016), "Mapping the customer journey: Lessons
   learned from graph-based online attribution modeling", International Journal of Research in
   Marketing 33(3).
.. [2] Zhao, Mahboobi, Bagheri (2018), "Shapley value methods for attribution modeling in online
   advertising", arXiv:1804.05327.
.. [3] Altomare, Loris, "ChannelAttribution" (R and Python package), markov_model.
.. [4] Bryl (2016), "Marketing Multi-Channel Attribution model with R (part 1: Markov chain
   concept)", analyzecore.com: the three-path worked example used in the examples and tests.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .exceptions import AttributionError

if TYPE_CHECKING:
    from ibis.expr.builders import LegacyWindowBuilder

__all__ = [
    "MARKOV_MODES",
    "MODELS",
    "NEED_NULLS",
    "NOT_SET",
    "SEPARATOR",
    "Journeys",
    "attribute",
    "compare_models",
    "describe_model",
    "touch_journeys",
]

#: every model :func:`attribute` knows, in the order comparisons show them.
MODELS: tuple[str, ...] = (
    "first_touch",
    "last_touch",
    "last_non_direct",
    "linear",
    "time_decay",
    "position_based",
    "w_shaped",
    "full_path",
    "markov",
    "shapley",
)
#: models that need the key moments only touch-level journeys have.
TOUCH_LEVEL_ONLY: tuple[str, ...] = ("w_shaped", "full_path")
#: models that read the non-converting journeys (the others ignore them).
NEED_NULLS: tuple[str, ...] = ("markov",)
#: what `attribute(..., "markov")` ran, in ``result.attrs["markov_mode"]``: over every journey
#: (the default, which needs non-converting ones) or over converting journeys alone
#: (``converters_only=True``).
MARKOV_MODES: tuple[str, ...] = ("all_journeys", "converters_only")
#: how channels are joined in a path.
SEPARATOR = " > "
#: label of a touch without channel or campaign.
NOT_SET = "(not set)"

_BY = ("channel", "campaign")
#: (share of each key moment, share of the rest) of the two key-moment models.
_KEY_SHARES = {
    "w_shaped": ({"is_first": 0.3, "is_lead_creation": 0.3, "is_opportunity_creation": 0.3}, 0.1),
    "full_path": (
        {"is_first": 0.225, "is_lead_creation": 0.225, "is_opportunity_creation": 0.225, "is_closed_won": 0.225},
        0.1,
    ),
}
#: beyond this many states the dense solves (one per channel) take minutes: refuse instead.
_MAX_STATES = 2500
_SHOWN_ROWS = 10
#: summands are rounded to 1e-18 and summed exactly (see `_exact_sum`).
_EXACT = "decimal(38, 18)"
#: how a path table is named in messages
_WHERE = "`path table`"
_NUMBERS = ("conversions", "value", "nulls")
#: columns whose absence means "none of that kind": an entirely empty column is absent too (an
#: export or an engine table without them); one empty cell among values is refused
_ENTIRELY_EMPTY_IS_ZERO = ("value", "nulls")
#: channels in a path are trimmed of ASCII whitespace (what the engines' `strip` removes)
_WS = r"[ \t\n\r\v\f]"
#: a path without any channel, or with an empty one between separators
_EMPTY_CHANNEL = rf"^{_WS}*$|^{_WS}*>|>{_WS}*>|>{_WS}*$"
#: a path not written exactly as channels joined by " > " (then its pieces need trimming)
_NOT_CANONICAL = rf"^{_WS}|{_WS}$|[^ ]>|>[^ ]|{_WS} >|> {_WS}"
#: (one, many, expected) of two path-table problems
_EMPTY = (
    "empty path or channel",
    "empty paths or channels",
    "expected channels joined by ' > ', e.g. 'Search > Email'",
)
_ORPHAN = (
    "value without conversions",
    "values without conversions",
    "value belongs to conversions, so `conversions` must be > 0 where `value` is",
)

_DESCRIPTIONS = {
    "first_touch": (
        "First touch: all credit goes to the channel of the journey's first recorded touch. Assumes the "
        "touch that introduced the buyer did the work; ignores everything that happened after."
    ),
    "last_touch": (
        "Last touch: all credit goes to the channel of the last touch before the conversion. Assumes the "
        "touch that closed did the work; ignores how the buyer was found."
    ),
    "last_non_direct": (
        "Last non-direct touch: like last touch, but skips Direct visits (typing the address or a "
        "bookmark), which usually follow earlier marketing; Direct keeps the credit only when it is the "
        "only channel of the journey."
    ),
    "linear": (
        "Linear: every touch of the journey gets an equal share. Assumes every touch contributed the "
        "same; a channel that touches often gets more."
    ),
    "time_decay": (
        "Time decay: a touch's weight halves with every half-life (7 days by default) between the touch "
        "and the conversion; on a path table one position counts as one half-life. Assumes recent "
        "touches mattered more."
    ),
    "position_based": (
        "Position-based (U-shaped): 40% to the first touch, 40% to the last, 20% shared by the touches "
        "in between (50/50 with two touches). Assumes introducing and closing matter most."
    ),
    "w_shaped": (
        "W-shaped: 30% each to the first touch, the lead-creation touch and the opportunity-creation "
        "touch, 10% shared by the other touches. Assumes the three funnel milestones matter most. "
        "Touch-level journeys only."
    ),
    "full_path": (
        "Full path (Z-shaped): 22.5% each to the first touch, the lead-creation, opportunity-creation and "
        "closed-won touches, 10% shared by the others. Touch-level journeys only."
    ),
    "markov": (
        "Markov (data-driven): journeys, converting or not, estimate how buyers move between channels; a "
        "channel's credit is its share of the conversions that would be lost if it were removed "
        "(removal effect). Uses non-converting journeys; measures association, not causation."
    ),
    "shapley": (
        "Shapley (data-driven): each channel's fair share of the conversions of the channel sets it "
        "took part in, from cooperative game theory; with the path-set game used here every "
        "converting journey is split equally among its distinct channels, so repeated touches of a "
        "channel do not add credit. Measures association, not causation."
    ),
}
_CONVERTERS_ONLY_DESCRIPTION = (
    "Markov, converters-only mode (data-driven, biased): no journeys that did not convert were "
    "exported, so the chain is estimated from converting journeys alone, and a channel's credit is "
    "its share of the chance that a converting journey passes through it. This measures reach among "
    "buyers, not how much a channel raises the chance to convert: channels on most paths are "
    "overstated, and a channel that brings many journeys that never convert is not penalised."
)


# --------------------------------------------------------------------------------------------- public


def describe_model(name: str, *, markov_mode: str | None = None) -> str:
    """Plain-words note of what attribution model ``name`` assumes (for notebooks and reports).

    Parameters
    ----------
    name
        One of :data:`MODELS`.
    markov_mode
        For ``markov``, the mode that ran (``result.attrs["markov_mode"]``, one of
        :data:`MARKOV_MODES`): ``"converters_only"`` describes that mode and its bias; ``None``
        or ``"all_journeys"`` the default.

    Returns
    -------
    str
        One to three sentences.

    Raises
    ------
    AttributionError
        When ``name`` is not a model, or ``markov_mode`` is not a mode of ``markov``.

    Notes
    -----
    On touch-level journeys every model credits a lead without touches through the lead's own
    channel and campaign (one touch at its creation; :func:`touch_journeys`). Say so next to the
    numbers, with the split of :meth:`Journeys.credit_sources`, e.g. "82% of revenue came from
    touch journeys, 18% from the lead's own channel".

    Examples
    --------
    >>> describe_model("linear").split(":")[0]
    'Linear'
    >>> describe_model("markov", markov_mode="converters_only").split(":")[0]
    'Markov, converters-only mode (data-driven, biased)'
    """
    _check_model(name)
    if markov_mode is None or (name == "markov" and markov_mode == "all_journeys"):
        return _DESCRIPTIONS[name]
    if name != "markov" or markov_mode not in MARKOV_MODES:
        raise AttributionError(
            f"`markov_mode` is for model `markov`, one of {_names(MARKOV_MODES)}; got {markov_mode!r} for `{name}`"
        )
    return _CONVERTERS_ONLY_DESCRIPTION


@dataclass(frozen=True, eq=False)
class Journeys:
    """Touch-level journeys, an ibis table expression with one row per touch (nothing executed).

    Build it with :func:`touch_journeys`; pass it to :func:`attribute` or :func:`compare_models`.

    Attributes
    ----------
    table
        ibis table with the columns in :attr:`COLUMNS`:

        - ``journey_id`` (string): ``opportunity:<opportunity_id>`` for a converting journey (one
          per won deal), ``lead:<lead_id>`` for a non-converting one;
        - ``lead_id``, ``channel``, ``campaign`` (strings; a missing channel or campaign is
          :data:`NOT_SET`), ``touched_at`` (timestamp);
        - ``position`` (1-based, in time order; ties broken by channel then campaign),
          ``n_touches`` (touches of the journey), ``previous_channel`` and ``previous_campaign``
          (of the touch before; null on the first);
        - ``days_before_conversion`` (float days from the touch to ``converted_at``; null when the
          journey did not convert);
        - key moments (booleans): ``is_first``; ``is_lead_creation``, the last touch at or before
          the lead's ``created_at``; ``is_opportunity_creation``, the last touch at or before the
          opportunity's ``created_at``; ``is_closed_won``, the last touch at or before ``closed_at``
          (the journey's last touch, since later touches are not part of it). A moment without
          any touch at or before it is missing: no touch carries the flag;
        - ``converted`` (boolean), ``converted_at`` (the won deal's ``closed_at``) and ``value``
          (the deal's ``amount``; 0 when not converted), repeated on every touch of the journey;
        - ``own_channel`` (boolean): the touch is the lead's own channel and campaign at its
          creation, standing in for a journey without any touch (see :func:`touch_journeys`);
          such a journey has this one touch.
    unattributed
        Won deals in the window that are no journey (``opportunity_id``, ``lead_id``,
        ``closed_at``, ``amount``), so no model credits them: with the own-channel rule, deals
        whose lead is missing from ``leads``; without it, also deals without any touch at or
        before ``closed_at``. Count them in reports; ``None`` when unknown.
    has_nulls
        False when built without the non-converting journeys
        (``touch_journeys(include_nulls=False)``).

    Examples
    --------
    A lead with two touches won 300; a lead without touches, created by Email, won 100:

    >>> import ibis
    >>> touches = ibis.memtable({"lead_id": ["L1", "L1"], "channel": ["Search", "Social"],
    ...     "touched_at": pd.to_datetime(["2024-01-02", "2024-01-05"])})
    >>> leads = ibis.memtable({"lead_id": ["L1", "L2"], "channel": ["Search", "Email"],
    ...     "created_at": pd.to_datetime(["2024-01-03", "2024-01-04"])})
    >>> deals = ibis.memtable({"opportunity_id": ["O1", "O2"], "lead_id": ["L1", "L2"],
    ...     "created_at": pd.to_datetime(["2024-01-06", "2024-01-07"]),
    ...     "closed_at": pd.to_datetime(["2024-01-09", "2024-01-10"]),
    ...     "stage": ["won", "won"], "amount": [300.0, 100.0]})
    >>> journeys = touch_journeys(touches, leads, deals)
    >>> journeys.credit_sources()["value_share"].to_dict()
    {'touch_journeys': 0.75, 'own_channel': 0.25, 'unattributed': 0.0}
    >>> attribute(journeys, "linear")["value"].to_dict()
    {'Email': 100.0, 'Search': 150.0, 'Social': 150.0}
    """

    table: ir.Table
    unattributed: ir.Table | None = None
    #: False when built without the non-converting journeys (``touch_journeys(include_nulls=False)``)
    has_nulls: bool = True

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "journey_id",
        "lead_id",
        "channel",
        "campaign",
        "touched_at",
        "position",
        "n_touches",
        "previous_channel",
        "previous_campaign",
        "days_before_conversion",
        "is_first",
        "is_lead_creation",
        "is_opportunity_creation",
        "is_closed_won",
        "converted",
        "converted_at",
        "value",
        "own_channel",
    )

    def __post_init__(self) -> None:
        missing = [c for c in self.COLUMNS if c not in self.table.columns]
        if missing:
            raise AttributionError(
                f"`Journeys.table`: missing column(s) {_names(missing)}; build journeys with "
                "`touch_journeys(touchpoints, leads, opportunities)`"
            )

    def materialize(self, name: str | None = None) -> Journeys:
        """Compute the journeys once into a temporary table of their backend.

        On lazy journeys every model rebuilds them (joins and window functions over every touch),
        which is most of its time; materialise before running several models or a comparison.
        The table lives until the connection closes.

        Parameters
        ----------
        name
            Table name; default a unique ``kpi_journeys_<hex>``.

        Returns
        -------
        Journeys
            The same journeys, reading the table.
        """
        # not `Table.cache()`: with sqlglot 30, ibis 12 cannot drop the cached table again
        backend = ibis.get_backend(self.table)
        table = backend.create_table(name or f"kpi_journeys_{uuid.uuid4().hex[:12]}", self.table, temp=True)
        return Journeys(table, self.unattributed, self.has_nulls)

    def paths(self, *, by: str = "channel") -> pd.DataFrame:
        """Aggregate the journeys to a path table, in the engine.

        Each journey becomes its ``by`` labels in time order joined by ``" > "``; journeys with the
        same path are summed. Repeated touches are kept (``A > A > B``).

        Parameters
        ----------
        by
            ``"channel"`` or ``"campaign"``.

        Returns
        -------
        pandas.DataFrame
            Columns ``path``, ``conversions``, ``value`` and ``nulls`` (non-converting journeys),
            one row per distinct path, sorted by path.

        Raises
        ------
        AttributionError
            When a label contains ``">"``, which would make the path ambiguous.
        """
        _check_by(by)
        t = self.table
        label = t[by]
        # an unordered list of (position, label) sorted afterwards: DuckDB's ordered aggregates
        # (string_agg ... ORDER BY) took 3x as long
        per_journey = t.group_by("journey_id").aggregate(
            touches=ibis.struct({"position": t.position, "label": label}).collect(),
            converted=t.converted.max(),
            value=t.value.max(),
            # checked in the same query: a ">" inside a label would split into two channels
            bad=label.contains(">").cast("int64").max(),
        )
        per_journey = per_journey.mutate(path=per_journey.touches.sort().map(lambda touch: touch.label).join(SEPARATOR))
        paths = (
            per_journey.group_by("path")
            .aggregate(
                conversions=per_journey.converted.cast("int64").sum(),
                value=_exact_sum(per_journey.value),
                nulls=(~per_journey.converted).cast("int64").sum(),
                bad=per_journey.bad.max(),
            )
            .order_by("path")
        )
        df = paths.execute()
        if (df["bad"] > 0).any():
            raise AttributionError(
                f"`touchpoints`, column `{by}`: some values contain '>', the path separator; rename them "
                "(e.g. replace '>' with '/') before building journeys"
            )
        out = df[["path", "conversions", "value", "nulls"]].reset_index(drop=True)
        return out.astype({"conversions": "int64", "value": "float64", "nulls": "int64"})

    def summary(self) -> dict[str, int | float]:
        """Totals of the journeys, computed in the engine.

        Returns
        -------
        dict
            ``journeys``, ``conversions``, ``nulls``, ``value`` and ``touches`` (own-channel
            touches included); when :attr:`unattributed` is known also
            ``unattributed_conversions`` and ``unattributed_value`` (won deals that are no
            journey, which no model credits). :meth:`credit_sources` splits the conversions
            and value by where they came from.
        """
        t = self.table
        per_journey = t.group_by("journey_id").aggregate(converted=t.converted.max(), value=t.value.max(), n=t.count())
        row = per_journey.aggregate(
            journeys=per_journey.count(),
            conversions=per_journey.converted.cast("int64").sum(),
            value=_exact_sum(per_journey.value),
            touches=per_journey.n.sum(),
        ).execute()
        out: dict[str, int | float] = {
            "journeys": int(row["journeys"].iloc[0]),
            "conversions": int(_zero_if_null(row["conversions"].iloc[0])),
            "value": float(_zero_if_null(row["value"].iloc[0])),
            "touches": int(_zero_if_null(row["touches"].iloc[0])),
        }
        out["nulls"] = out["journeys"] - out["conversions"]
        if self.unattributed is not None:
            out["unattributed_conversions"], out["unattributed_value"] = _deal_totals(self.unattributed)
        return out

    def credit_sources(self) -> pd.DataFrame:
        """Where the converting journeys came from: touches, or the lead's own channel; in the engine.

        A won deal is credited through its lead's touches (``touch_journeys``) or, when the lead
        has no touch at or before the close, through the lead's own channel (``own_channel``);
        ``unattributed`` deals (lead missing from ``leads``) are credited to no channel. For a
        report: "X% of revenue came from touch journeys, Y% from the lead's own channel".

        Returns
        -------
        pandas.DataFrame
            Index ``source``: ``touch_journeys``, ``own_channel`` and, when :attr:`unattributed` is
            known, ``unattributed``. Columns ``conversions`` (won deals, int), ``value`` (their
            amounts, float) and ``conversions_share``, ``value_share``: fractions (0-1) of the
            column's total over the rows shown, NaN when that total is 0.
        """
        t = self.table
        # a converting journey's first touch stands for the journey: one row each, no group-by
        first = t.filter(t.converted & (t.position == 1))
        df = (
            first.group_by(own=first.own_channel)
            .aggregate(conversions=first.count(), value=_exact_sum(first.value))
            .execute()
        )
        rows = {"touch_journeys": (0, 0.0), "own_channel": (0, 0.0)}
        for own, conv, value in zip(df["own"], df["conversions"], df["value"], strict=True):
            rows["own_channel" if own else "touch_journeys"] = (int(conv), float(_zero_if_null(value)))
        if self.unattributed is not None:
            rows["unattributed"] = _deal_totals(self.unattributed)
        out = pd.DataFrame.from_dict(rows, orient="index", columns=["conversions", "value"])
        out.index.name = "source"
        for col in ("conversions", "value"):
            total = out[col].sum()
            out[f"{col}_share"] = out[col] / total if total > 0 else np.nan
        return out


def _deal_totals(deals: ir.Table) -> tuple[int, float]:
    """Number and exact total ``amount`` of a table of deals."""
    row = deals.aggregate(n=deals.count(), value=_exact_sum(deals.amount)).execute()
    return int(row["n"].iloc[0]), float(_zero_if_null(row["value"].iloc[0]))


def touch_journeys(
    touchpoints: ir.Table | None,
    leads: ir.Table,
    opportunities: ir.Table,
    *,
    start: dt.date | dt.datetime | str | None = None,
    end: dt.date | dt.datetime | str | None = None,
    lookback_days: int = 365,
    include_nulls: bool = True,
    own_channel: bool = True,
) -> Journeys:
    """Build touch-level journeys from the contract tables, lazily, in the database engine.

    Converting journeys are the won opportunities with a ``lead_id`` closed in ``[start, end)``,
    one journey per won deal, made of the lead's touches at or before the deal's ``closed_at``;
    their value is the deal's ``amount``. Non-converting journeys (nulls, used by ``markov``) are
    the leads created in ``[start - lookback_days, end)`` that have no won deal closed before
    ``end``, made of their touches before ``end``.

    **Own-channel rule** (``own_channel=True``, the default): a journey without any touch (no
    touchpoints at all, or none of the lead's before the close, or before ``end`` for a null) is
    one touch of the lead's own channel and campaign (``leads.channel``, ``leads.campaign``) at
    the lead's ``created_at``, flagged ``own_channel``. So every won deal of a lead in ``leads``
    is a journey, every model's credit sums to the window's lead revenue (won deals with a lead),
    and a lead without touches that did not buy is a one-touch null journey of its own channel,
    as it would be were the touch recorded (Markov sees where untouched leads came from, whether
    they bought or not). :meth:`Journeys.credit_sources` says how much came from each kind. With
    ``own_channel=False`` journeys without touches are left out, and their won deals are only
    counted in :attr:`Journeys.unattributed`.

    Parameters
    ----------
    touchpoints, leads, opportunities
        ibis tables typed per the contract (:mod:`kpi_helpers.schema`): timestamps for
        ``touched_at``, ``created_at`` and ``closed_at``; numeric ``amount``; ``stage`` open, won or
        lost (compared trimmed and case-insensitively). ``touchpoints.campaign`` and
        ``leads.campaign`` may be absent; ``leads.channel`` is needed for the own-channel rule.
        ``touchpoints`` may have no rows, or be ``None`` (no touchpoints at all).
    start, end
        Conversion window: ``closed_at >= start`` and ``closed_at < end`` (dates mean midnight,
        ``end`` is exclusive). ``None`` leaves that side open.
    lookback_days
        How far before ``start`` a lead may have been created to count as a non-converting
        journey (days, default 365).
    include_nulls
        Build the non-converting journeys too (default). Only ``markov`` uses them, and they are
        most of the touches (98% of them on the sample): leave them out for the other models.
        Without them, labels seen only on non-converting journeys are absent from the results.
    own_channel
        Apply the own-channel rule above (default True).

    Returns
    -------
    Journeys
        The touch-level expression; nothing has been executed.

    Raises
    ------
    AttributionError
        On missing columns, mistyped columns, an empty window or a negative ``lookback_days``.
    """
    start_ts = _as_timestamp(start, "start")
    end_ts = _as_timestamp(end, "end")
    if start_ts is not None and end_ts is not None and start_ts >= end_ts:
        raise AttributionError(f"`start` ({start_ts}) must be before `end` ({end_ts}); `end` is exclusive")
    if isinstance(lookback_days, bool) or not isinstance(lookback_days, int) or lookback_days < 0:
        raise AttributionError(f"`lookback_days` must be a whole number of days >= 0, got {lookback_days!r}")
    for name, flag in (("include_nulls", include_nulls), ("own_channel", own_channel)):
        if not isinstance(flag, bool | np.bool_):
            raise AttributionError(f"`{name}` must be True or False, got {flag!r}")
    _check_tables(touchpoints, leads, opportunities, own_channel=own_channel)

    def label(col: ir.StringValue) -> ir.StringValue:
        # labels are used as loaded (the contract loader validates them); only nulls get one
        return col.fill_null(NOT_SET)

    def optional(table: ir.Table, col: str) -> ir.StringValue:
        return table[col].cast("string") if col in table.columns else ibis.null().cast("string")

    ld = leads.select(
        l_lead_id=leads.lead_id.cast("string"),
        lead_created_at=leads.created_at.cast("timestamp"),
        lead_channel=label(optional(leads, "channel")),
        lead_campaign=label(optional(leads, "campaign")),
    )
    if touchpoints is None:
        # no rows, in the leads' own engine (an in-memory table would need a second one)
        tp = ld.select(
            tp_lead_id=ld.l_lead_id, touched_at=ld.lead_created_at, channel=ld.lead_channel, campaign=ld.lead_campaign
        ).filter(ibis.literal(False))
    else:
        tp = touchpoints.select(
            tp_lead_id=touchpoints.lead_id.cast("string"),
            touched_at=touchpoints.touched_at.cast("timestamp"),
            channel=label(touchpoints.channel.cast("string")),
            campaign=label(optional(touchpoints, "campaign")),
        )
    op = opportunities
    won = op.filter(
        (op.stage.cast("string").strip().lower() == "won") & op.lead_id.notnull() & op.closed_at.notnull()
    ).select(
        opportunity_id=op.opportunity_id.cast("string"),
        lead_id=op.lead_id.cast("string"),
        opportunity_created_at=op.created_at.cast("timestamp"),
        converted_at=op.closed_at.cast("timestamp"),
        value=op.amount.cast("float64"),
    )
    conv = won
    if start_ts is not None:
        conv = conv.filter(conv.converted_at >= start_ts)
    if end_ts is not None:
        conv = conv.filter(conv.converted_at < end_ts)
    conv_j = conv.select(
        journey_id=ibis.literal("opportunity:") + conv.opportunity_id,
        lead_id=conv.lead_id,
        opportunity_created_at=conv.opportunity_created_at,
        converted_at=conv.converted_at,
        converted=ibis.literal(True),
        value=conv.value,
    )

    candidates = ld
    if start_ts is not None:
        candidates = candidates.filter(candidates.lead_created_at >= start_ts - dt.timedelta(days=lookback_days))
    if end_ts is not None:
        candidates = candidates.filter(candidates.lead_created_at < end_ts)
    won_before_end = won if end_ts is None else won.filter(won.converted_at < end_ts)
    null_leads = candidates.anti_join(won_before_end, candidates.l_lead_id == won_before_end.lead_id)
    null_j = null_leads.select(
        journey_id=ibis.literal("lead:") + null_leads.l_lead_id,
        lead_id=null_leads.l_lead_id,
        opportunity_created_at=ibis.null().cast("timestamp"),
        converted_at=ibis.null().cast("timestamp"),
        converted=ibis.literal(False),
        value=ibis.literal(0.0),
    )

    journeys = conv_j.union(null_j) if include_nulls else conv_j
    journeys = journeys.left_join(ld, journeys.lead_id == ld.l_lead_id).drop("l_lead_id")
    in_journey = ibis.ifelse(
        journeys.converted,
        tp.touched_at <= journeys.converted_at,
        ibis.literal(True) if end_ts is None else tp.touched_at < end_ts,
    )
    joined = journeys.join(tp, [journeys.lead_id == tp.tp_lead_id, in_journey]).mutate(own_channel=ibis.literal(False))
    if own_channel:
        # a journey matches no touch when its lead's first touch comes after it (or there is
        # none): found with an equality join on the lead (a hash join; a left join with the time
        # condition ran as a nested loop, minutes on 100k leads). A lead missing from `leads` has
        # no creation time and gives no journey.
        first = tp.group_by(f_lead_id=tp.tp_lead_id).aggregate(first_at=tp.touched_at.min())
        bare = journeys.left_join(first, journeys.lead_id == first.f_lead_id)
        after = ibis.ifelse(
            bare.converted,
            bare.first_at > bare.converted_at,
            ibis.literal(False) if end_ts is None else bare.first_at >= end_ts,
        )
        bare = bare.filter(bare.lead_created_at.notnull() & (bare.first_at.isnull() | after))
        own = bare.mutate(
            tp_lead_id=bare.lead_id,
            touched_at=bare.lead_created_at,
            channel=bare.lead_channel,
            campaign=bare.lead_campaign,
            own_channel=ibis.literal(True),
        )
        joined = joined.union(own.select(*joined.columns))
    touches = joined.drop("tp_lead_id", "lead_channel", "lead_campaign")

    # one window specification for everything: DuckDB then sorts the touches once
    ordered = _per_journey(touches, order_by=["touched_at", "channel", "campaign"])
    touches = touches.mutate(
        position=ibis.row_number().over(ordered) + 1,
        n_touches=touches.touched_at.count().over(ordered),
        next_at=touches.touched_at.lead().over(ordered),
        # the transitions Markov counts; computed here, they cost no second sort
        previous_channel=touches.channel.lag().over(ordered),
        previous_campaign=touches.campaign.lag().over(ordered),
    )
    pos, at, next_at = touches.position, touches.touched_at, touches.next_at

    def last_at_or_before(moment: ir.TimestampValue) -> ir.BooleanValue:
        # ordered by time, the last touch at or before a moment is the one whose successor is after
        # it; a null moment (no opportunity) flags no touch
        return ((at <= moment) & (next_at.isnull() | (next_at > moment))).fill_null(False)

    seconds = touches.converted_at.epoch_seconds() - at.epoch_seconds()
    touches = touches.mutate(
        days_before_conversion=ibis.ifelse(
            touches.converted, seconds.cast("float64") / 86400.0, ibis.null().cast("float64")
        ),
        is_first=pos == 1,
        is_lead_creation=last_at_or_before(touches.lead_created_at),
        is_opportunity_creation=last_at_or_before(touches.opportunity_created_at),
        is_closed_won=touches.converted & (pos == touches.n_touches),
    )
    table = touches.select(*Journeys.COLUMNS)

    # a view: `credited` derives from `conv`, and ibis would otherwise resolve the predicate's
    # left side to the identical expression on the right, making the anti-join drop every deal
    credited = joined.filter(joined.converted).select(tj=joined.journey_id).distinct().view()
    left_out = conv.anti_join(credited, (ibis.literal("opportunity:") + conv.opportunity_id) == credited.tj)
    unattributed = left_out.select(
        opportunity_id=left_out.opportunity_id,
        lead_id=left_out.lead_id,
        closed_at=left_out.converted_at,
        amount=left_out.value,
    )
    return Journeys(table, unattributed, has_nulls=include_nulls)


def attribute(journeys: pd.DataFrame | ir.Table | Journeys, model: str, **options: Any) -> pd.DataFrame:
    """Credit conversions and their value to channels with one attribution model.

    Notation: a journey has touches :math:`i = 1..n` in time order with channels :math:`c_i`; the
    weights below sum to 1 per journey and are applied to its conversions and value (module
    docstring).

    - ``first_touch``: :math:`w_1 = 1`.
    - ``last_touch``: :math:`w_n = 1`.
    - ``last_non_direct``: :math:`w_m = 1` for :math:`m = \\max\\{i : c_i \\notin D\\}`, or
      :math:`m = n` when every touch is direct (:math:`D` is option ``direct``, default
      ``"Direct"``; names compared exactly).
    - ``linear``: :math:`w_i = 1/n`.
    - ``time_decay``: :math:`w_i \\propto 2^{-d_i / h}`, with :math:`d_i` the days from touch to
      conversion and :math:`h` = ``half_life_days`` (default 7). On a path table there are no
      dates: :math:`d_i = n - i` and :math:`h = 1`, i.e. one position is one half-life step.
    - ``position_based`` (U-shaped): :math:`w_1 = w_n = 0.4` and :math:`w_i = 0.2/(n-2)` in
      between; :math:`w_1 = w_2 = 0.5` when :math:`n = 2`; :math:`w_1 = 1` when :math:`n = 1`.
    - ``w_shaped`` and ``full_path`` (touch-level only): key moments F (first touch), L (lead
      creation), O (opportunity creation) and, for ``full_path``, W (closed won) get
      :math:`s_k` = 0.3 (``w_shaped``) or 0.225 (``full_path``) each; the rest :math:`R` (touches
      that are no key moment) share 0.1:
      :math:`r_i = \\sum_{k: i \\text{ is } k} s_k + 0.1\\,[i \\in R] / |R|`, and
      :math:`w_i = r_i / \\sum_j r_j`. So moments that fall on the same touch add their shares
      on it; a missing moment (no touch at or before it, e.g. a lead created before any
      tracked touch) drops its share; with no "rest" touch the 0.1 is dropped. Renormalising then
      hands what was dropped to the remaining weights in proportion, so credit still sums to
      the total. Example: 3 touches, lead created at the first, opportunity at the second:
      F+L = 0.6, O = 0.3, rest 0.1 on the third.
    - ``markov``: an absorbing Markov chain over states (channels, or the last ``order``
      channels when ``order`` > 1) with a start state and absorbing *conversion* and *null*
      states, estimated from every journey: converting paths end in conversion, the ``nulls``
      in null. Consecutive repeats of a channel are merged first (``collapse_repeats=True``).
      With :math:`Q` the transient-to-transient transition matrix and :math:`r` the
      one-step conversion probabilities, the conversion probability from the start is
      :math:`P = e_{start}^\\top (I - Q)^{-1} r`, solved by linear algebra (no simulation; the
      same result on every run). Removing channel :math:`c` (every state containing it leads to null) gives
      :math:`P_{-c}`; the removal effect is :math:`RE_c = 1 - P_{-c}/P` and
      :math:`\\text{conversions}_c = RE_c / \\sum_k RE_k \\times \\text{total conversions}`.
      **Value** is credited by removal effects of the expected conversion value of the same
      chain: a conversion leaving state :math:`s` carries the mean value of the conversions
      observed leaving :math:`s` (:math:`r^{v}_s` = value converted from :math:`s` / journeys
      leaving :math:`s`), :math:`V = e_{start}^\\top (I - Q)^{-1} r^{v}`; so a channel on the way
      to large deals gets a larger value share than conversion share. When every conversion has
      the same value both shares coincide. (ChannelAttribution [3]_ gets value credit by
      simulating conversion values; this is an exact expected-value formulation.) Options
      ``order`` (default 1) and ``collapse_repeats``. At order 1 repeats cannot change the
      result (a self-loop only delays absorption); from order 2 they do. At most 2,500
      observed states (channels at order 1, observed pairs of channels at order 2, ...).

      *Modes* (``result.attrs["markov_mode"]``, one of :data:`MARKOV_MODES`). By default
      (``"all_journeys"``) the chain needs non-converting journeys: input with conversions but
      without any (a path table whose ``nulls`` are absent or all 0, as in a GA conversion-path
      export; :class:`Journeys` built with ``include_nulls=False`` or without a single null) is
      refused with an :class:`AttributionError` saying what to export. With
      ``converters_only=True`` (``"converters_only"``) the chain is estimated from the
      converting journeys alone; ``nulls``, where present, are ignored. Its only absorbing state
      is then conversion, so :math:`P = 1`, and removing :math:`c` turns every walk through
      :math:`c` into a null: :math:`RE_c = 1 - P_{-c} = \\Pr(\\text{a walk of the chain from the
      start visits } c)`, and conversions are credited by these visit probabilities (value by
      the same construction on :math:`V`). It assumes that the journeys that did not convert
      move between channels as the converting ones do, so that leaving them out changes no
      removal effect. That is rarely true, and the estimate is biased: it measures how much of
      the converting traffic passes through a channel (reach among buyers), not how much the
      channel raises the chance to convert. A channel that brings many journeys that do not
      convert is not penalised, one whose journeys convert well is not rewarded, and a channel
      present on most converting paths gets a large share whether or not it matters. (This is
      what ChannelAttribution computes when given no ``var_null``.) State the mode next to the
      numbers.
    - ``shapley``: exact Shapley values of the path-set game [2]_:
      :math:`v(S) = \\sum_{p:\\, \\mathrm{set}(p) \\subseteq S} \\text{conv}_p`,
      :math:`\\phi_c = \\sum_{S \\subseteq N \\setminus \\{c\\}} \\frac{|S|!\\,(|N|-|S|-1)!}{|N|!}
      (v(S \\cup \\{c\\}) - v(S))`. This game is a sum of unanimity games, one per channel set,
      so the Shapley value has the closed form
      :math:`\\phi_c = \\sum_{p \\ni c} \\text{conv}_p / |\\mathrm{set}(p)|` (Zhao et al.'s
      simplified Shapley value): each converting journey is split equally among its
      *distinct* channels. It is computed that way, exactly, in time linear in the touches, so
      there is no limit on the number of channels. Value likewise with :math:`v` on value.
      Non-converting journeys do not enter this game.

    Parameters
    ----------
    journeys
        A path table or :class:`Journeys` (touch-level; a lead without touches is credited
        through its own channel, see :func:`touch_journeys`). A path table has columns ``path``,
        ``conversions`` and optionally ``value`` and ``nulls`` (journeys of the path that did
        not convert), as a pandas DataFrame or as an ibis table (e.g. the contract table
        ``paths`` of a data source: validated and attributed in its engine, only aggregates
        are fetched). Counts are >= 0, ``value`` only where there are conversions; a ``value``
        or ``nulls`` column that is absent or empty in every row is 0, one empty cell among
        values is refused. Channels in a path are split on ``">"`` and trimmed of whitespace;
        a channel repeated in a path is a repeated touch.
    model
        One of :data:`MODELS`.
    **options
        ``direct`` (``last_non_direct``: a name or names of direct channels, default
        ``"Direct"``); ``half_life_days`` (``time_decay`` on journeys, > 0, default 7);
        ``order`` (int >= 1, default 1), ``collapse_repeats`` (bool, default True) and
        ``converters_only`` (bool, default False; see the modes above) for ``markov``; ``by``
        (journeys only: ``"channel"`` or ``"campaign"``, the label credited).

    Returns
    -------
    pandas.DataFrame
        Indexed by channel (or campaign), sorted, every label of the input present (0 if not
        credited); float columns ``conversions`` and ``value``. ``attrs["model"]`` holds the
        model name; for ``markov``, ``attrs["markov_mode"]`` the mode that ran.

    Raises
    ------
    AttributionError
        Unknown model (the message lists them), an option the model does not take, a bad option
        value, ``w_shaped``/``full_path`` on a path table, ``markov`` on converting journeys
        alone without ``converters_only=True``, or an invalid path table (all its problems at
        once: missing columns, empty paths or channels, negative, missing or non-numeric
        counts, with rows of a DataFrame or example paths of an ibis table).

    Examples
    --------
    The published Markov example [4]_: one conversion on ``C1 > C2 > C3``, nulls on ``C1`` and
    ``C2 > C3``.

    >>> paths = pd.DataFrame({"path": ["C1 > C2 > C3", "C1", "C2 > C3"],
    ...                       "conversions": [1, 0, 0], "nulls": [0, 1, 1]})
    >>> result = attribute(paths, "markov")
    >>> result["conversions"].round(12).tolist(), result.attrs["markov_mode"]
    ([0.2, 0.4, 0.4], 'all_journeys')
    >>> attribute(paths, "linear")["conversions"].round(6).tolist()
    [0.333333, 0.333333, 0.333333]

    A conversion-path export without non-converting paths: Markov refuses unless asked for the
    converters-only mode. From the start the walk goes to A or to B (1/2 each); A converts or
    moves on to B (1/2 each); B converts (1/3) or moves on to C (2/3), which converts. A walk
    visits A with probability 1/2, B with 1/2 + 1/4 = 3/4 and C with 3/4 x 2/3 = 1/2: shares
    2/7, 3/7 and 2/7 of the 4 conversions.

    >>> exported = pd.DataFrame({"path": ["A > B", "A", "B > C"], "conversions": [1, 1, 2]})
    >>> attribute(exported, "markov")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kpi_helpers.exceptions.AttributionError: `markov` needs non-converting journeys and this path table has none ...
    >>> result = attribute(exported, "markov", converters_only=True)
    >>> (result["conversions"] * 7).round(9).tolist(), result.attrs["markov_mode"]
    ([8.0, 12.0, 8.0], 'converters_only')
    """
    _check_model(model)
    touch_level = _kind(journeys)
    opts = _resolve_options(model, touch_level, options)
    return _attribute(journeys, model, opts, {})


def compare_models(
    journeys: pd.DataFrame | ir.Table | Journeys,
    models: Sequence[str] | None = None,
    *,
    metric: str = "value",
    **options: Any,
) -> pd.DataFrame:
    """Side-by-side credit of several models: channels x models.

    Parameters
    ----------
    journeys
        A path table (pandas DataFrame or ibis table) or :class:`Journeys` (see
        :func:`attribute`).
    models
        Model names; default every model that applies to the input (all of :data:`MODELS` for
        journeys; all but ``w_shaped`` and ``full_path`` for a path table), and ``markov`` only
        where it can run: on converting journeys alone (no non-converting ones) it is left out
        unless ``converters_only=True`` is given, and ``attrs["skipped"]`` says why. Named
        explicitly, ``markov`` on such input is refused as :func:`attribute` refuses it.
    metric
        ``"value"`` (default) or ``"conversions"``: which credit to show.
    **options
        Model options as in :func:`attribute`; each model receives those it takes (``by`` goes to
        all). An option no listed model takes is an error.

    Returns
    -------
    pandas.DataFrame
        Index: channel (or campaign), sorted; one float column per model, in the given order.
        ``attrs["markov_mode"]``: the Markov mode that ran (see :func:`attribute`), when it
        ran; ``attrs["skipped"]``: ``{model: reason}`` of default models left out (empty when
        none).

    Raises
    ------
    AttributionError
        Unknown model, an option no model takes, a bad ``metric``, or what :func:`attribute`
        raises.

    Notes
    -----
    Each model is one engine query over the journeys; on large lazy journeys call
    :meth:`Journeys.materialize` first so they are built once, not once per model.
    """
    touch_level = _kind(journeys)
    if metric not in ("value", "conversions"):
        raise AttributionError(f"`metric` must be 'value' or 'conversions', got {metric!r}")
    default = models is None
    if models is None:
        models = [m for m in MODELS if touch_level or m not in TOUCH_LEVEL_ONLY]
    elif isinstance(models, str):
        models = [models]
    models = list(models)
    for m in models:
        _check_model(m)
    accepted = {m: _defaults(m, touch_level) for m in models}
    unused = [k for k in options if not any(k in a for a in accepted.values())]
    if unused:
        takes = sorted({k for a in accepted.values() for k in a})
        raise AttributionError(
            f"option(s) {_names(unused)} are taken by none of the models {_names(models)}; "
            f"options they take: {_names(takes) or 'none'}"
        )
    memo: dict[Any, Any] = {}
    skipped: dict[str, str] = {}
    if default and not options.get("converters_only", False):
        # a comparison by default shows what can run; asked for by name, Markov refuses instead
        reason = _markov_refusal(journeys, memo, query=True)
        if reason:
            models.remove("markov")
            skipped["markov"] = reason
    columns = {}
    attrs: dict[str, Any] = {"skipped": skipped}
    for m in models:
        opts = _resolve_options(m, touch_level, {k: v for k, v in options.items() if k in accepted[m]})
        result = _attribute(journeys, m, opts, memo)
        columns[m] = result[metric]
        if "markov_mode" in result.attrs:
            attrs["markov_mode"] = result.attrs["markov_mode"]
    out = pd.concat(columns, axis=1).fillna(0.0) if columns else pd.DataFrame()
    out.columns.name = "model"
    out.attrs.update(attrs)
    return out


# ----------------------------------------------------------------------------------- dispatching


def _check_model(name: object) -> None:
    if name not in MODELS:
        raise AttributionError(f"unknown attribution model {name!r}; expected one of {_names(MODELS)}")


def _kind(journeys: object) -> bool:
    """True for touch-level journeys, False for a path table."""
    if isinstance(journeys, Journeys):
        return True
    if isinstance(journeys, pd.DataFrame | ir.Table):
        return False
    raise AttributionError(
        f"`journeys` must be a path table (pandas DataFrame or ibis table) or `Journeys` from `touch_journeys`, "
        f"got {type(journeys).__name__}"
    )


def _defaults(model: str, touch_level: bool) -> dict[str, Any]:
    """Options ``model`` takes on this kind of input, with their defaults."""
    opts: dict[str, Any] = {}
    if model == "last_non_direct":
        opts["direct"] = "Direct"
    if model == "time_decay" and touch_level:
        opts["half_life_days"] = 7.0
    if model == "markov":
        opts.update(order=1, collapse_repeats=True, converters_only=False)
    if touch_level:
        opts["by"] = "channel"
    return opts


def _resolve_options(model: str, touch_level: bool, options: dict[str, Any]) -> dict[str, Any]:
    defaults = _defaults(model, touch_level)
    if not touch_level and model in TOUCH_LEVEL_ONLY:
        raise AttributionError(
            f"model `{model}` needs lead- and opportunity-creation touches, which a path table does not "
            "have; use touch-level journeys (`touch_journeys(...)`) or another model"
        )
    unknown = [k for k in options if k not in defaults]
    if unknown:
        kind = "touch-level journeys" if touch_level else "a path table"
        hint = ""
        if "half_life_days" in unknown and model == "time_decay":
            hint = " (a path table has no dates: one position is one half-life)"
        if "by" in unknown and not touch_level:
            hint = " (`by` needs touch-level journeys)"
        raise AttributionError(
            f"model `{model}` on {kind} takes no option {_names(unknown)}{hint}; "
            f"it takes: {_names(defaults) or 'no options'}"
        )
    opts = {**defaults, **options}
    if "by" in opts:
        _check_by(opts["by"])
    if "direct" in opts:
        direct = opts["direct"]
        names = [direct] if isinstance(direct, str) else None
        if names is None and isinstance(direct, Iterable):
            names = list(direct)
        if not names or not all(isinstance(n, str) for n in names):
            raise AttributionError(f"`direct` must be a channel name or a list of names, got {direct!r}")
        opts["direct"] = tuple(n.strip() for n in names)
    if "half_life_days" in opts:
        h = opts["half_life_days"]
        if isinstance(h, bool) or not isinstance(h, int | float) or not np.isfinite(h) or h <= 0:
            raise AttributionError(f"`half_life_days` must be a number of days > 0, got {h!r}")
        opts["half_life_days"] = float(h)
    if "order" in opts:
        k = opts["order"]
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise AttributionError(f"`order` must be a whole number >= 1, got {k!r}")
        opts["order"] = int(k)
    for flag in ("collapse_repeats", "converters_only"):
        if flag in opts and not isinstance(opts[flag], bool | np.bool_):
            raise AttributionError(f"`{flag}` must be True or False, got {opts[flag]!r}")
    return opts


def _check_by(by: object) -> None:
    if by not in _BY:
        raise AttributionError(f"`by` must be one of {_names(_BY)}, got {by!r}")


# ------------------------------------------------------------------------------------ path tables


@dataclass(frozen=True, eq=False)
class _PathTable:
    """A validated path table in its engine: ``path`` (string) and ``conversions``, ``value``,
    ``nulls`` (float64, never missing; an absent or entirely empty ``value`` or ``nulls`` is 0),
    with the totals validation computed on the way."""

    table: ir.Table
    conversions: float
    nulls: float
    #: every path is channels joined by exactly " > ", so splitting on it needs no trimming
    canonical: bool


def _path_table(journeys: pd.DataFrame | ir.Table) -> _PathTable:
    if isinstance(journeys, pd.DataFrame):
        return _frame_path_table(journeys)
    return _ibis_path_table(journeys)


def _check_path_columns(columns: Iterable[str]) -> None:
    missing = [c for c in ("path", "conversions") if c not in columns]
    if missing:
        raise AttributionError(
            f"{_WHERE}: missing column(s) {_names(missing)}; expected `path`, `conversions` and optionally "
            "`value`, `nulls`"
        )


def _frame_path_table(df: pd.DataFrame) -> _PathTable:
    """Validate a pandas path table, reporting every problem together (rows are index labels),
    and ship it to the engine as an in-memory table."""
    _check_path_columns(df.columns)
    problems: list[str] = []

    def problem(col: str, mask: np.ndarray, one: str, many: str, expected: str) -> None:
        problems.append(f"{_WHERE}, column `{col}`: {_rows(mask, df.index, one, many)}; {expected}")

    numbers: dict[str, np.ndarray] = {}
    for col in _NUMBERS:
        missing = df[col].isna().to_numpy(dtype=bool) if col in df.columns else None
        if missing is None or (col in _ENTIRELY_EMPTY_IS_ZERO and missing.all()):
            numbers[col] = np.zeros(len(df))  # absent: nothing of that kind was exported
            continue
        x = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        finite = np.isfinite(x)
        if not finite.all():
            problem(
                col, ~finite, "missing or non-numeric value", "missing or non-numeric values", "expected a number >= 0"
            )
        if (finite & (x < 0)).any():
            must = "values must be >= 0" if col == "value" else "counts must be >= 0"
            problem(col, finite & (x < 0), "negative value", "negative values", must)
        numbers[col] = np.where(finite, x, 0.0)
    orphan = (numbers["value"] > 0) & (numbers["conversions"] == 0)
    if orphan.any():
        problem("value", orphan, _ORPHAN[0], _ORPHAN[1], _ORPHAN[2])

    raw = df["path"]
    if isinstance(raw.dtype, pd.StringDtype):
        text = pa.array(raw, type=pa.string())  # no copy when arrow-backed, pandas' default
    else:  # object: anything may be in it; what is not text is an empty path
        text = pa.array([s if isinstance(s, str) else None for s in raw], type=pa.string())
    # one regular-expression pass in the usual case (every path valid and written "A > B")
    flagged = pc.fill_null(pc.match_substring_regex(text, f"{_EMPTY_CHANNEL}|{_NOT_CANONICAL}"), False)
    canonical = not pc.any(flagged).as_py()
    bad = text.is_null().to_numpy(zero_copy_only=False)
    if not canonical:
        bad = bad | pc.fill_null(pc.match_substring_regex(text, _EMPTY_CHANNEL), False).to_numpy(zero_copy_only=False)
        canonical = not pc.any(pc.match_substring_regex(text, _NOT_CANONICAL)).as_py()
    if bad.any():
        problem("path", bad, _EMPTY[0], _EMPTY[1], _EMPTY[2])
    if problems:
        raise AttributionError("\n".join(problems))
    columns = {"path": text, **{col: pa.array(numbers[col], type=pa.float64()) for col in _NUMBERS}}
    return _PathTable(
        ibis.memtable(pa.table(columns)),
        float(numbers["conversions"].sum()),
        float(numbers["nulls"].sum()),
        canonical=canonical,
    )


def _ibis_path_table(t: ir.Table) -> _PathTable:
    """Validate a path table held by an engine, in one aggregate query; only when something is
    wrong a few example paths per problem are fetched (an engine table has no row numbers)."""
    _check_path_columns(t.columns)
    schema = t.schema()
    kinds = []
    if not (schema["path"].is_string() or schema["path"].is_null()):
        kinds.append(f"{_WHERE}, column `path`: expected text, got {schema['path']}")
    for col in _NUMBERS:
        if col in schema and not (schema[col].is_numeric() or schema[col].is_null()):
            kinds.append(f"{_WHERE}, column `{col}`: expected numbers, got {schema[col]}")
    if kinds:
        raise AttributionError("\n".join(kinds))

    checks: dict[str, tuple[str, ir.BooleanValue, str, str, str]] = {}
    present: dict[str, ir.FloatingValue] = {}
    aggs: dict[str, ir.Scalar] = {}
    for col in _NUMBERS:
        if col not in schema:
            continue
        x = t[col].cast("float64")
        if not schema[col].is_null():
            present[col] = x
        aggs[f"{col}_given"] = x.notnull().cast("int64").sum()
        unusable = x.isnull() | x.isnan() | x.isinf() if schema[col].is_floating() else x.isnull()
        checks[f"{col}_missing"] = (
            col,
            unusable,
            "missing or non-numeric value",
            "missing or non-numeric values",
            "expected a number >= 0",
        )
        must = "values must be >= 0" if col == "value" else "counts must be >= 0"
        checks[f"{col}_negative"] = (col, x < 0, "negative value", "negative values", must)
    if "value" in present:
        orphan = (present["value"] > 0) & (t.conversions.cast("float64") == 0)
        checks["value_orphan"] = ("value", orphan, *_ORPHAN)
    path = t.path.cast("string")
    checks["path_empty"] = ("path", path.isnull() | path.re_search(_EMPTY_CHANNEL), *_EMPTY)
    for key, (_, mask, *_) in checks.items():
        aggs[key] = mask.fill_null(False).cast("int64").sum()
    aggs["not_canonical"] = path.re_search(_NOT_CANONICAL).fill_null(False).cast("int64").sum()
    for col, x in present.items():
        aggs[f"{col}_total"] = x.sum(where=x.notnull() & ~x.isnan() & ~x.isinf() & (x >= 0))
    row = {k: _zero_if_null(v) for k, v in t.aggregate(**aggs).execute().iloc[0].to_dict().items()}

    given = {col: int(row.get(f"{col}_given", 0)) for col in _NUMBERS}
    empty = [c for c in _ENTIRELY_EMPTY_IS_ZERO if given[c] == 0]  # absent, or not one value: 0
    problems = []
    for key, (col, mask, one, many, expected) in checks.items():
        hits = int(row[key])
        if hits == 0 or col in empty:
            continue
        shown = path.fill_null("<empty>")
        examples = t.filter(mask.fill_null(False)).select(p=shown).distinct().order_by("p").limit(_SHOWN_ROWS)
        quoted = ", ".join(_short(p) for p in examples.execute()["p"].tolist())
        more = ", ..." if hits > _SHOWN_ROWS else ""
        what = one if hits == 1 else many
        problems.append(f"{_WHERE}, column `{col}`: {hits} {what} (paths {quoted}{more}); {expected}")
    if problems:
        raise AttributionError("\n".join(problems))

    def number(col: str) -> ir.FloatingValue:
        return ibis.literal(0.0) if col in empty or col not in present else present[col]

    table = t.select(path=path, **{col: number(col) for col in _NUMBERS})
    totals = {col: 0.0 if col in empty else float(row.get(f"{col}_total", 0.0)) for col in ("conversions", "nulls")}
    return _PathTable(table, totals["conversions"], totals["nulls"], canonical=int(row["not_canonical"]) == 0)


def _attribute(
    journeys: pd.DataFrame | ir.Table | Journeys, model: str, opts: dict[str, Any], memo: dict[str, Any]
) -> pd.DataFrame:
    """Run one model; ``memo`` keeps the validated input and its token table between the models
    of one comparison."""
    by = opts.get("by", "channel")

    def tokens() -> ir.Table:
        if memo.get("by") != by or "tokens" not in memo:
            if isinstance(journeys, Journeys):
                memo["tokens"] = _journey_tokens(journeys, by)
            else:
                memo["tokens"] = _path_tokens(_validated(journeys, memo))
            memo["by"] = by
        return memo["tokens"]

    attrs: dict[str, Any] = {"model": model}
    if model == "markov":
        converters_only = bool(opts["converters_only"])
        if not converters_only:
            reason = _markov_refusal(journeys, memo, query=False)
            if reason:
                raise AttributionError(reason)
        if not isinstance(journeys, Journeys) and opts["order"] == 1:
            counts = _markov_path_counts(_validated(journeys, memo), opts["collapse_repeats"], converters_only)
        else:
            markov_tokens = tokens().mutate(nulls=ibis.literal(0.0)) if converters_only else tokens()
            counts = _markov_tokens_counts(markov_tokens, opts["order"], opts["collapse_repeats"])
        if not converters_only and counts["to_conversion"].sum() > 0 and counts["to_null"].sum() == 0:
            # journeys built with their nulls, but not one of them (no lead without a won deal)
            raise AttributionError(_converting_only_message(journeys))
        credit, labels = _markov_from_counts(counts, opts["order"])
        attrs["markov_mode"] = "converters_only" if converters_only else "all_journeys"
    elif model == "shapley":
        credit, labels = _shapley_credit(tokens()), None
    else:
        credit, labels = _rule_credit(tokens(), model, opts), None
    out = _frame(credit, labels, by)
    out.attrs.update(attrs)
    return out


def _validated(journeys: pd.DataFrame | ir.Table, memo: dict[str, Any]) -> _PathTable:
    """The path table validated once per comparison."""
    if "paths" not in memo:
        memo["paths"] = _path_table(journeys)
    return memo["paths"]


def _markov_refusal(journeys: pd.DataFrame | ir.Table | Journeys, memo: dict[str, Any], *, query: bool) -> str | None:
    """Why Markov over all journeys cannot run on this input (it has conversions but no
    non-converting journeys), or None. A path table knows from validation; journeys built without
    their nulls know from how they were built; other journeys need a query (``query=True``),
    else :func:`_attribute` finds out from the transitions it counts anyway."""
    if isinstance(journeys, Journeys):
        if not journeys.has_nulls:
            return _converting_only_message(journeys)
        if not query:
            return None
        t = journeys.table
        row = t.aggregate(conversions=t.converted.any(), nulls=(~t.converted).any()).execute().iloc[0]
        has_conversions, has_nulls = bool(_zero_if_null(row["conversions"])), bool(_zero_if_null(row["nulls"]))
    else:
        p = _validated(journeys, memo)
        has_conversions, has_nulls = p.conversions > 0, p.nulls > 0
    return _converting_only_message(journeys) if has_conversions and not has_nulls else None


def _converting_only_message(journeys: object) -> str:
    if isinstance(journeys, Journeys):
        found = (
            "these journeys were built without them (`include_nulls=False`)"
            if not journeys.has_nulls
            else "these journeys have none (no lead without a won deal in the lookback)"
        )
        export = (
            "build journeys with `touch_journeys(..., include_nulls=True)` from the touchpoints of every lead, "
            "not only of those who bought"
        )
    else:
        found = "this path table has none (`nulls` absent, or empty or 0 in every row)"
        export = (
            "export the paths of the journeys that did not convert too, as column `nulls` "
            "(GA: the non-converting paths of the conversion-path report; a CRM: the touchpoints of every lead)"
        )
    return (
        f"`markov` needs non-converting journeys and {found}: with converting journeys alone the removal "
        f"effect measures how often a channel is on a converting path, not how much it adds. To fix, {export}; "
        "or pass `converters_only=True` for the documented converters-only mode (a biased estimate, see "
        "`attribute`), or use `shapley` or a rule-based model"
    )


def _frame(credit: ir.Table | pd.DataFrame, labels: list[str] | None, by: str) -> pd.DataFrame:
    """Execute per-label credit (columns ``label``, ``conversions``, ``value``) into the result."""
    if isinstance(credit, ir.Table):
        df = credit.execute()
        labels, conv, value = df["label"].tolist(), df["conversions"], df["value"]
    else:
        conv, value = credit["conversions"], credit["value"]
    names = [str(x) for x in (labels or [])]
    out = pd.DataFrame(
        {
            "conversions": np.asarray(conv, dtype="float64"),
            "value": np.asarray(value, dtype="float64"),
        },
        index=pd.Index(names, name=by, dtype="str"),
    )
    return out.sort_index(kind="stable")


# -------------------------------------------------------------------------------- token tables
#
# Every model runs on one "token table", an ibis expression with a row per touch: journey_id,
# position (1-based), n_touches, label (what is credited), previous (label of the touch before),
# channel, the journey's conversions, nulls and value (repeated on its touches),
# days_before_conversion and, for touch-level journeys, the key-moment flags. A path-table row is
# one journey weighted by its counts, so both inputs share every model's code.


def _journey_tokens(j: Journeys, by: str) -> ir.Table:
    t = j.table
    return t.select(
        journey_id=t.journey_id,
        position=t.position,
        n_touches=t.n_touches,
        label=t[by],
        previous=t[f"previous_{by}"],
        channel=t.channel,
        conversions=ibis.ifelse(t.converted, 1.0, 0.0),
        nulls=ibis.ifelse(t.converted, 0.0, 1.0),
        value=t.value,
        days_before_conversion=t.days_before_conversion,
        is_first=t.is_first,
        is_lead_creation=t.is_lead_creation,
        is_opportunity_creation=t.is_opportunity_creation,
        is_closed_won=t.is_closed_won,
    )


def _path_tokens(p: _PathTable) -> ir.Table:
    """Token table of a path table, built in its engine: each row is one journey weighted by its
    counts; its channels are the path split on ``">"`` and trimmed."""
    t = p.table
    s = t.select(
        journey_id=ibis.row_number(),
        conversions=t.conversions,
        nulls=t.nulls,
        value=t.value,
        pieces=_split(t.path, p.canonical),
    )
    s = s.mutate(n_touches=s.pieces.length())
    u = _unnest_paths(s, ["journey_id", "n_touches", "conversions", "nulls", "value"])
    label = u.piece if p.canonical else u.piece.strip()
    return u.select(
        journey_id=u.journey_id,
        position=u.position,
        n_touches=u.n_touches,
        label=label,
        previous=u.before if p.canonical else u.before.strip(),
        channel=label,
        conversions=u.conversions,
        nulls=u.nulls,
        value=u.value,
        # no dates on a path table: one position before the conversion is one half-life
        days_before_conversion=(u.n_touches - u.position).cast("float64"),
    )


def _unnests_side_by_side(t: ir.Table) -> bool:
    """Whether ``t``'s engine unnests the lists of one ``SELECT`` side by side (DuckDB does)."""
    return ibis.get_backend(t).name == "duckdb"


def _split(path: ir.StringValue, canonical: bool) -> ir.ArrayValue:
    """A path's pieces: its channels when ``canonical``, else still to be trimmed."""
    return path.split(SEPARATOR if canonical else ">")


def _unnest_paths(s: ir.Table, keep: list[str], *, position: bool = True) -> ir.Table:
    """One row per piece of the list column ``pieces``: the ``keep`` columns, ``position``
    (1-based; left out unless ``position``), ``piece`` and ``before`` (the piece before it; null
    on the first).

    DuckDB unnests several lists of one ``SELECT`` side by side, which is 10x faster there
    than indexing the list per element; other engines get the portable form.
    """
    before = ibis.array([ibis.null("string")]).concat(s.pieces[:-1])
    if _unnests_side_by_side(s):
        numbered = {"position": ibis.range(1, s.pieces.length() + 1).unnest()} if position else {}
        return s.select(*keep, **numbered, piece=s.pieces.unnest(), before=before.unnest())
    u = s.mutate(befores=before).unnest("pieces", offset="i")
    numbered = {"position": u.i + 1} if position else {}
    return u.select(*keep, **numbered, piece=u.pieces, before=u.befores[u.i])


def _exact_sum(
    x: ir.NumericValue, where: ir.BooleanValue | None = None, over: LegacyWindowBuilder | None = None
) -> ir.FloatingValue:
    """Sum (over a window, if given) as a 128-bit decimal with 18 places, then back to float64.

    DuckDB adds doubles in whatever order its threads deliver them, so a float sum changes in
    the last bits from run to run; integer arithmetic does not. Values must be below 1e20 (a
    decimal overflow is reported by the engine).
    """
    total = x.cast(_EXACT).sum(where=where)
    return (total if over is None else total.over(over)).cast("float64")


def _per_journey(t: ir.Table, order_by: str | list[str] | None = None) -> LegacyWindowBuilder:
    """Window over each journey. Partitioning by the id's hash first, then the id itself (so
    collisions cannot merge journeys), halves DuckDB's window time against the string alone."""
    return ibis.window(group_by=[t.journey_id.hash(), t.journey_id], order_by=order_by)


def _with_all_labels(tokens: ir.Table, credit: ir.Table) -> ir.Table:
    """Every label of the input, 0 where ``credit`` (label, conversions, value) has none."""
    labels = tokens.select(all_label=tokens.label).distinct()
    joined = labels.left_join(credit, labels.all_label == credit.label)
    return joined.select(
        label=joined.all_label,
        conversions=joined.conversions.fill_null(0.0),
        value=joined.value.fill_null(0.0),
    )


def _rule_credit(tokens: ir.Table, model: str, opts: dict[str, Any]) -> ir.Table:
    """Per-touch weights with window functions, summed per label, all in the engine."""
    c = tokens.filter(tokens.conversions > 0)
    whole = _per_journey(c)
    pos, n = c.position, c.n_touches
    if model == "first_touch":
        c = c.mutate(weight=ibis.ifelse(pos == 1, 1.0, 0.0))
    elif model == "last_touch":
        c = c.mutate(weight=ibis.ifelse(pos == n, 1.0, 0.0))
    elif model == "last_non_direct":
        non_direct = ~c.channel.isin(list(opts["direct"]))
        c = c.mutate(target=pos.max(where=non_direct).over(whole))
        c = c.mutate(weight=ibis.ifelse(c.position == c.target.fill_null(c.n_touches), 1.0, 0.0))
    elif model == "linear":
        c = c.mutate(weight=1.0 / n.cast("float64"))
    elif model == "time_decay":
        half_life = opts.get("half_life_days", 1.0)
        c = c.mutate(raw=ibis.literal(0.5) ** (c.days_before_conversion / half_life))
        c = c.mutate(weight=c.raw / _exact_sum(c.raw, over=whole))
    elif model == "position_based":
        c = c.mutate(
            weight=ibis.cases(
                (n == 1, 1.0),
                (n == 2, 0.5),
                ((pos == 1) | (pos == n), 0.4),
                else_=0.2 / (n - 2).cast("float64"),
            )
        )
    else:
        shares, rest_share = _KEY_SHARES[model]
        key = sum((ibis.ifelse(c[flag], s, 0.0) for flag, s in shares.items()), ibis.literal(0.0))
        c = c.mutate(key_share=key)
        c = c.mutate(is_rest=c.key_share == 0.0)
        c = c.mutate(n_rest=c.is_rest.cast("int64").sum().over(whole))
        c = c.mutate(raw=c.key_share + ibis.ifelse(c.is_rest, rest_share / c.n_rest.cast("float64"), 0.0))
        c = c.mutate(weight=c.raw / _exact_sum(c.raw, over=whole))
    credit = c.group_by("label").aggregate(
        conversions=_exact_sum(c.weight * c.conversions), value=_exact_sum(c.weight * c.value)
    )
    return _with_all_labels(tokens, credit)


def _shapley_credit(tokens: ir.Table) -> ir.Table:
    """Path-set Shapley values via their closed form (see :func:`attribute`), in the engine."""
    c = tokens.filter(tokens.conversions > 0)
    pairs = c.group_by(["journey_id", "label"]).aggregate(conversions=c.conversions.max(), value=c.value.max())
    pairs = pairs.mutate(n_labels=pairs.label.count().over(_per_journey(pairs)))
    credit = pairs.group_by("label").aggregate(
        conversions=_exact_sum(pairs.conversions / pairs.n_labels.cast("float64")),
        value=_exact_sum(pairs.value / pairs.n_labels.cast("float64")),
    )
    return _with_all_labels(tokens, credit)


def _markov_tokens_counts(tokens: ir.Table, order: int, collapse: bool) -> pd.DataFrame:
    """Transitions of a token table, aggregated in the engine (columns as :func:`_markov_solve`
    reads them).

    One query: the aggregated transitions also give the labels (every touch is the last label of
    some window) and the totals (every journey leaves exactly once).
    """
    t = tokens
    ordered = _per_journey(t, order_by="position")
    if order == 1:
        # no window at all: the previous label comes with the tokens. A repeat (same label as the
        # touch before) enters no new state, so its flow is dropped; it still carries the exit
        # when it is the journey's last touch, which leaves from the same state.
        t = t.mutate(l1=t.previous, is_last=t.position == t.n_touches)
        enters = ibis.literal(not collapse) | t.l1.isnull() | (t.l1 != t.label)
    else:
        if collapse:
            # a channel repeated back to back is one state visit (ChannelAttribution's default too)
            t = t.mutate(previous=t.label.lag().over(ordered))
            t = t.filter(t.previous.isnull() | (t.previous != t.label))
        # a transition into the state of touch j is fixed by labels j-order..j (null before the start)
        lags = {f"l{m}": t.label.lag(m).over(ordered) for m in range(1, order + 1)}
        t = t.mutate(**lags, is_last=t.label.lead().over(ordered).isnull())
        enters = ibis.literal(True)
    window = [f"l{m}" for m in range(order, 0, -1)] + ["label"]
    return (
        t.group_by(window)
        .aggregate(
            journeys=_exact_sum(t.conversions + t.nulls, where=enters),
            to_conversion=_exact_sum(t.conversions, where=t.is_last),
            to_null=_exact_sum(t.nulls, where=t.is_last),
            to_value=_exact_sum(t.value, where=t.is_last),
        )
        .execute()
    )


def _markov_path_counts(p: _PathTable, collapse: bool, converters_only: bool) -> pd.DataFrame:
    """First-order transitions of a path table, aggregated in its engine without a token table.

    The (piece before, piece) pairs of every path and the last pieces are grouped untrimmed
    first, which leaves a few hundred groups, and only those are trimmed and grouped again:
    trimming every piece, numbering journeys and the window functions of the token table took
    most of the time on large path tables. Sums stay exact decimals until the end, so the
    result is the token table's.
    """
    t = p.table
    nulls = ibis.literal(0.0) if converters_only else t.nulls
    s = t.select(journeys=t.conversions + nulls, pieces=_split(t.path, p.canonical))
    u = _unnest_paths(s, ["journeys"], position=False)
    raw = u.group_by(["before", "piece"]).aggregate(journeys=u.journeys.cast(_EXACT).sum())
    pairs = raw.select(l1=raw.before.strip(), label=raw.piece.strip(), journeys=raw.journeys)
    # a repeat enters no new state; at order 1 that changes nothing but round-off (a self-loop
    # only delays absorption), so it is dropped unless asked to keep it
    enters = ibis.literal(not collapse) | pairs.l1.isnull() | (pairs.l1 != pairs.label)
    pairs = pairs.group_by(["l1", "label"]).aggregate(journeys=pairs.journeys.sum(where=enters).cast("float64"))
    pairs = pairs.mutate(to_conversion=0.0, to_null=0.0, to_value=0.0)

    # the last piece read from the text: no second use of the split lists, which the engine
    # would then keep in memory for both
    e = t.select(last=t.path.re_extract(r"[^>]*$", 0), conversions=t.conversions, nulls=nulls, value=t.value)
    exits = e.group_by("last").aggregate(**{k: e[k].cast(_EXACT).sum() for k in _NUMBERS})
    exits = exits.select(label=exits["last"].strip(), **{k: exits[k] for k in _NUMBERS})
    exits = exits.group_by("label").aggregate(**{k: exits[k].sum().cast("float64") for k in _NUMBERS})
    # an exit row has no flow from the start: it only carries the exits of its state
    exits = exits.select(
        l1=ibis.null("string"),
        label=exits.label,
        journeys=0.0,
        to_conversion=exits.conversions,
        to_null=exits.nulls,
        to_value=exits.value,
    )
    return pairs.select(*exits.columns).union(exits).execute()


def _markov_from_counts(counts: pd.DataFrame, order: int) -> tuple[pd.DataFrame, list[str]]:
    """Credit from aggregated transitions (the engine returns groups in any order; sorted, the
    float work is the same every run)."""
    window = [f"l{m}" for m in range(order, 0, -1)] + ["label"]
    numbers = ("journeys", "to_conversion", "to_null", "to_value")
    counts = counts.sort_values(window + list(numbers), na_position="first", kind="stable", ignore_index=True)
    labels = sorted(set(counts["label"].tolist()))
    counts = counts.fillna({c: 0.0 for c in numbers})
    conv, value = _markov_solve(
        counts, labels, order, float(counts["to_conversion"].sum()), float(counts["to_value"].sum())
    )
    return pd.DataFrame({"conversions": conv, "value": value}), labels


def _markov_solve(
    counts: pd.DataFrame, labels: list[str], order: int, total_conv: float, total_value: float
) -> tuple[np.ndarray, np.ndarray]:
    """Removal effects from aggregated transitions by linear algebra (dense numpy solves).

    ``counts`` has label columns ``l<order>..l1, label`` (a window of ``order + 1`` touches,
    null before the start) with ``journeys`` passing from state ``(l<order>..l1)`` (the start
    when ``l1`` is null) to state ``(l<order-1>..l1, label)``, and ``to_conversion``, ``to_null``
    and ``to_value`` leaving the latter for the absorbing states.
    """
    k = len(labels)
    if total_conv <= 0 or counts.empty:
        return np.zeros(k), np.zeros(k)
    code = {label: i for i, label in enumerate(labels)}
    cols = [f"l{m}" for m in range(order, 0, -1)] + ["label"]
    window = np.column_stack(
        [counts[c].map(lambda x: -1 if x is None or pd.isna(x) else code[x]).to_numpy("int64") for c in cols]
    )
    dst, src = window[:, 1:], window[:, :-1]
    from_start = window[:, -2] == -1
    # every state is entered at least once, so the entered states are all the states
    states, inverse = np.unique(np.vstack([dst, src[~from_start]]), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    n_states = len(states)
    if n_states > _MAX_STATES:
        raise AttributionError(
            f"`markov` with order={order} has {n_states} states (limit {_MAX_STATES}); use a lower `order` "
            "or group rare channels or campaigns"
        )
    start, size = n_states, n_states + 1
    dst_id = inverse[: len(dst)]
    src_id = np.full(len(dst), start)
    src_id[~from_start] = inverse[len(dst) :]
    flow = counts["journeys"].to_numpy("float64")
    matrix = np.bincount(src_id * size + dst_id, flow, minlength=size * size).reshape(size, size)
    exits = {
        name: np.bincount(dst_id, counts[name].to_numpy("float64"), minlength=size)
        for name in ("to_conversion", "to_null", "to_value")
    }
    out = matrix.sum(axis=1) + exits["to_conversion"] + exits["to_null"]
    out[out == 0] = 1.0  # a state only on paths without journeys: never reached, no division by 0
    q = matrix / out[:, None]
    rewards = np.column_stack([exits["to_conversion"] / out, exits["to_value"] / out])

    def absorbed(keep: np.ndarray) -> np.ndarray:
        """(P, V) from the start when only the states in ``keep`` remain; the others lead to null."""
        idx = np.flatnonzero(keep)
        a = np.eye(len(idx)) - q[np.ix_(idx, idx)]
        visits = np.linalg.solve(a.T, (idx == start).astype(float))  # expected visits from the start
        return visits @ rewards[idx]

    base = absorbed(np.ones(size, dtype=bool))
    contains = np.zeros((size, k), dtype=bool)
    member = states >= 0
    contains[np.nonzero(member)[0], states[member]] = True
    effects = np.zeros((k, 2))
    for c in range(k):
        if contains[:, c].any():  # a label only on paths without journeys has no effect
            removed = absorbed(~contains[:, c])
            effects[c] = np.divide(base - removed, base, out=np.zeros(2), where=base > 0)
    effects = np.clip(effects, 0.0, 1.0)  # round-off can leave -1e-17
    totals = effects.sum(axis=0)
    shares = np.divide(effects, totals, out=np.zeros_like(effects), where=totals > 0)
    return shares[:, 0] * total_conv, shares[:, 1] * total_value


# ------------------------------------------------------------------------------ contract input


_REQUIRED = {
    "touchpoints": {"lead_id": "string", "touched_at": "timestamp", "channel": "string"},
    "leads": {"lead_id": "string", "created_at": "timestamp"},
    "opportunities": {
        "opportunity_id": "string",
        "lead_id": "string",
        "created_at": "timestamp",
        "closed_at": "timestamp",
        "stage": "string",
        "amount": "numeric",
    },
}


def _check_tables(touchpoints: ir.Table | None, leads: ir.Table, opportunities: ir.Table, *, own_channel: bool) -> None:
    """Columns present and of the contract's types; every problem reported at once."""
    problems = []
    for name, table in (("touchpoints", touchpoints), ("leads", leads), ("opportunities", opportunities)):
        if table is None and name == "touchpoints":
            continue
        if not isinstance(table, ir.Table):
            problems.append(f"`{name}` must be an ibis table, got {type(table).__name__}")
            continue
        schema = table.schema()
        required = dict(_REQUIRED[name])
        if name == "leads" and own_channel:
            required["channel"] = "string"
        for col, kind in required.items():
            if col not in schema:
                hint = (
                    " (the lead's own channel; or `own_channel=False`)" if (name, col) == ("leads", "channel") else ""
                )
                problems.append(f"`{name}`: missing column `{col}`{hint}")
                continue
            typ = schema[col]
            ok = (
                typ.is_null()
                or {  # an all-empty column read from a file has type null
                    "timestamp": typ.is_timestamp() or typ.is_date(),
                    "numeric": typ.is_numeric(),
                    "string": typ.is_string() or typ.is_integer(),
                }[kind]
            )
            if not ok:
                problems.append(
                    f"`{name}`, column `{col}`: expected {kind}, got {typ}; load tables with "
                    "`kpi_helpers.source`, which types them per the contract"
                )
    if problems:
        raise AttributionError("\n".join(problems))


# ------------------------------------------------------------------------------------- helpers


def _as_timestamp(x: object, name: str) -> dt.datetime | None:
    if x is None:
        return None
    try:
        ts = pd.Timestamp(x)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise AttributionError(f"`{name}` must be a date or date-time, got {x!r}") from exc
    if ts is pd.NaT or ts.tzinfo is not None:
        raise AttributionError(f"`{name}` must be a time-zone-naive date or date-time, got {x!r}")
    return ts.to_pydatetime()


def _rows(mask: np.ndarray, labels: pd.Index, one: str, many: str) -> str:
    """``"2 negative values (rows 3, 7)"``; rows are the table's index labels."""
    hit = np.flatnonzero(mask)
    shown = ", ".join(str(labels[i]) for i in hit[:_SHOWN_ROWS])
    more = ", ..." if len(hit) > _SHOWN_ROWS else ""
    if len(hit) == 1:
        return f"1 {one} (row {shown})"
    return f"{len(hit)} {many} (rows {shown}{more})"


def _names(items: Iterable[object]) -> str:
    return ", ".join(f"`{x}`" for x in items)


def _short(text: object, limit: int = 40) -> str:
    """A value from the data quoted for a message, cut to ``limit`` characters."""
    s = str(text)
    return repr(s if len(s) <= limit else s[: limit - 3] + "...")


def _zero_if_null(x: Any) -> Any:
    """An aggregate of no rows (NULL, or NaN through pandas) as 0."""
    return 0 if x is None or pd.isna(x) else x
