"""Tests of kpi_helpers.attribution: hand-computed models, golden Markov numbers, properties."""

from __future__ import annotations

import doctest
import itertools
import math
from fractions import Fraction

import ibis
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kpi_helpers import attribution
from kpi_helpers.attribution import (
    MODELS,
    Journeys,
    attribute,
    compare_models,
    describe_model,
    touch_journeys,
)
from kpi_helpers.exceptions import AttributionError, KpiError
from kpi_helpers.schema import CONTRACT, IBIS_TYPES

PATH_MODELS = tuple(m for m in MODELS if m not in attribution.TOUCH_LEVEL_ONLY)
RULE_PATH_MODELS = ("first_touch", "last_touch", "last_non_direct", "linear", "position_based")
EXACT = 1e-12


def credits(df: pd.DataFrame, column: str) -> dict[str, float]:
    return {k: float(v) for k, v in df[column].items()}


def assert_credits(df: pd.DataFrame, expected: dict[str, tuple[float, float]]) -> None:
    """``expected``: label -> (conversions, value); labels not listed must get 0."""
    for label in df.index:
        conv, value = expected.get(label, (0.0, 0.0))
        assert df.loc[label, "conversions"] == pytest.approx(conv, abs=EXACT), label
        assert df.loc[label, "value"] == pytest.approx(value, abs=1e-9), label
    assert set(expected) <= set(df.index)


# ------------------------------------------------------------------------------------ path table

# Published example (Anderl et al.; the ChannelAttribution and "markovattribution" docs use it).
PUBLISHED = pd.DataFrame(
    {"path": ["C1 > C2 > C3", "C1", "C2 > C3"], "conversions": [1, 0, 0], "value": [1000.0, 0, 0], "nulls": [0, 1, 1]}
)

# A multi-touch path table with hand-computed credit for every rule model below.
PATHS = pd.DataFrame(
    {
        "path": ["Search > Social > Email", "Direct > Search > Direct", "Email", "Social > Direct"],
        "conversions": [2, 1, 1, 0],
        "value": [300.0, 100.0, 50.0, 0.0],
        "nulls": [1, 0, 2, 3],
    }
)

F = Fraction
PATH_EXPECTED = {
    # path 1 (x2, 300), path 2 (x1, 100), path 3 (x1, 50); path 4 never converts
    "first_touch": {"Search": (2, 300), "Direct": (1, 100), "Email": (1, 50)},
    "last_touch": {"Email": (3, 350), "Direct": (1, 100)},
    # path 2 ends on Direct: the credit goes to Search, its last non-direct touch
    "last_non_direct": {"Email": (3, 350), "Search": (1, 100)},
    # 1/3 each on path 1; Direct 2/3 and Search 1/3 on path 2
    "linear": {
        "Direct": (F(2, 3), F(200, 3)),
        "Email": (F(5, 3), 150),
        "Search": (1, F(400, 3)),
        "Social": (F(2, 3), 100),
    },
    # weights 1/4, 1/2, 1 by position -> 1/7, 2/7, 4/7
    "time_decay": {
        "Direct": (F(5, 7), F(500, 7)),
        "Email": (F(15, 7), F(1550, 7)),
        "Search": (F(4, 7), F(500, 7)),
        "Social": (F(4, 7), F(600, 7)),
    },
    # 40/20/40 on both three-touch paths
    "position_based": {"Direct": (0.8, 80), "Email": (1.8, 170), "Search": (1.0, 140), "Social": (0.4, 60)},
    # each converting path split equally among its distinct channels
    "shapley": {"Direct": (F(1, 2), 50), "Email": (F(5, 3), 150), "Search": (F(7, 6), 150), "Social": (F(2, 3), 100)},
}


@pytest.mark.parametrize("model", list(PATH_EXPECTED), ids=list(PATH_EXPECTED))
def test_path_table_hand_computed(model: str) -> None:
    out = attribute(PATHS, model)
    assert list(out.index) == ["Direct", "Email", "Search", "Social"]
    assert list(out.columns) == ["conversions", "value"]
    assert out.index.name == "channel"
    assert out.attrs["model"] == model
    assert_credits(out, {k: (float(c), float(v)) for k, (c, v) in PATH_EXPECTED[model].items()})


def test_markov_published_example_exact() -> None:
    # P(conv) = 1/3; removing C1 leaves 1/6, C2 or C3 leave 0: effects 0.5, 1, 1 -> 0.2, 0.4, 0.4
    out = attribute(PUBLISHED, "markov")
    assert out["conversions"].to_dict() == pytest.approx({"C1": 0.2, "C2": 0.4, "C3": 0.4}, abs=EXACT)
    # one converting path: value shares equal conversion shares
    assert out["value"].to_dict() == pytest.approx({"C1": 200.0, "C2": 400.0, "C3": 400.0}, abs=1e-9)


def test_markov_full_order_equals_share_of_converting_paths() -> None:
    # With order >= the longest path every state is a whole prefix, so the chain reproduces the
    # observed paths and removing c loses exactly the conversions (value) of the paths through c.
    out = attribute(PATHS, "markov", order=3)
    effects = {"Direct": F(1, 4), "Email": F(3, 4), "Search": F(3, 4), "Social": F(2, 4)}
    value_effects = {"Direct": F(100, 450), "Email": F(350, 450), "Search": F(400, 450), "Social": F(300, 450)}
    total, total_value = sum(effects.values()), sum(value_effects.values())
    for c in effects:
        assert out.loc[c, "conversions"] == pytest.approx(float(4 * effects[c] / total), abs=EXACT)
        assert out.loc[c, "value"] == pytest.approx(float(450 * value_effects[c] / total_value), abs=1e-9)


def test_markov_value_follows_value_not_conversions() -> None:
    # A and B each lead to one conversion and one null; the deal after B is worth 9x more.
    # V = 1/2 x 100/2 + 1/2 x 900/2 = 250; without A 225 (effect 0.1), without B 25 (0.9)
    paths = pd.DataFrame({"path": ["A", "B"], "conversions": [1, 1], "value": [100.0, 900.0], "nulls": [1, 1]})
    out = attribute(paths, "markov")
    assert out["conversions"].tolist() == pytest.approx([1.0, 1.0], abs=EXACT)
    assert out["value"].tolist() == pytest.approx([100.0, 900.0], abs=1e-9)


def test_markov_repeats_do_not_matter_at_order_1_but_do_at_order_2() -> None:
    paths = pd.DataFrame(
        {"path": ["B > A > A > C", "D > A > A > E", "B > A > C"], "conversions": [1, 0, 1], "nulls": [0, 1, 1]}
    )
    # a self-loop only delays absorption at order 1
    pd.testing.assert_frame_equal(
        attribute(paths, "markov"), attribute(paths, "markov", collapse_repeats=False), rtol=0, atol=EXACT
    )
    # at order 2 the state (A, A) forgets whether B or D came before: D gets a share
    collapsed = attribute(paths, "markov", order=2)["conversions"].to_dict()
    kept = attribute(paths, "markov", order=2, collapse_repeats=False)["conversions"].to_dict()
    third = 1 / 3
    assert collapsed == pytest.approx({"A": 2 * third, "B": 2 * third, "C": 2 * third, "D": 0, "E": 0}, abs=EXACT)
    assert kept == pytest.approx({"A": 2 * third, "B": 5 / 9, "C": 2 * third, "D": 1 / 9, "E": 0}, abs=EXACT)
    # collapsed, A > A is one visit of A
    merged = paths.assign(path=["B > A > C", "D > A > E", "B > A > C"])
    pd.testing.assert_frame_equal(
        attribute(paths, "markov", order=2), attribute(merged, "markov", order=2), rtol=0, atol=EXACT
    )


