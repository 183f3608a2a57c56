"""Multi-touch attribution: credit conversions and their value to the channels that touched them.

Two kinds of input are accepted by :func:`attribute`:

- a **path table**, the shape web analytics conversion-path exports have: a pandas DataFrame with
  columns ``path`` (channels joined by ``" > "``), ``conversions`` and, optionally, ``value`` and
  ``nulls`` (journeys of the same path that did not convert; both default to 0);
- **touch-level journeys** built by :func:`touch_journeys` from the contract's ``touchpoints``,
  ``leads`` and ``opportunities`` tables. They stay in the database engine: rule-based models
  weight every touch there with window functions and sum per channel; ``markov`` counts the
  transitions between channels there and only solves the small chain in numpy; ``shapley`` sums
  there too. pandas only ever sees aggregated rows.

A path table is shipped to the engine as a small in-memory table and goes through the same code,
so both inputs give the same credit wherever both apply.

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

from .exceptions import AttributionError

if TYPE_CHECKING:
    from ibis.expr.builders import LegacyWindowBuilder

__all__ = [
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


# --------------------------------------------------------------------------------------------- public


def describe_model(name: str) -> str:
    """Plain-words note of what attribution model ``name`` assumes (for notebooks and reports).

    Parameters
    ----------
    name
        One of :data:`MODELS`.

    Returns
    -------
    str
        One or two sentences.

    Raises
    ------
    AttributionError
        When ``name`` is not a model.

    Examples
    --------
    >>> describe_model("linear").split(":")[0]
    'Linear'
    """
    _check_model(name)
    return _DESCRIPTIONS[name]


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
          (the deal's ``amount``; 0 when not converted), repeated on every touch of the journey.
    unattributed
        Won deals in the window without any touch at or before ``closed_at``
        (``opportunity_id``, ``lead_id``, ``closed_at``, ``amount``): they are not journeys, so no
        model credits them. Count them in reports; ``None`` when unknown.
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
            ``journeys``, ``conversions``, ``nulls``, ``value`` and ``touches``; when
            :attr:`unattributed` is known also ``unattributed_conversions`` and
            ``unattributed_value`` (won deals without any touch, which no model credits).
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
            u = self.unattributed
            urow = u.aggregate(n=u.count(), value=_exact_sum(u.amount)).execute()
            out["unattributed_conversions"] = int(urow["n"].iloc[0])
            out["unattributed_value"] = float(_zero_if_null(urow["value"].iloc[0]))
        return out


def touch_journeys(
    touchpoints: ir.Table,
    leads: ir.Table,
    opportunities: ir.Table,
    *,
    start: dt.date | dt.datetime | str | None = None,
    end: dt.date | dt.datetime | str | None = None,
    lookback_days: int = 365,
    include_nulls: bool = True,
) -> Journeys:
    """Build touch-level journeys from the contract tables, lazily, in the database engine.

    Converting journeys are the won opportunities with a ``lead_id`` closed in ``[start, end)``,
    one journey per won deal, made of the lead's touches at or before the deal's ``closed_at``;
    their value is the deal's ``amount``. Non-converting journeys (nulls, used by ``markov``) are
    the leads created in ``[start - lookback_days, end)`` that have no won deal closed before
    ``end``, made of their touches before ``end``. Journeys without any touch are left out; won
    deals left out that way are in :attr:`Journeys.unattributed`.

    Parameters
    ----------
    touchpoints, leads, opportunities
        ibis tables typed per the contract (:mod:`kpi_helpers.schema`): timestamps for
        ``touched_at``, ``created_at`` and ``closed_at``; numeric ``amount``; ``stage`` open, won or
        lost (compared trimmed and case-insensitively). ``touchpoints.campaign`` may be absent.
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
    _check_tables(touchpoints, leads, opportunities)

    def label(col: ir.StringValue) -> ir.StringValue:
        # labels are used as loaded (the contract loader validates them); only nulls get one
        return col.fill_null(NOT_SET)

    campaign = touchpoints.campaign.cast("string") if "campaign" in touchpoints.columns else ibis.null().cast("string")
    tp = touchpoints.select(
        tp_lead_id=touchpoints.lead_id.cast("string"),
        touched_at=touchpoints.touched_at.cast("timestamp"),
        channel=label(touchpoints.channel.cast("string")),
        campaign=label(campaign),
    )
    ld = leads.select(l_lead_id=leads.lead_id.cast("string"), lead_created_at=leads.created_at.cast("timestamp"))
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
    joined = journeys.join(tp, [journeys.lead_id == tp.tp_lead_id, in_journey]).drop("tp_lead_id")
    touches = joined

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

    touched = joined.filter(joined.converted).select(tj=joined.journey_id).distinct()
    untouched = conv.anti_join(touched, (ibis.literal("opportunity:") + conv.opportunity_id) == touched.tj)
    unattributed = untouched.select(
        opportunity_id=untouched.opportunity_id,
        lead_id=untouched.lead_id,
        closed_at=untouched.converted_at,
        amount=untouched.value,
    )
    return Journeys(table, unattributed, has_nulls=include_nulls)


