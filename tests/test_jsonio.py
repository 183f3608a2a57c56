"""Tests of the kit's JSON writer (kpi_helpers.jsonio), with hand-worked values."""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpi_helpers import jsonio
from kpi_helpers.kpis import Undefined


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (math.nan, None),
        (float("inf"), None),
        (-math.inf, None),
        (Undefined("no visits"), None),
        (pd.NA, None),
        (pd.NaT, None),
        (np.float64("nan"), None),
        (np.int64(3), 3),
        (np.float32(1.5), 1.5),
        (np.bool_(True), True),
        (Decimal("12.50"), 12.5),
        (Decimal("42"), 42),
        (Decimal("NaN"), None),
        (pd.Timestamp("2026-07-01"), "2026-07-01T00:00:00"),
        (pd.Timestamp("2026-07-01 09:30", tz="UTC"), "2026-07-01T09:30:00+00:00"),
        (np.datetime64("2026-07-01T09:30", "ns"), "2026-07-01T09:30:00"),
        (dt.date(2026, 7, 1), "2026-07-01"),
        (Path("/data/leads.csv"), "/data/leads.csv"),
        ({"b", "a"}, ["a", "b"]),
        ((1, 2.5), [1, 2.5]),
        (np.array([1.0, np.nan]), [1.0, None]),
        (pd.Series({"x": 1.5, "y": np.nan}), {"x": 1.5, "y": None}),
        (pd.DataFrame({"channel": ["Email"], "cvr": [np.nan]}), [{"channel": "Email", "cvr": None}]),
        ({1: "a", "b": {2: None}}, {"1": "a", "b": {"2": None}}),
    ],
    ids=[
        "nan", "inf", "-inf", "undefined", "pd-na", "nat", "np-nan", "np-int", "np-float", "np-bool",
        "decimal", "decimal-whole", "decimal-nan", "timestamp", "timestamp-tz", "datetime64-ns", "date",
        "path", "set-sorted", "tuple", "array", "series", "frame", "keys-as-text",
    ],
)  # fmt: skip
def test_plain(value: object, expected: object) -> None:
    assert jsonio.plain(value) == expected


def test_dumps_keeps_order_unless_sorted_and_never_writes_nan() -> None:
    metrics = {"quarter": "2026Q3", "b": math.nan, "a": "Zürich"}
    assert jsonio.dumps(metrics, indent=None) == '{"quarter": "2026Q3", "b": null, "a": "Zürich"}'
    assert jsonio.dumps(metrics, sort_keys=True, compact=True) == '{"a":"Zürich","b":null,"quarter":"2026Q3"}'


def test_an_unknown_object_is_refused_unless_converted() -> None:
    with pytest.raises(TypeError, match=r"`metrics.json`: cannot write a object \(<object object"):
        jsonio.dumps({"x": object()}, what="metrics.json")
    assert jsonio.plain({"x": complex(1, 2)}, default=str) == {"x": "(1+2j)"}


def test_write_json_writes_atomically_with_a_final_newline(tmp_path: Path) -> None:
    path = jsonio.write_json(tmp_path / "m.json", {"n": np.int64(2)}, indent=1)
    assert path.read_text() == '{\n "n": 2\n}\n'
    jsonio.write_json(path, {"n": 3}, mode=0o600)
    assert json.loads(path.read_text()) == {"n": 3} and path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@given(_JSON)
def test_anything_json_like_round_trips_with_missing_numbers_as_null(value: object) -> None:
    def expect(v: object) -> object:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, list):
            return [expect(x) for x in v]
        if isinstance(v, dict):
            return {k: expect(x) for k, x in v.items()}
        return v

    assert json.loads(jsonio.dumps(value)) == expect(value)