# Converting paths only, as a GA conversion-path export has them: A > B (1 conversion, 300),
# A (1, 100), B > C (2, 600). Estimated from these alone the chain goes start -> A or B (1/2 each),
# A -> conversion or B (1/2 each), B -> conversion 1/3 or C 2/3, C -> conversion. Every walk
# converts (P = 1), and removing a channel loses exactly the walks through it, so the removal
# effect is the chance a walk visits the channel: A 1/2, B 1/2 + 1/2 x 1/2 = 3/4, C 3/4 x 2/3 =
# 1/2; shares 2/7, 3/7, 2/7 of 4 conversions.
# Value per exit: A 100 over 2 journeys leaving it (50 each), B 300/3 = 100, C 600/2 = 300, so
# V = 1/2 x 50 + 3/4 x 100 + 1/2 x 300 = 250 (= 1000 / 4). Without A: B is visited 1/2, C 1/3:
# V = 150, effect 0.4; without B: 25, effect 0.9; without C: 100, effect 0.6. Shares 4/19, 9/19,
# 6/19 of 1000.
CONVERTING_ONLY = pd.DataFrame(
    {"path": ["A > B", "A", "B > C"], "conversions": [1, 1, 2], "value": [300.0, 100.0, 600.0]}
)
CONVERTERS_ONLY_EXPECTED = {
    "A": (F(8, 7), F(4000, 19)),
    "B": (F(12, 7), F(9000, 19)),
    "C": (F(8, 7), F(6000, 19)),
}


def test_markov_converters_only_hand_computed() -> None:
    out = attribute(CONVERTING_ONLY, "markov", converters_only=True)
    assert out.attrs == {"model": "markov", "markov_mode": "converters_only"}
    assert_credits(out, {k: (f(c), f(v)) for k, (c, v) in CONVERTERS_ONLY_EXPECTED.items()})
    # nulls, where present, are ignored in this mode; by default they are used
    with_nulls = CONVERTING_ONLY.assign(nulls=[5, 0, 1])
    pd.testing.assert_frame_equal(attribute(with_nulls, "markov", converters_only=True), out, rtol=0, atol=EXACT)
    assert attribute(with_nulls, "markov").attrs["markov_mode"] == "all_journeys"


REFUSED_PATH_TABLES = [
    pytest.param(CONVERTING_ONLY, id="no-nulls-column"),
    pytest.param(CONVERTING_ONLY.assign(nulls=0), id="nulls-all-0"),
    pytest.param(CONVERTING_ONLY.assign(nulls=None), id="nulls-all-empty"),
    pytest.param(ibis.memtable(CONVERTING_ONLY.assign(nulls=0)), id="ibis-nulls-all-0"),
]


@pytest.mark.parametrize("table", REFUSED_PATH_TABLES)
def test_markov_refuses_converting_paths_only(table: pd.DataFrame | ibis.Table) -> None:
    message = (
        r"`markov` needs non-converting journeys and this path table has none "
        r"\(`nulls` absent, or empty or 0 in every row\).*export the paths of the journeys that did not "
        r"convert too, as column `nulls` \(GA: the non-converting paths.*a CRM: the touchpoints of every "
        r"lead\); or pass `converters_only=True`.*or use `shapley`"
    )
    with pytest.raises(AttributionError, match=message):
        attribute(table, "markov")
    with pytest.raises(AttributionError, match=message):
        compare_models(table, ["markov"])
    assert_credits(
        attribute(table, "markov", converters_only=True),
        {k: (f(c), f(v)) for k, (c, v) in CONVERTERS_ONLY_EXPECTED.items()},
    )


def test_compare_models_on_converting_paths_only() -> None:
    out = compare_models(CONVERTING_ONLY)
    assert list(out.columns) == [m for m in PATH_MODELS if m != "markov"]
    assert out.attrs["skipped"]["markov"].startswith("`markov` needs non-converting journeys")
    assert "markov_mode" not in out.attrs
    # asked for, the converters-only mode runs and the comparison says so
    both = compare_models(CONVERTING_ONLY, converters_only=True, metric="conversions")
    assert list(both.columns) == list(PATH_MODELS)
    assert both.attrs == {"skipped": {}, "markov_mode": "converters_only"}
    assert both["markov"].to_dict() == pytest.approx({k: f(c) for k, (c, _) in CONVERTERS_ONLY_EXPECTED.items()})
    # with nulls, nothing is skipped and Markov uses them
    full = compare_models(PATHS)
    assert full.attrs == {"skipped": {}, "markov_mode": "all_journeys"}


def test_nothing_converted_is_not_refused() -> None:
    # no conversions: nothing to credit, in any mode (every label gets 0)
    table = pd.DataFrame({"path": ["A > B", "B"], "conversions": [0, 0]})
    out = attribute(table, "markov")
    assert list(out.index) == ["A", "B"] and (out.to_numpy() == 0).all()
    assert out.attrs["markov_mode"] == "all_journeys"


@pytest.mark.parametrize("collapse", [True, False], ids=["collapsed", "kept"])
def test_markov_repeat_flow_is_dropped_only_when_collapsing(collapse: bool) -> None:
    # the transition counts themselves (at order 1 a self-loop cannot change the credit, so only
    # the counts show whether repeats were collapsed); both ways of counting agree
    table = pd.DataFrame({"path": ["A > A > B", "B > B"], "conversions": [1, 0], "nulls": [2, 1]})
    p = attribution._path_table(table)
    by_tokens = attribution._markov_tokens_counts(attribution._path_tokens(p), 1, collapse)
    by_paths = attribution._markov_path_counts(p, collapse, converters_only=False)
    for counts in (by_tokens, by_paths):
        flows = counts.groupby(["l1", "label"], dropna=False)["journeys"].sum()
        assert flows.get(("A", "A"), 0.0) == (0.0 if collapse else 3.0)
        assert flows.get(("B", "B"), 0.0) == (0.0 if collapse else 1.0)
        assert flows[("A", "B")] == 3.0


def test_whitespace_and_repeated_channels_in_paths() -> None:
    messy = pd.DataFrame({"path": [" A>B  >A ", "B"], "conversions": [1, 1], "value": [3.0, 1.0]})
    out = attribute(messy, "linear")
    assert list(out.index) == ["A", "B"]
    # a repeated channel is a repeated touch: A twice on a three-touch path
    assert_credits(out, {"A": (2 / 3, 2.0), "B": (1 / 3 + 1, 2.0)})
    assert_credits(attribute(messy, "shapley"), {"A": (0.5, 1.5), "B": (1.5, 2.5)})


# the same paths written three ways: as exported, with stray whitespace, and without spaces
MESSY = PATHS.assign(path=[" Search>Social >  Email", "Direct\t> Search>Direct ", "Email  ", "Social>Direct"])


@pytest.mark.parametrize(
    ("model", "options"),
    [*((m, {}) for m in PATH_MODELS), ("markov", {"order": 2})],
    ids=[*PATH_MODELS, "markov-order-2"],
)
def test_whitespace_around_channels_does_not_matter(model: str, options: dict) -> None:
    expected = attribute(PATHS, model, **options)
    pd.testing.assert_frame_equal(attribute(MESSY, model, **options), expected, rtol=0, atol=EXACT)
    pd.testing.assert_frame_equal(attribute(ibis.memtable(MESSY), model, **options), expected, rtol=0, atol=EXACT)