def attribute(journeys: pd.DataFrame | Journeys, model: str, **options: Any) -> pd.DataFrame:
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
        A path table (pandas DataFrame: ``path``, ``conversions``, optional ``value`` and
        ``nulls``; counts >= 0; ``value`` only where there are conversions) or :class:`Journeys`.
        Channels in a path are split on ``">"`` and trimmed; a channel repeated in a path is a
        repeated touch.
    model
        One of :data:`MODELS`.
    **options
        ``direct`` (``last_non_direct``: a name or names of direct channels, default
        ``"Direct"``); ``half_life_days`` (``time_decay`` on journeys, > 0, default 7);
        ``order`` (int >= 1, default 1) and ``collapse_repeats`` (bool, default True) for
        ``markov``; ``by`` (journeys only: ``"channel"`` or ``"campaign"``, the label credited).

    Returns
    -------
    pandas.DataFrame
        Indexed by channel (or campaign), sorted, every label of the input present (0 if not
        credited); float columns ``conversions`` and ``value``. ``attrs["model"]`` holds the
        model name.

    Raises
    ------
    AttributionError
        Unknown model (the message lists them), an option the model does not take, a bad option
        value, ``w_shaped``/``full_path`` on a path table, or an invalid path table (all its
        problems at once: missing columns, empty paths or channels, negative or non-numeric
        counts, with rows).

    Examples
    --------
    The published Markov example [4]_: one conversion on ``C1 > C2 > C3``, nulls on ``C1`` and
    ``C2 > C3``.

    >>> paths = pd.DataFrame({"path": ["C1 > C2 > C3", "C1", "C2 > C3"],
    ...                       "conversions": [1, 0, 0], "nulls": [0, 1, 1]})
    >>> attribute(paths, "markov")["conversions"].round(12).tolist()
    [0.2, 0.4, 0.4]
    >>> attribute(paths, "linear")["conversions"].round(6).tolist()
    [0.333333, 0.333333, 0.333333]
    """
    _check_model(model)
    touch_level = _kind(journeys)
    opts = _resolve_options(model, touch_level, options)
    return _attribute(journeys, model, opts, {})


def compare_models(
    journeys: pd.DataFrame | Journeys,
    models: Sequence[str] | None = None,
    *,
    metric: str = "value",
    **options: Any,
) -> pd.DataFrame:
    """Side-by-side credit of several models: channels x models.

    Parameters
    ----------
    journeys
        A path table or :class:`Journeys` (see :func:`attribute`).
    models
        Model names; default every model that applies to the input (all of :data:`MODELS` for
        journeys; all but ``w_shaped`` and ``full_path`` for a path table).
    metric
        ``"value"`` (default) or ``"conversions"``: which credit to show.
    **options
        Model options as in :func:`attribute`; each model receives those it takes (``by`` goes to
        all). An option no listed model takes is an error.

    Returns
    -------
    pandas.DataFrame
        Index: channel (or campaign), sorted; one float column per model, in the given order.

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
    columns = {}
    for m in models:
        opts = _resolve_options(m, touch_level, {k: v for k, v in options.items() if k in accepted[m]})
        columns[m] = _attribute(journeys, m, opts, memo)[metric]
    out = pd.concat(columns, axis=1).fillna(0.0) if columns else pd.DataFrame()
    out.columns.name = "model"
    return out


# ----------------------------------------------------------------------------------- dispatching


def _check_model(name: object) -> None:
    if name not in MODELS:
        raise AttributionError(f"unknown attribution model {name!r}; expected one of {_names(MODELS)}")


