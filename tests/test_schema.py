"""The data contract: every table is well formed, and the rules other modules rely on hold."""

from __future__ import annotations

import pytest

from kpi_helpers.schema import (
    ACTIVITY_TABLES,
    CONTRACT,
    COST_TYPES,
    COVERAGE_KINDS,
    IBIS_TYPES,
    KINDS,
    MARKETING_COST_TYPES,
    REFERENCES,
    contract_markdown,
)


@pytest.mark.parametrize("table", list(CONTRACT.values()), ids=list(CONTRACT))
def test_each_table_is_well_formed(table):
    names = table.column_names
    assert len(names) == len(set(names)), "duplicate column"
    assert table.coverage in COVERAGE_KINDS
    # a table that covers time by its rows names the date column it is read by
    if table.coverage != "declared":
        assert table.date_column in names and table.column(table.date_column).kind in ("date", "timestamp")
    assert set(table.grain) <= set(names)
    for c in table.columns:
        assert c.kind in KINDS and c.kind in IBIS_TYPES
        assert c.nullable or not c.optional, f"{c.name}: an optional column is empty when absent"
        if c.accepted:
            assert c.kind == "string"


def test_references_point_at_unique_ids():
    for (table, column), (ref_table, ref_column) in REFERENCES.items():
        assert column in CONTRACT[table].column_names
        assert CONTRACT[ref_table].column(ref_column).unique


def test_activity_tables_are_daily_or_event_tables():
    assert {CONTRACT[t].coverage for t in ACTIVITY_TABLES} <= {"daily", "event"}


def test_marketing_cost_is_every_cost_type_but_sales():
    assert set(MARKETING_COST_TYPES) == set(COST_TYPES) - {"sales"}


def test_contract_markdown_lists_every_table_and_column():
    text = contract_markdown()
    for t in CONTRACT.values():
        assert f"### `{t.name}`" in text
        for c in t.columns:
            assert f"| `{c.name}` |" in text


def test_activity_cost_is_marketing_cost_that_varies_with_activity():
    from kpi_helpers.schema import ACTIVITY_COST_TYPES

    assert set(ACTIVITY_COST_TYPES) == {"media", "production"}
    assert set(ACTIVITY_COST_TYPES) < set(MARKETING_COST_TYPES)


def test_the_optional_tables_and_the_deal_type():
    from kpi_helpers.schema import OPPORTUNITY_TYPES

    history, experiments = CONTRACT["opportunity_history"], CONTRACT["experiments"]
    assert history.column_names == ["opportunity_id", "changed_at", "stage", "amount"]
    assert experiments.column_names == ["channel", "start", "end", "x", "delta_x", "delta_y", "sigma"]
    assert REFERENCES[("opportunity_history", "opportunity_id")] == ("opportunities", "opportunity_id")
    kind = CONTRACT["opportunities"].column("type")
    assert kind.optional and kind.nullable and kind.accepted == OPPORTUNITY_TYPES
    # only changes may be negative
    assert [c.name for t in CONTRACT.values() for c in t.columns if c.kind == "number"] == [
        "delta_x",
        "delta_y",
        "sigma",
    ]