@pytest.mark.parametrize("table", [PATHS, MESSY], ids=["canonical", "messy"])
def test_portable_unnest_equals_duckdb_form(table: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    # engines other than DuckDB get the portable form of splitting paths into touches
    expected = compare_models(table, metric="conversions")
    monkeypatch.setattr(attribution, "_unnests_side_by_side", lambda t: False)
    pd.testing.assert_frame_equal(compare_models(table, metric="conversions"), expected, rtol=0, atol=EXACT)
    order_2 = attribute(table, "markov", order=2)
    monkeypatch.undo()
    pd.testing.assert_frame_equal(order_2, attribute(table, "markov", order=2), rtol=0, atol=EXACT)


def test_value_and_nulls_are_optional() -> None:
    out = attribute(pd.DataFrame({"path": ["A > B"], "conversions": [2]}), "linear")
    assert_credits(out, {"A": (1.0, 0.0), "B": (1.0, 0.0)})


def test_last_non_direct_options() -> None:
    paths = pd.DataFrame({"path": ["Search > (direct)", "Direct", "Direct > (direct)"], "conversions": [1, 1, 1]})
    assert_credits(attribute(paths, "last_non_direct"), {"(direct)": (2, 0), "Direct": (1, 0)})
    assert_credits(
        attribute(paths, "last_non_direct", direct=["Direct", "(direct)"]),
        {"Search": (1, 0), "Direct": (1, 0), "(direct)": (1, 0)},
    )


def test_empty_and_zero_inputs() -> None:
    empty = pd.DataFrame({"path": pd.Series([], dtype=str), "conversions": pd.Series([], dtype=float)})
    for model in PATH_MODELS:
        out = attribute(empty, model)
        assert out.empty and list(out.columns) == ["conversions", "value"]
    no_conversions = pd.DataFrame({"path": ["A > B", "B"], "conversions": [0, 0], "nulls": [3, 1]})
    for model in PATH_MODELS:
        out = attribute(no_conversions, model)
        assert list(out.index) == ["A", "B"] and (out.to_numpy() == 0).all(), model


# --------------------------------------------------------------------------------------- errors

BAD_TABLES = [
    pytest.param(
        pd.DataFrame({"path": ["A > B", ""], "conversions": [1, 1]}),
        r"column `path`: 1 empty path or channel \(row 1\)",
        id="empty-path",
    ),
    pytest.param(
        pd.DataFrame({"path": ["A >  > B"], "conversions": [1]}), r"empty path or channel \(row 0\)", id="empty-channel"
    ),
    pytest.param(
        pd.DataFrame({"path": ["A", None, "  "], "conversions": [1, 1, 1]}),
        r"2 empty paths or channels \(rows 1, 2\)",
        id="missing-paths",
    ),
    pytest.param(
        pd.DataFrame({"path": ["A", "B", "C"], "conversions": [1, -2, -1]}, index=[10, 14, 88]),
        r"column `conversions`: 2 negative values \(rows 14, 88\); counts must be >= 0",
        id="negative-conversions",
    ),
    pytest.param(
        pd.DataFrame({"path": ["A"], "conversions": [1], "nulls": [-1]}),
        r"column `nulls`: 1 negative value \(row 0\)",
        id="negative-nulls",
    ),
    pytest.param(
        pd.DataFrame({"path": ["A"], "conversions": [1], "value": [-5.0]}),
        r"column `value`: 1 negative value",
        id="negative-value",
    ),
    pytest.param(
        pd.DataFrame({"path": ["A", "B"], "conversions": ["x", 1]}),
        r"column `conversions`: 1 missing or non-numeric value \(row 0\)",
        id="non-numeric",
    ),
    pytest.param(
        pd.DataFrame({"path": ["A"], "conversions": [0], "value": [10.0]}),
        r"column `value`: 1 value without conversions",
        id="value-without-conversions",
    ),
    pytest.param(
        pd.DataFrame({"paths": ["A"], "conversion": [1]}),
        r"missing column\(s\) `path`, `conversions`",
        id="missing-columns",
    ),
]


@pytest.mark.parametrize(("table", "match"), BAD_TABLES)
def test_invalid_path_table(table: pd.DataFrame, match: str) -> None:
    with pytest.raises(AttributionError, match=match):
        attribute(table, "linear")


def test_all_problems_reported_together() -> None:
    table = pd.DataFrame({"path": ["", "A"], "conversions": [-1, 1], "nulls": [0, -1]})
    with pytest.raises(AttributionError) as info:
        attribute(table, "markov")
    message = str(info.value)
    assert "`conversions`" in message and "`nulls`" in message and "`path`" in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, KpiError)


@pytest.mark.parametrize(
    ("model", "options", "match"),
    [
        ("last_click", {}, r"unknown attribution model 'last_click'; expected one of `first_touch`.*`shapley`"),
        ("w_shaped", {}, r"model `w_shaped` needs lead- and opportunity-creation touches"),
        ("full_path", {}, r"model `full_path` needs"),
        ("time_decay", {"half_life_days": 3}, r"no option `half_life_days` \(a path table has no dates"),
        ("linear", {"by": "campaign"}, r"no option `by` \(`by` needs touch-level journeys\)"),
        ("markov", {"half_life": 2}, r"takes no option `half_life`.*it takes: `order`, `collapse_repeats`"),
        ("markov", {"order": 0}, r"`order` must be a whole number >= 1, got 0"),
        ("markov", {"order": 1.5}, r"`order` must be a whole number"),
        ("markov", {"collapse_repeats": "yes"}, r"`collapse_repeats` must be True or False"),
        ("last_non_direct", {"direct": 3}, r"`direct` must be a channel name or a list of names"),
    ],
    ids=[
        "unknown-model",
        "w-shaped-paths",
        "full-path-paths",
        "half-life-paths",
        "by-paths",
        "unknown-option",
        "order-0",
        "order-float",
        "collapse-str",
        "direct-int",
    ],
)
def test_invalid_model_or_options(model: str, options: dict, match: str) -> None:
    with pytest.raises(AttributionError, match=match):
        attribute(PATHS, model, **options)


def test_invalid_journeys_type() -> None:
    with pytest.raises(AttributionError, match=r"`journeys` must be a path table .* got list"):
        attribute([("A", 1)], "linear")  # type: ignore[arg-type]


def test_markov_state_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attribution, "_MAX_STATES", 3)
    with pytest.raises(AttributionError, match=r"`markov` with order=2 has \d+ states \(limit 3\)"):
        attribute(PATHS, "markov", order=2)


# ------------------------------------------------------------------- a path table in an engine


def duckdb_table(df: pd.DataFrame, name: str = "paths") -> ibis.Table:
    """``df`` as a table of a DuckDB connection, as a data source's contract table `paths` is."""
    con = ibis.duckdb.connect()
    return con.create_table(name, ibis.memtable(df))


@pytest.mark.parametrize(
    ("model", "options"),
    [*((m, {}) for m in PATH_MODELS), ("markov", {"order": 2}), ("markov", {"collapse_repeats": False})],
    ids=[*PATH_MODELS, "markov-order-2", "markov-repeats"],
)
def test_ibis_path_table_equals_dataframe(model: str, options: dict) -> None:
    expected = attribute(PATHS, model, **options)
    for table in (ibis.memtable(PATHS), duckdb_table(PATHS)):
        out = attribute(table, model, **options)
        pd.testing.assert_frame_equal(out, expected, check_exact=False, rtol=0, atol=1e-12)
        assert out.attrs == expected.attrs


def test_ibis_path_table_compare_models() -> None:
    table = duckdb_table(PATHS)
    pd.testing.assert_frame_equal(compare_models(table), compare_models(PATHS), check_exact=False, atol=1e-12)


def test_ibis_path_table_empty_value_and_nulls_are_0() -> None:
    # a source's `paths` table without values or non-converting counts: columns empty in every row
    con = ibis.duckdb.connect()
    table = con.sql(
        "SELECT * FROM (VALUES ('A > B', 2, NULL::DOUBLE, NULL::BIGINT), ('B', 1, NULL, NULL)) "
        "AS t(path, conversions, value, nulls)"
    )
    out = attribute(table, "linear")
    assert_credits(out, {"A": (1, 0), "B": (2, 0)})
    with pytest.raises(
        AttributionError, match=r"this path table has none \(`nulls` absent, or empty or 0 in every row\)"
    ):
        attribute(table, "markov")
    # the same with the columns absent, or entirely empty in a DataFrame
    pd.testing.assert_frame_equal(attribute(table.select("path", "conversions"), "linear"), out)
    frame = pd.DataFrame({"path": ["A > B", "B"], "conversions": [2, 1], "value": [None, None], "nulls": np.nan})
    pd.testing.assert_frame_equal(attribute(frame, "linear"), out)


BAD_ENGINE_TABLES = [
    pytest.param(
        "SELECT * FROM (VALUES ('A', 1, 5.0, 0), ('B', 2, NULL, 1), ('C', 1, NULL, 1)) "
        "AS t(path, conversions, value, nulls)",
        r"`path table`, column `value`: 2 missing or non-numeric values \(paths 'B', 'C'\); expected a number >= 0",
        id="value-partly-empty",
    ),
    pytest.param(
        "SELECT * FROM (VALUES ('A', -1), ('B', 1), ('C', -2)) AS t(path, conversions)",
        r"column `conversions`: 2 negative values \(paths 'A', 'C'\); counts must be >= 0",
        id="negative-conversions",
    ),
    pytest.param(
        "SELECT * FROM (VALUES ('A', 'nan'::DOUBLE), ('B', 'inf'::DOUBLE), ('C', NULL)) AS t(path, conversions)",
        r"column `conversions`: 3 missing or non-numeric values \(paths 'A', 'B', 'C'\)",
        id="nan-inf-null-conversions",
    ),
    pytest.param(
        "SELECT * FROM (VALUES ('A', 0, 10.0, 1)) AS t(path, conversions, value, nulls)",
        r"column `value`: 1 value without conversions \(paths 'A'\)",
        id="value-without-conversions",
    ),
    pytest.param(
        "SELECT * FROM (VALUES ('A >  > B', 1), ('', 1), (NULL, 1), ('B >', 1), ('C', 1)) AS t(path, conversions)",
        r"column `path`: 4 empty paths or channels \(paths '', '<empty>', 'A >  > B', 'B >'\)",
        id="empty-paths",
    ),
    pytest.param(
        "SELECT * FROM (VALUES (1, 'x')) AS t(path, conversions)",
        r"column `path`: expected text, got int32\n`path table`, column `conversions`: expected numbers, got string",
        id="types",
    ),
    pytest.param(
        "SELECT 'A' AS paths, 1 AS conversion",
        r"missing column\(s\) `path`, `conversions`",
        id="missing-columns",
    ),
    pytest.param(
        "SELECT 'A' AS path, -1 AS conversions, -1 AS nulls",
        r"column `conversions`: 1 negative value \(paths 'A'\).*\n.*column `nulls`: 1 negative value",
        id="all-at-once",
    ),
]