def _kind(journeys: object) -> bool:
    """True for touch-level journeys, False for a path table."""
    if isinstance(journeys, Journeys):
        return True
    if isinstance(journeys, pd.DataFrame):
        return False
    raise AttributionError(
        f"`journeys` must be a path table (pandas DataFrame) or `Journeys` from `touch_journeys`, "
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
        opts.update(order=1, collapse_repeats=True)
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
    if "collapse_repeats" in opts and not isinstance(opts["collapse_repeats"], bool | np.bool_):
        raise AttributionError(f"`collapse_repeats` must be True or False, got {opts['collapse_repeats']!r}")
    return opts


def _check_by(by: object) -> None:
    if by not in _BY:
        raise AttributionError(f"`by` must be one of {_names(_BY)}, got {by!r}")


# ------------------------------------------------------------------------------------ path tables


@dataclass(frozen=True, eq=False)
class _Paths:
    """A validated path table, tokenised: one entry per touch, channels coded by sorted name."""

    channels: np.ndarray  # sorted unique labels
    path: np.ndarray  # per touch: row of the table (0-based, ascending)
    code: np.ndarray  # per touch: index into channels
    position: np.ndarray  # per touch: 1-based position in its path
    code_before: np.ndarray  # per touch: code of the touch before in its path, -1 on the first
    length: np.ndarray  # per row: touches in the path
    conversions: np.ndarray  # per row
    value: np.ndarray  # per row
    nulls: np.ndarray  # per row


def _parse_path_table(df: pd.DataFrame) -> _Paths:
    """Validate a path table once, reporting every problem together, and tokenise it."""
    where = "`path table`"
    missing = [c for c in ("path", "conversions") if c not in df.columns]
    if missing:
        raise AttributionError(
            f"{where}: missing column(s) {_names(missing)}; expected `path`, `conversions` and optionally "
            "`value`, `nulls`"
        )
    problems: list[str] = []

    def problem(col: str, mask: np.ndarray, one: str, many: str, expected: str) -> None:
        problems.append(f"{where}, column `{col}`: {_rows(mask, df.index, one, many)}; {expected}")

    numbers: dict[str, np.ndarray] = {}
    for col in ("conversions", "value", "nulls"):
        if col not in df.columns:
            numbers[col] = np.zeros(len(df))
            continue
        x = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        finite = np.isfinite(x)
        if not finite.all():
            problem(col, ~finite, "missing or non-numeric value", "such values", "expected a number >= 0")
        if (finite & (x < 0)).any():
            must = "values must be >= 0" if col == "value" else "counts must be >= 0"
            problem(col, finite & (x < 0), "negative value", "negative values", must)
        numbers[col] = np.where(finite, x, np.nan)
    orphan = (numbers["value"] > 0) & (numbers["conversions"] == 0)
    if orphan.any():
        problem(
            "value",
            orphan,
            "value without conversions",
            "values without conversions",
            "value belongs to conversions, so `conversions` must be > 0 where `value` is",
        )

    raw = pd.Series(df["path"].to_numpy(dtype=object), dtype=object)
    is_text = raw.map(lambda s: isinstance(s, str)).to_numpy(dtype=bool)
    tokens = raw.where(is_text, "").str.split(">").explode().str.strip()
    rows = tokens.index.to_numpy(dtype="int64")
    empty = ~is_text
    empty[rows[(tokens == "").to_numpy()]] = True
    if empty.any():
        problem(
            "path",
            empty,
            "empty path or channel",
            "empty paths or channels",
            "expected channels joined by ' > ', e.g. 'Search > Email'",
        )
    if problems:
        raise AttributionError("\n".join(problems))
    numbers = {k: np.nan_to_num(v) for k, v in numbers.items()}  # NaN only marked invalid rows

    codes, channels = pd.factorize(tokens.to_numpy(dtype=object), sort=True)
    codes = codes.astype("int64")
    length = np.bincount(rows, minlength=len(df))
    first_of_row = np.searchsorted(rows, rows, side="left")
    position = np.arange(len(rows)) - first_of_row + 1
    code_before = np.where(position > 1, np.r_[-1, codes[:-1]], -1)
    return _Paths(
        channels=np.asarray(channels, dtype=object),
        path=rows,
        code=codes,
        position=position,
        code_before=code_before,
        length=length,
        conversions=numbers["conversions"],
        value=numbers["value"],
        nulls=numbers["nulls"],
    )


def _attribute(
    journeys: pd.DataFrame | Journeys, model: str, opts: dict[str, Any], memo: dict[str, Any]
) -> pd.DataFrame:
    """Run one model; ``memo`` keeps the token table between the models of one comparison."""
    by = opts.get("by", "channel")
    if memo.get("by") != by or "tokens" not in memo:
        if isinstance(journeys, Journeys):
            tokens = _journey_tokens(journeys, by)
        else:
            tokens = _path_tokens(_parse_path_table(journeys))
        memo.update(tokens=tokens, by=by)
    tokens = memo["tokens"]
    if model == "markov":
        if isinstance(journeys, Journeys) and not journeys.has_nulls:
            raise AttributionError(
                "`markov` needs the non-converting journeys; build them with `touch_journeys(..., include_nulls=True)`"
            )
        credit, labels = _markov_credit(tokens, opts["order"], opts["collapse_repeats"])
    elif model == "shapley":
        credit, labels = _shapley_credit(tokens), None
    else:
        credit, labels = _rule_credit(tokens, model, opts), None
    out = _frame(credit, labels, by)
    out.attrs["model"] = model
    return out


def _frame(credit: ir.Table | pd.DataFrame, labels: list[str] | None, by: str) -> pd.DataFrame:
    """Execute per-label credit (columns ``label``, ``conversions``, ``value``) into the result."""
    if isinstance(credit, ir.Table):
        df = credit.execute()
        labels, conv, value = df["label"].tolist(), df["conversions"], df["value"]
    else:
        conv, value = credit["conversions"], credit["value"]
    out = pd.DataFrame(
        {
            "conversions": np.asarray(conv, dtype="float64"),
            "value": np.asarray(value, dtype="float64"),
        },
        index=pd.Index([str(x) for x in labels], name=by, dtype="str"),
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


def _path_tokens(p: _Paths) -> ir.Table:
    n = p.length[p.path]
    df = pd.DataFrame(
        {
            "journey_id": p.path,
            "position": p.position,
            "n_touches": n,
            "label": p.channels[p.code],
            "previous": np.where(p.position > 1, p.channels[np.maximum(p.code_before, 0)], None),
            "channel": p.channels[p.code],
            "conversions": p.conversions[p.path],
            "nulls": p.nulls[p.path],
            "value": p.value[p.path],
            # no dates on a path table: one position before the conversion is one half-life
            "days_before_conversion": (n - p.position).astype("float64"),
        }
    )
    for col in ("label", "previous", "channel"):
        df[col] = df[col].astype("str")
    return ibis.memtable(df)


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


def _markov_credit(tokens: ir.Table, order: int, collapse: bool) -> tuple[pd.DataFrame, list[str]]:
    """Removal-effect credit of an absorbing Markov chain; transitions counted in the engine.

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
        enters = ~collapse | t.l1.isnull() | (t.l1 != t.label)
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
    counts = (
        t.group_by(window)
        .aggregate(
            journeys=_exact_sum(t.conversions + t.nulls, where=enters),
            to_conversion=_exact_sum(t.conversions, where=t.is_last),
            to_null=_exact_sum(t.nulls, where=t.is_last),
            to_value=_exact_sum(t.value, where=t.is_last),
        )
        .execute()
    )
    # the engine returns groups in any order; sorted, the float work below is the same every run
    counts = counts.sort_values(window, na_position="first", kind="stable", ignore_index=True)
    labels = sorted(set(counts["label"].tolist()))
    counts = counts.fillna({c: 0.0 for c in ("journeys", "to_conversion", "to_null", "to_value")})
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


def _check_tables(touchpoints: ir.Table, leads: ir.Table, opportunities: ir.Table) -> None:
    """Columns present and of the contract's types; every problem reported at once."""
    problems = []
    for name, table in (("touchpoints", touchpoints), ("leads", leads), ("opportunities", opportunities)):
        if not isinstance(table, ir.Table):
            problems.append(f"`{name}` must be an ibis table, got {type(table).__name__}")
            continue
        schema = table.schema()
        for col, kind in _REQUIRED[name].items():
            if col not in schema:
                problems.append(f"`{name}`: missing column `{col}`")
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


def _zero_if_null(x: object) -> object:
    return 0 if x is None or pd.isna(x) else x