@pytest.mark.parametrize(("sql", "match"), BAD_ENGINE_TABLES)
def test_invalid_ibis_path_table(sql: str, match: str) -> None:
    with pytest.raises(AttributionError, match=match):
        attribute(ibis.duckdb.connect().sql(sql), "linear")


def test_ibis_path_table_examples_are_short() -> None:
    long = " > ".join(["Channel"] * 20)
    table = ibis.memtable(pd.DataFrame({"path": [long + " >"], "conversions": [1]}))
    with pytest.raises(AttributionError, match=r"\(paths 'Channel > Channel > Channel > Channel...'\)"):
        attribute(table, "linear")


# ------------------------------------------------------------------------------ touch-level data


def ts(s: str) -> pd.Timestamp:
    return pd.Timestamp(s)


TOUCHES = [
    # L1: won O1 (1000); lead created after the first touch, opportunity after the second
    ("L1", "2024-01-01", "Search", "brand"),
    ("L1", "2024-01-15", "Social", "spring"),
    ("L1", "2024-01-22", "Email", "news"),
    ("L1", "2024-01-29", "Direct", None),  # at closed_at: part of the journey
    ("L1", "2024-02-10", "Search", "brand"),  # after closed_at: not part of it
    # L2: won O2 (400); the lead was created before any touch: no lead-creation touch
    ("L2", "2024-02-25", "Email", "news"),
    ("L2", "2024-03-03", "Email", "promo"),
    ("L2", "2024-03-10", "Paid", "promo"),
    # L3: won O3 (100) with a single touch
    ("L3", "2024-03-01", "Direct", None),
    # L4: lost its deal: a non-converting journey
    ("L4", "2024-01-05", "Social", "spring"),
    # L6: won before the window: neither a conversion nor a null
    ("L6", "2023-11-01", "Search", "brand"),
    # L7: two won deals in the window, two journeys sharing the first touch
    ("L7", "2024-01-08", "Search", "brand"),
    ("L7", "2024-02-05", "Email", "news"),
    # L8: created before the lookback: ignored
    ("L8", "2022-06-02", "Referral", None),
    # L9: created within the lookback, no deal: a null journey of the touches before `end`
    ("L9", "2023-06-02", "Referral", None),
    ("L9", "2024-05-01", "Social", "spring"),
]
# (lead_id, created_at, channel, campaign): a lead's own channel is credited only when it has
# no touch in its journey (L5, L10)
LEADS = [
    ("L1", "2024-01-10", "Search", "brand"),
    ("L2", "2024-02-20", "Email", "news"),
    ("L3", "2024-03-01", "Direct", None),
    ("L4", "2024-01-05", "Social", "spring"),
    ("L5", "2024-01-20", "Events", "expo"),  # won O5 without any touch: its own channel
    ("L6", "2023-11-01", "Search", "brand"),
    ("L7", "2024-01-08", "Search", "brand"),
    ("L8", "2022-06-01", "Referral", None),
    ("L9", "2023-06-01", "Referral", None),
    ("L10", "2024-02-01", "Events", "expo"),  # no touch, no deal: a null journey of its own channel
]
OPPORTUNITIES = [
    ("O1", "L1", "2024-01-20", "2024-01-29", "won", 1000.0),
    ("O2", "L2", "2024-03-05", "2024-03-10", "won", 400.0),
    ("O3", "L3", "2024-03-02", "2024-03-05", "Won ", 100.0),  # stage compared trimmed, any case
    ("O4", "L4", "2024-01-06", "2024-01-20", "lost", 70.0),
    ("O5", "L5", "2024-01-21", "2024-01-25", "won", 50.0),  # no touches: credited to L5's own channel
    ("O6", "L6", "2023-11-02", "2023-12-01", "won", 80.0),
    ("O7a", "L7", "2024-01-09", "2024-01-10", "won", 10.0),
    ("O7b", "L7", "2024-02-01", "2024-02-19", "won", 20.0),
    ("O8", None, "2024-01-02", "2024-01-05", "won", 999.0),  # sales-sourced: no journey
    ("O9", "L9", "2024-03-01", None, "open", 5.0),
]
START, END = "2024-01-01", "2024-04-01"


def contract_tables(
    touches: list = TOUCHES, leads: list = LEADS, opportunities: list = OPPORTUNITIES
) -> tuple[ibis.Table, ibis.Table, ibis.Table]:
    tp = pd.DataFrame(touches, columns=["lead_id", "touched_at", "channel", "campaign"])
    tp["touched_at"] = pd.to_datetime(tp["touched_at"])
    ld = pd.DataFrame(leads, columns=["lead_id", "created_at", "channel", "campaign"])
    ld["created_at"] = pd.to_datetime(ld["created_at"])
    op = pd.DataFrame(
        opportunities, columns=["opportunity_id", "lead_id", "created_at", "closed_at", "stage", "amount"]
    )
    op["created_at"] = pd.to_datetime(op["created_at"])
    op["closed_at"] = pd.to_datetime(op["closed_at"])
    op["account_id"] = "acc"
    return ibis.memtable(tp), ibis.memtable(ld), ibis.memtable(op)


@pytest.fixture(scope="module")
def journeys() -> Journeys:
    return touch_journeys(*contract_tables(), start=START, end=END)


def test_touch_journeys_table(journeys: Journeys) -> None:
    df = journeys.table.execute().sort_values(["journey_id", "position"])
    got = [
        (
            r.journey_id,
            r.channel,
            r.position,
            r.n_touches,
            r.is_first,
            r.is_lead_creation,
            r.is_opportunity_creation,
            r.is_closed_won,
            r.converted,
            r.value,
            r.own_channel,
        )
        for r in df.itertuples()
    ]
    # the last column: own channel (L5 and L10 have no touch)
    assert got == [
        ("lead:L10", "Events", 1, 1, True, True, False, False, False, 0.0, True),
        ("lead:L4", "Social", 1, 1, True, True, False, False, False, 0.0, False),
        ("lead:L9", "Referral", 1, 1, True, False, False, False, False, 0.0, False),
        ("opportunity:O1", "Search", 1, 4, True, True, False, False, True, 1000.0, False),
        ("opportunity:O1", "Social", 2, 4, False, False, True, False, True, 1000.0, False),
        ("opportunity:O1", "Email", 3, 4, False, False, False, False, True, 1000.0, False),
        ("opportunity:O1", "Direct", 4, 4, False, False, False, True, True, 1000.0, False),
        ("opportunity:O2", "Email", 1, 3, True, False, False, False, True, 400.0, False),
        ("opportunity:O2", "Email", 2, 3, False, False, True, False, True, 400.0, False),
        ("opportunity:O2", "Paid", 3, 3, False, False, False, True, True, 400.0, False),
        ("opportunity:O3", "Direct", 1, 1, True, True, True, True, True, 100.0, False),
        ("opportunity:O5", "Events", 1, 1, True, True, True, True, True, 50.0, True),
        ("opportunity:O7a", "Search", 1, 1, True, True, True, True, True, 10.0, False),
        ("opportunity:O7b", "Search", 1, 2, True, True, True, False, True, 20.0, False),
        ("opportunity:O7b", "Email", 2, 2, False, False, False, True, True, 20.0, False),
    ]
    o1 = df[df.journey_id == "opportunity:O1"]
    assert o1["days_before_conversion"].tolist() == [28.0, 14.0, 7.0, 0.0]
    assert o1["previous_channel"].tolist()[1:] == ["Search", "Social", "Email"]
    assert pd.isna(o1["previous_channel"].iloc[0])
    assert o1["previous_campaign"].tolist()[1:] == ["brand", "spring", "news"]
    assert df[~df.converted]["days_before_conversion"].isna().all()
    assert df.loc[df.channel == "Direct", "campaign"].unique().tolist() == [attribution.NOT_SET]
    # the own-channel touch is at the lead's creation, with the lead's campaign
    o5 = df[df.journey_id == "opportunity:O5"].iloc[0]
    assert (o5.touched_at, o5.campaign, o5.days_before_conversion) == (ts("2024-01-20"), "expo", 5.0)
    assert list(df.columns) == list(Journeys.COLUMNS)


def test_summary_and_unattributed(journeys: Journeys) -> None:
    # O5 is credited through L5's own channel; L10 is a null journey of its own channel
    assert journeys.summary() == {
        "journeys": 9,
        "conversions": 6,
        "value": 1580.0,
        "touches": 15,
        "nulls": 3,
        "unattributed_conversions": 0,
        "unattributed_value": 0.0,
    }
    assert journeys.unattributed is not None
    assert journeys.unattributed.execute().empty


def test_paths(journeys: Journeys) -> None:
    paths = journeys.paths()
    assert paths.to_dict("list") == {
        "path": [
            "Direct",
            "Email > Email > Paid",
            "Events",
            "Referral",
            "Search",
            "Search > Email",
            "Search > Social > Email > Direct",
            "Social",
        ],
        "conversions": [1, 1, 1, 0, 1, 1, 1, 0],
        "value": [100.0, 400.0, 50.0, 0.0, 10.0, 20.0, 1000.0, 0.0],
        "nulls": [0, 0, 1, 1, 0, 0, 0, 1],
    }
    by_campaign = journeys.paths(by="campaign")
    assert "brand > spring > news > (not set)" in by_campaign["path"].tolist()


def f(x: float | Fraction) -> float:
    return float(x)


# O1 (1000): Search, Social, Email, Direct; O2 (400): Email, Email, Paid; O3 (100): Direct;
# O7a (10): Search; O7b (20): Search, Email; O5 (50): Events, L5's own channel (one touch, so
# every model gives it all: added below). Null journeys (L4 Social, L9 Referral, L10 Events) get
# nothing.
TOUCH_EXPECTED = {
    "first_touch": {"Search": (3, 1030), "Email": (1, 400), "Direct": (1, 100)},
    "last_touch": {"Direct": (2, 1100), "Paid": (1, 400), "Search": (1, 10), "Email": (1, 20)},
    # O1 ends on Direct -> Email; O3 is Direct only, so Direct keeps it
    "last_non_direct": {"Email": (2, 1020), "Paid": (1, 400), "Direct": (1, 100), "Search": (1, 10)},
    "linear": {
        "Search": (F(7, 4), 270),
        "Social": (F(1, 4), 250),
        "Email": (F(17, 12), 260 + F(800, 3)),
        "Direct": (F(5, 4), 350),
        "Paid": (F(1, 3), F(400, 3)),
    },
    "position_based": {
        "Search": (1.9, 420),
        "Social": (0.1, 100),
        "Email": (1.2, 350),
        "Direct": (1.4, 500),
        "Paid": (0.4, 160),
    },
    # half-life 7 days. O1: 28, 14, 7, 0 days -> 1, 4, 8, 16 / 29. O2: 14, 7, 0 -> 1, 2, 4 / 7.
    # O7b: 42 and 14 days -> 1, 16 / 17.
    "time_decay": {
        "Search": (F(1, 29) + 1 + F(1, 17), F(1000, 29) + 10 + F(20, 17)),
        "Social": (F(4, 29), F(4000, 29)),
        "Email": (F(8, 29) + F(3, 7) + F(16, 17), F(8000, 29) + F(1200, 7) + F(320, 17)),
        "Direct": (F(16, 29) + 1, F(16000, 29) + 100),
        "Paid": (F(4, 7), F(1600, 7)),
    },
    # O1: first = lead creation (Search .6), opportunity creation Social .3, rest Email/Direct .05
    # O2: no lead-creation touch: .3 first, .3 opportunity, .1 rest, renormalised by .7
    # O3 and O7a: one touch; O7b: Search is first, lead and opportunity creation (.9), Email .1
    "w_shaped": {
        "Search": (F(6, 10) + 1 + F(9, 10), 600 + 10 + 18),
        "Social": (F(3, 10), 300),
        "Email": (F(5, 100) + F(6, 7) + F(1, 10), 50 + F(2400, 7) + 2),
        "Direct": (F(5, 100) + 1, 50 + 100),
        "Paid": (F(1, 7), F(400, 7)),
    },
    # O1: Search .45, Social .225, Direct (closed won) .225, Email .1
    # O2: first, opportunity, closed won .225 each, no rest and no lead touch -> 1/3 each
    # O7b: Search .675, Email (closed won) .225, no rest -> .75 / .25
    "full_path": {
        "Search": (F(45, 100) + 1 + F(3, 4), 450 + 10 + 15),
        "Social": (F(225, 1000), 225),
        "Email": (F(1, 10) + F(2, 3) + F(1, 4), 100 + F(800, 3) + 5),
        "Direct": (F(225, 1000) + 1, 225 + 100),
        "Paid": (F(1, 3), F(400, 3)),
    },
    # each journey split equally among its distinct channels
    "shapley": {
        "Search": (F(7, 4), 270),
        "Social": (F(1, 4), 250),
        "Email": (F(5, 4), 460),
        "Direct": (F(5, 4), 350),
        "Paid": (F(1, 2), 200),
    },
}
for _expected in TOUCH_EXPECTED.values():
    _expected["Events"] = (1, 50)


@pytest.mark.parametrize("model", list(TOUCH_EXPECTED), ids=list(TOUCH_EXPECTED))
def test_touch_level_hand_computed(journeys: Journeys, model: str) -> None:
    out = attribute(journeys, model)
    assert list(out.index) == ["Direct", "Email", "Events", "Paid", "Referral", "Search", "Social"]
    assert_credits(out, {k: (f(c), f(v)) for k, (c, v) in TOUCH_EXPECTED[model].items()})


def test_touch_level_half_life_option(journeys: Journeys) -> None:
    # a huge half-life makes time decay linear
    decayed = attribute(journeys, "time_decay", half_life_days=1e12)
    pd.testing.assert_frame_equal(decayed, attribute(journeys, "linear"), check_exact=False, atol=1e-9, check_like=True)
    with pytest.raises(AttributionError, match=r"`half_life_days` must be a number of days > 0, got 0"):
        attribute(journeys, "time_decay", half_life_days=0)


def test_by_campaign(journeys: Journeys) -> None:
    out = attribute(journeys, "last_touch", by="campaign")
    assert out.index.name == "campaign"
    # O1 and O3 end on Direct touches without campaign
    assert_credits(out, {"(not set)": (2, 1100), "promo": (1, 400), "brand": (1, 10), "news": (1, 20), "expo": (1, 50)})
    # last non-direct skips by channel even when crediting campaigns
    assert_credits(
        attribute(journeys, "last_non_direct", by="campaign"),
        {"news": (2, 1020), "promo": (1, 400), "(not set)": (1, 100), "brand": (1, 10), "expo": (1, 50)},
    )
    markov = attribute(journeys, "markov", by="campaign")
    assert markov["conversions"].sum() == pytest.approx(6, abs=1e-9)
    with pytest.raises(AttributionError, match=r"`by` must be one of `channel`, `campaign`, got 'source'"):
        attribute(journeys, "linear", by="source")


# every model both inputs have, but time decay: positions there, days here
AGREEING = (*RULE_PATH_MODELS, "markov", "shapley")


@pytest.mark.parametrize("model", AGREEING, ids=AGREEING)
def test_path_table_and_touch_level_agree(journeys: Journeys, model: str) -> None:
    pd.testing.assert_frame_equal(
        attribute(journeys.paths(), model), attribute(journeys, model), check_exact=False, atol=1e-9
    )


def test_touch_journeys_open_window_and_lookback() -> None:
    tables = contract_tables()
    everything = touch_journeys(*tables)
    # no window: O6 (won 2023-12) converts too, L8 and L9 are nulls with every touch
    summary = everything.summary()
    assert (summary["conversions"], summary["nulls"]) == (7, 4)
    # no lookback: only leads created in the window are nulls (L4, L10)
    assert touch_journeys(*tables, start=START, end=END, lookback_days=0).summary()["nulls"] == 2


@pytest.mark.parametrize("model", [m for m in MODELS if m not in attribution.NEED_NULLS])
def test_converting_journeys_alone_give_the_same_credit(journeys: Journeys, model: str) -> None:
    """Models other than Markov never read non-converting journeys: leaving them out changes no
    credit, only drops labels seen on them alone (those had 0)."""
    full = attribute(journeys, model)
    converting = touch_journeys(*contract_tables(), start=START, end=END, include_nulls=False)
    assert not converting.has_nulls and converting.summary()["nulls"] == 0
    alone = attribute(converting, model)
    assert set(alone.index) <= set(full.index)
    assert (full.drop(alone.index)[["conversions", "value"]] == 0).all().all()
    pd.testing.assert_frame_equal(alone, full.loc[alone.index], check_exact=False, atol=1e-9)


def test_markov_refuses_journeys_without_nulls() -> None:
    converting = touch_journeys(*contract_tables(), start=START, end=END, include_nulls=False).materialize()
    built_without = r"`markov` needs non-converting journeys and these journeys were built without them"
    with pytest.raises(AttributionError, match=built_without + r".*include_nulls=True.*converters_only=True"):
        attribute(converting, "markov")
    with pytest.raises(AttributionError, match=built_without):
        compare_models(converting, ["linear", "markov"])
    # by default a comparison leaves Markov out and says why
    out = compare_models(converting)
    assert "markov" not in out.columns and list(out.attrs["skipped"]) == ["markov"]
    assert out.attrs["skipped"]["markov"].startswith(built_without)
    assert "markov_mode" not in out.attrs


def test_markov_refuses_journeys_whose_leads_all_bought() -> None:
    # built with their nulls, but every lead in the lookback won a deal: not one null journey
    tp, ld, op = contract_tables(
        touches=[("L1", "2024-01-01", "Search", None), ("L2", "2024-01-02", "Email", None)],
        leads=[("L1", "2024-01-01", "Search", None), ("L2", "2024-01-02", "Email", None)],
        opportunities=[
            ("O1", "L1", "2024-01-03", "2024-01-05", "won", 10.0),
            ("O2", "L2", "2024-01-03", "2024-01-06", "won", 30.0),
        ],
    )
    j = touch_journeys(tp, ld, op, start=START, end=END).materialize()
    with pytest.raises(AttributionError, match=r"these journeys have none \(no lead without a won deal"):
        attribute(j, "markov")
    assert "markov" in compare_models(j).attrs["skipped"]
    only = attribute(j, "markov", converters_only=True)
    assert only.attrs["markov_mode"] == "converters_only"
    assert_credits(only, {"Search": (1, 10), "Email": (1, 30)})


def test_touchpoints_without_campaign_column() -> None:
    tp, ld, op = contract_tables()
    j = touch_journeys(tp.drop("campaign"), ld, op, start=START, end=END)
    touched = j.table.filter(~j.table.own_channel)
    assert set(touched.campaign.execute()) == {attribution.NOT_SET}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda tp, ld, op: (tp.drop("channel"), ld, op), r"`touchpoints`: missing column `channel`"),
        (
            lambda tp, ld, op: (tp, ld.mutate(created_at=ld.created_at.cast("string")), op),
            r"`leads`, column `created_at`: expected timestamp, got string",
        ),
        (
            lambda tp, ld, op: (tp, ld, op.drop("stage", "amount")),
            r"`opportunities`: missing column `stage`\n`opportunities`: missing column `amount`",
        ),
        (lambda tp, ld, op: (tp.execute(), ld, op), r"`touchpoints` must be an ibis table, got DataFrame"),
    ],
    ids=["missing-channel", "string-timestamp", "two-missing", "pandas"],
)
def test_touch_journeys_invalid_tables(change, match: str) -> None:
    with pytest.raises(AttributionError, match=match):
        touch_journeys(*change(*contract_tables()))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"start": "2024-02-01", "end": "2024-01-01"}, r"`start` \(2024-02-01 00:00:00\) must be before `end`"),
        ({"start": "not a date"}, r"`start` must be a date or date-time, got 'not a date'"),
        ({"lookback_days": -1}, r"`lookback_days` must be a whole number of days >= 0, got -1"),
    ],
    ids=["reversed", "unparsable", "negative-lookback"],
)
def test_touch_journeys_invalid_options(options: dict, match: str) -> None:
    with pytest.raises(AttributionError, match=match):
        touch_journeys(*contract_tables(), **options)


def test_journeys_missing_columns() -> None:
    with pytest.raises(AttributionError, match=r"`Journeys.table`: missing column\(s\) `journey_id`"):
        Journeys(ibis.memtable(pd.DataFrame({"x": [1]})))


def test_separator_in_label_is_refused() -> None:
    tp, ld, op = contract_tables(touches=[("L1", "2024-01-01", "Paid > Search", None)])
    j = touch_journeys(tp, ld, op, start=START, end=END)
    with pytest.raises(AttributionError, match=r"column `channel`: some values contain '>'"):
        j.paths()
    # models do not build path strings, so they still work (the other won deals: own channels)
    assert attribute(j, "markov")["conversions"].sum() == pytest.approx(6.0)


def lead_revenue(opportunities: list = OPPORTUNITIES, start: str = START, end: str = END) -> tuple[int, float]:
    """Won deals with a lead closed in [start, end), and their amount: what attribution credits."""
    won = [
        amount
        for _, lead, _, closed, stage, amount in opportunities
        if stage.strip().lower() == "won" and lead is not None and closed and start <= closed < end
    ]
    return len(won), sum(won)


def empty_touchpoints() -> ibis.Table:
    """A touchpoints table with the contract's columns and no rows, as a data source gives it."""
    columns = CONTRACT["touchpoints"].columns
    schema = ibis.schema({c.name: IBIS_TYPES[c.kind] for c in columns})
    return ibis.memtable(schema.to_pyarrow().empty_table())


def test_credit_sources(journeys: Journeys) -> None:
    out = journeys.credit_sources()
    assert list(out.index) == ["touch_journeys", "own_channel", "unattributed"]
    assert out.index.name == "source"
    assert out["conversions"].tolist() == [5, 1, 0]
    assert out["value"].tolist() == [1530.0, 50.0, 0.0]
    assert out["value_share"].tolist() == pytest.approx([1530 / 1580, 50 / 1580, 0.0])
    assert out["conversions_share"].tolist() == pytest.approx([5 / 6, 1 / 6, 0.0])
    # together, the lead revenue of the window: what every model credits
    assert (out["conversions"].sum(), out["value"].sum()) == lead_revenue() == (6, 1580.0)


# without touchpoints every won deal is one touch of its lead's channel: L1 Search (1000),
# L2 Email (400), L3 Direct (100), L5 Events (50), L7 Search (10 + 20)
LEAD_CHANNELS = {"Search": (3, 1030), "Email": (1, 400), "Direct": (1, 100), "Events": (1, 50)}


@pytest.mark.parametrize("touchpoints", [empty_touchpoints, lambda: None], ids=["no-rows", "none"])
def test_without_touchpoints_deals_are_credited_to_their_lead_channel(touchpoints) -> None:
    _, ld, op = contract_tables()
    j = touch_journeys(touchpoints(), ld, op, start=START, end=END).materialize()
    for model, out in compare_models(j, metric="conversions").items():
        assert out.sum() == pytest.approx(6, abs=1e-12), model
    out = compare_models(j)
    # one-touch journeys of one channel each: every model agrees, Markov included (its nulls are
    # the untouched leads L4 Social, L9 Referral and L10 Events)
    for model in MODELS:
        assert out[model].to_dict() == pytest.approx(
            {"Direct": 100, "Email": 400, "Events": 50, "Referral": 0, "Search": 1030, "Social": 0}, abs=1e-9
        ), model
    assert out.attrs == {"skipped": {}, "markov_mode": "all_journeys"}
    assert_credits(attribute(j, "linear"), LEAD_CHANNELS)
    assert_credits(
        attribute(j, "last_touch", by="campaign"),
        {"brand": (3, 1030), "news": (1, 400), "(not set)": (1, 100), "expo": (1, 50)},
    )
    sources = j.credit_sources()
    assert sources["conversions"].tolist() == [0, 6, 0]
    assert sources["value_share"].tolist() == [0.0, 1.0, 0.0]


def test_lead_touched_only_after_the_close_gets_its_own_channel() -> None:
    # L1's only touch comes after O1 closed: O1 is a journey of L1's own channel (Search) at its
    # creation; L2's touch before its close counts
    touches = [("L1", "2024-02-10", "Social", "spring"), ("L2", "2024-03-01", "Paid", "promo")]
    tp, ld, op = contract_tables(touches=touches)
    j = touch_journeys(tp, ld, op, start=START, end=END, include_nulls=False)
    assert_credits(
        attribute(j, "first_touch"), {"Search": (3, 1030), "Paid": (1, 400), "Direct": (1, 100), "Events": (1, 50)}
    )
    sources = j.credit_sources()
    assert sources.loc["touch_journeys", ["conversions", "value"]].tolist() == [1, 400.0]
    assert sources.loc["own_channel", ["conversions", "value"]].tolist() == [5, 1180.0]


def test_own_channel_off_leaves_untouched_deals_unattributed() -> None:
    tp, ld, op = contract_tables()
    # the lead's channel is then not needed
    j = touch_journeys(tp, ld.drop("channel", "campaign"), op, start=START, end=END, own_channel=False)
    assert j.summary() == {
        "journeys": 7,
        "conversions": 5,
        "value": 1530.0,
        "touches": 13,
        "nulls": 2,
        "unattributed_conversions": 1,
        "unattributed_value": 50.0,
    }
    assert j.unattributed is not None and j.unattributed.execute()["opportunity_id"].tolist() == ["O5"]
    sources = j.credit_sources()
    assert sources["conversions"].tolist() == [5, 0, 1]
    assert sources["value_share"].tolist() == pytest.approx([1530 / 1580, 0.0, 50 / 1580])
    assert "Events" not in attribute(j, "linear").index


def test_deal_of_a_lead_missing_from_leads_is_unattributed() -> None:
    # (a data source refuses such a dangling reference; a hand-built table may have one)
    opportunities = [*OPPORTUNITIES, ("O10", "L99", "2024-02-01", "2024-02-02", "won", 7.0)]
    j = touch_journeys(*contract_tables(opportunities=opportunities), start=START, end=END, include_nulls=False)
    assert j.unattributed is not None and j.unattributed.execute()["opportunity_id"].tolist() == ["O10"]
    assert j.credit_sources().loc["unattributed", ["conversions", "value"]].tolist() == [1, 7.0]
    assert attribute(j, "linear")["value"].sum() == pytest.approx(1580.0)


def test_own_channel_needs_the_lead_channel() -> None:
    tp, ld, op = contract_tables()
    with pytest.raises(
        AttributionError, match=r"`leads`: missing column `channel` \(the lead's own channel; or `own_channel=False`\)"
    ):
        touch_journeys(tp, ld.drop("channel"), op)
    with pytest.raises(AttributionError, match=r"`own_channel` must be True or False, got 'yes'"):
        touch_journeys(tp, ld, op, own_channel="yes")  # type: ignore[arg-type]


def test_materialize(journeys: Journeys) -> None:
    stored = journeys.materialize()
    assert stored.table.count().execute() == 15
    pd.testing.assert_frame_equal(attribute(stored, "w_shaped"), attribute(journeys, "w_shaped"))


def test_duckdb_connection_tables() -> None:
    con = ibis.duckdb.connect()
    names = ("touchpoints", "leads", "opportunities")
    tables = [con.create_table(n, t) for n, t in zip(names, contract_tables(), strict=True)]
    j = touch_journeys(*tables, start=START, end=END)
    assert_credits(
        attribute(j, "first_touch"), {k: (f(c), f(v)) for k, (c, v) in TOUCH_EXPECTED["first_touch"].items()}
    )


# --------------------------------------------------------------------------- compare & describe


def test_compare_models_paths() -> None:
    out = compare_models(PATHS)
    assert list(out.columns) == list(PATH_MODELS)
    assert out.columns.name == "model"
    assert out.sum().to_numpy() == pytest.approx([450.0] * len(PATH_MODELS))
    assert out["linear"].to_dict() == pytest.approx(attribute(PATHS, "linear")["value"].to_dict())
    conversions = compare_models(PATHS, ["markov", "first_touch"], metric="conversions", order=2)
    assert list(conversions.columns) == ["markov", "first_touch"]
    assert conversions["markov"].to_dict() == pytest.approx(
        attribute(PATHS, "markov", order=2)["conversions"].to_dict()
    )


def test_compare_models_journeys(journeys: Journeys) -> None:
    journeys = journeys.materialize()  # built once, not once per model
    out = compare_models(journeys, by="campaign", half_life_days=3)
    assert list(out.columns) == list(MODELS)
    assert out.index.name == "campaign"
    assert out.sum().to_numpy() == pytest.approx([1580.0] * len(MODELS))
    assert out["time_decay"].to_dict() == pytest.approx(
        attribute(journeys, "time_decay", by="campaign", half_life_days=3)["value"].to_dict()
    )


@pytest.mark.parametrize(
    ("models", "options", "match"),
    [
        (["linear"], {"order": 2}, r"option\(s\) `order` are taken by none of the models `linear`"),
        (["nope"], {}, r"unknown attribution model 'nope'"),
        (None, {"metric": "roi"}, r"`metric` must be 'value' or 'conversions', got 'roi'"),
        (["w_shaped"], {}, r"model `w_shaped` needs"),
    ],
    ids=["unused-option", "unknown-model", "bad-metric", "touch-only-model"],
)
def test_compare_models_errors(models, options: dict, match: str) -> None:
    with pytest.raises(AttributionError, match=match):
        compare_models(PATHS, models, **options)


@pytest.mark.parametrize("model", MODELS)
def test_describe_model(model: str) -> None:
    text = describe_model(model)
    assert len(text) > 60 and text.endswith(".")


def test_describe_markov_modes() -> None:
    assert describe_model("markov", markov_mode="all_journeys") == describe_model("markov")
    text = describe_model("markov", markov_mode="converters_only")
    assert "biased" in text and "did not convert" in text and text.endswith(".")
    with pytest.raises(AttributionError, match=r"`markov_mode` is for model `markov`.*'converters_only' for `linear`"):
        describe_model("linear", markov_mode="converters_only")
    with pytest.raises(AttributionError, match=r"one of `all_journeys`, `converters_only`; got 'simulated'"):
        describe_model("markov", markov_mode="simulated")


def test_describe_unknown_model() -> None:
    with pytest.raises(AttributionError, match=r"unknown attribution model 'u_shaped'"):
        describe_model("u_shaped")


def test_docstring_examples() -> None:
    result = doctest.testmod(attribution, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 3 and result.failed == 0


# ------------------------------------------------------------------------ independent references


def reference_markov(table: pd.DataFrame, order: int = 1, collapse: bool = True) -> dict[str, float]:
    """Textbook absorbing-chain removal effects: a plain-Python transition count and a solve of
    (I - Q) x = r per removal (states containing the channel redirected to null)."""
    counts: dict[tuple, dict] = {}
    channels: set[str] = set()
    total = 0.0
    for path, conv, nulls in zip(table["path"], table["conversions"], table["nulls"], strict=True):
        seq = [c.strip() for c in path.split(">")]
        channels.update(seq)
        total += conv
        if collapse:
            seq = [c for i, c in enumerate(seq) if i == 0 or c != seq[i - 1]]
        padded = [None] * (order - 1) + seq
        states = [tuple(padded[i : i + order]) for i in range(len(seq))]
        for a, b in zip([("start",), *states], [*states, "conv"], strict=True):
            w = conv if b == "conv" else conv + nulls
            counts.setdefault(a, {}).setdefault(b, 0.0)
            counts[a][b] += w
        counts[states[-1]].setdefault("null", 0.0)
        counts[states[-1]]["null"] += nulls
    transient = sorted(counts, key=repr)
    index = {s: i for i, s in enumerate(transient)}

    def p_conv(removed: str | None) -> float:
        n = len(transient)
        q, r = np.zeros((n, n)), np.zeros(n)
        for s, outs in counts.items():
            tot = sum(outs.values())
            if (removed is not None and removed in s) or tot == 0:
                continue  # a removed state absorbs into null
            for t, w in outs.items():
                if t == "conv":
                    r[index[s]] += w / tot
                elif t != "null" and not (removed is not None and removed in t):
                    q[index[s], index[t]] += w / tot
        x = np.linalg.solve(np.eye(n) - q, r)
        return float(x[index[("start",)]])

    base = p_conv(None)
    effects = {c: max(0.0, 1 - p_conv(c) / base) for c in sorted(channels)}
    norm = sum(effects.values())
    return {c: e / norm * total for c, e in effects.items()}


def brute_force_shapley(table: pd.DataFrame) -> dict[str, float]:
    """Shapley values of v(S) = conversions of paths whose channel set is within S, by the
    definition (every coalition), for small channel counts."""
    sets = [frozenset(c.strip() for c in p.split(">")) for p in table["path"]]
    players = sorted(set().union(*sets))
    n = len(players)

    def v(coalition: frozenset) -> float:
        return sum(float(c) for s, c in zip(sets, table["conversions"], strict=True) if s <= coalition)

    phi = {}
    for i in players:
        others = [p for p in players if p != i]
        total = 0.0
        for k in range(len(others) + 1):
            weight = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
            for subset in itertools.combinations(others, k):
                s = frozenset(subset)
                total += weight * (v(s | {i}) - v(s))
        phi[i] = total
    return phi


# --------------------------------------------------------------------------------- properties

CHANNEL_NAMES = ["Direct", "Email", "Search", "Social", "Paid", "Referral"]


@st.composite
def path_tables(draw: st.DrawFn, channels: list[str] = CHANNEL_NAMES, min_conversions: int = 1) -> pd.DataFrame:
    rows = draw(
        st.lists(
            st.tuples(
                st.lists(st.sampled_from(channels), min_size=1, max_size=6),
                st.integers(0, 5),
                st.integers(0, 5),
                st.floats(0, 1000, allow_nan=False, allow_infinity=False),
            ),
            min_size=1,
            max_size=8,
        )
    )
    table = pd.DataFrame(
        {
            "path": [" > ".join(p) for p, *_ in rows],
            "conversions": [c for _, c, _, _ in rows],
            "nulls": [n for _, _, n, _ in rows],
            "value": [v if c > 0 else 0.0 for _, c, _, v in rows],
        }
    )
    assume(table["conversions"].sum() >= min_conversions)
    return table


PROPERTY = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def markov_options(table: pd.DataFrame) -> dict[str, bool]:
    """Markov over all journeys where the table has nulls, else the converters-only mode."""
    return {"converters_only": bool(table["nulls"].sum() == 0)}


@pytest.mark.slow
@PROPERTY
@given(table=path_tables())
def test_credit_sums_to_totals_and_is_non_negative(table: pd.DataFrame) -> None:
    for model in PATH_MODELS:
        options = markov_options(table) if model == "markov" else {}
        out = attribute(table, model, **options)
        assert out["conversions"].sum() == pytest.approx(table["conversions"].sum(), rel=1e-9), model
        assert out["value"].sum() == pytest.approx(table["value"].sum(), rel=1e-9, abs=1e-9), model
        assert (out.to_numpy() >= 0).all(), model


@pytest.mark.slow
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=path_tables())
def test_ibis_path_table_equals_dataframe_property(table: pd.DataFrame) -> None:
    # the same table in an engine gives the same credit (what the kit does for a source's `paths`)
    options = {"metric": "conversions", **markov_options(table)}
    expected = compare_models(table, **options)
    pd.testing.assert_frame_equal(compare_models(ibis.memtable(table), **options), expected, atol=1e-12)


@pytest.mark.slow
@settings(max_examples=8, deadline=None)
@given(table=path_tables(channels=["Solo"]), order=st.integers(1, 3))
def test_single_channel_gets_everything(table: pd.DataFrame, order: int) -> None:
    for model in PATH_MODELS:
        options = {"order": order, **markov_options(table)} if model == "markov" else {}
        out = attribute(table, model, **options)
        assert list(out.index) == ["Solo"]
        assert out.loc["Solo", "conversions"] == pytest.approx(table["conversions"].sum(), rel=1e-12)
        assert out.loc["Solo", "value"] == pytest.approx(table["value"].sum(), rel=1e-12)


@pytest.mark.slow
@PROPERTY
@given(table=path_tables(), order=st.integers(1, 3), collapse=st.booleans())
def test_markov_matches_reference_and_is_deterministic(table: pd.DataFrame, order: int, collapse: bool) -> None:
    options = {"order": order, "collapse_repeats": collapse, **markov_options(table)}
    first = attribute(table, "markov", **options)
    again = attribute(table.iloc[::-1], "markov", **options)
    pd.testing.assert_frame_equal(first, again, check_exact=False, rtol=1e-12, atol=1e-12)
    pd.testing.assert_frame_equal(first, attribute(table, "markov", **options), check_exact=True)
    expected = reference_markov(table, order, collapse)
    assert first["conversions"].to_dict() == pytest.approx(expected, abs=1e-9)
    # the converters-only mode is the chain of the table without its nulls
    only = attribute(table, "markov", order=order, collapse_repeats=collapse, converters_only=True)
    expected = reference_markov(table.assign(nulls=0), order, collapse)
    assert only["conversions"].to_dict() == pytest.approx(expected, abs=1e-9)


@pytest.mark.slow
@PROPERTY
@given(table=path_tables(), data=st.data())
def test_shapley_is_the_path_set_shapley_value_and_renaming_invariant(table: pd.DataFrame, data: st.DataObject) -> None:
    out = attribute(table, "shapley")
    assert out["conversions"].to_dict() == pytest.approx(brute_force_shapley(table), abs=1e-9)
    # rename the channels by a random bijection and shuffle channel order inside paths and rows
    new_names = data.draw(st.permutations([f"ch{i}" for i in range(len(CHANNEL_NAMES))]))
    rename = dict(zip(CHANNEL_NAMES, new_names, strict=True))
    renamed = table.assign(
        path=[" > ".join(rename[c] for c in reversed(p.split(" > "))) for p in table["path"]]
    ).sample(frac=1, random_state=0)
    again = attribute(renamed, "shapley")
    for old, new in rename.items():
        if old in out.index:
            assert again.loc[new, "conversions"] == pytest.approx(out.loc[old, "conversions"], abs=1e-12)
            assert again.loc[new, "value"] == pytest.approx(out.loc[old, "value"], abs=1e-9)


@st.composite
def contract_data(draw: st.DrawFn) -> tuple[list, list, list]:
    n_leads = draw(st.integers(1, 5))
    day = st.integers(0, 40).map(lambda d: f"2024-01-{1 + d % 28:02d} {d % 24:02d}:00:00")
    leads = [(f"L{i}", draw(day), draw(st.sampled_from(CHANNEL_NAMES[:5])), None) for i in range(n_leads)]
    touches = [
        (
            f"L{draw(st.integers(0, n_leads - 1))}",
            draw(day),
            draw(st.sampled_from(CHANNEL_NAMES[:4])),
            draw(st.sampled_from(["a", "b", None])),
        )
        for _ in range(draw(st.integers(0, 12)))
    ]
    opportunities = []
    for i in range(draw(st.integers(0, 5))):
        created, closed = sorted([draw(day), draw(day)])
        opportunities.append(
            (
                f"O{i}",
                f"L{draw(st.integers(0, n_leads - 1))}",
                created,
                closed,
                draw(st.sampled_from(["won", "won", "lost"])),
                draw(st.floats(0, 500).map(round)),
            )
        )
    return touches, leads, opportunities


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=contract_data())
def test_touch_level_properties(data: tuple[list, list, list]) -> None:
    # materialised: built once, so each model compiles and runs a small query
    j = touch_journeys(*contract_tables(*data)).materialize()
    total = j.summary()
    # every won deal is a journey (through its touches or its lead's own channel), so every
    # model credits the whole lead revenue
    won = [amount for *_, stage, amount in data[2] if stage == "won"]
    assert (total["conversions"], total["value"]) == (len(won), pytest.approx(sum(won)))
    sources = j.credit_sources()
    assert sources["conversions"].sum() == len(won) and sources.loc["unattributed", "conversions"] == 0
    paths = j.paths()
    for model in MODELS:
        options = {"converters_only": total["nulls"] == 0} if model == "markov" else {}
        out = attribute(j, model, **options)
        assert out["conversions"].sum() == pytest.approx(total["conversions"], abs=1e-9), model
        assert out["value"].sum() == pytest.approx(total["value"], abs=1e-6), model
        assert (out.to_numpy() >= -1e-12).all(), model
        if model in AGREEING:
            pd.testing.assert_frame_equal(attribute(paths, model, **options), out, check_exact=False, atol=1e-9)
