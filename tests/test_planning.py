"""Tests of planning a report run (kpi_helpers.planning): parameters, conversions, the plan, the
inputs' checks. The refusals of a whole run, before any kernel starts, are in test_runner.py."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import write_notebook

from kpi_helpers import planning
from kpi_helpers.exceptions import ParameterError, ReportInputError
from kpi_helpers.planning import parse_params

PARAMS = 'data: str = "data/sample"  # exports\nquarter: str = "latest"  # 2026Q3, latest\n'


def test_parse_params_keeps_text_and_splits_on_first_equals() -> None:
    assert parse_params(["target=0.75", "note=a=b", "empty="]) == {
        "target": "0.75",
        "note": "a=b",
        "empty": "",
    }


@pytest.mark.parametrize("bad", ["novalue", "=5", "two words=1", "1x=2"], ids=["no-eq", "no-key", "space", "digit"])
def test_parse_params_rejects_malformed(bad: str) -> None:
    with pytest.raises(ParameterError, match=r"`--param` expects `name=value`"):
        parse_params([bad])


@pytest.mark.parametrize(
    ("text", "type_name", "expected"),
    [
        ("0.75", "float", 0.75),
        ("3", "int", 3),
        ("yes", "bool", True),
        ("off", "bool", False),
        ("2026Q3", "str", "2026Q3"),
        ("none", "Optional[int]", None),
        ("7", "int | None", 7),
        ("[1, 2]", "list", [1, 2]),
        ("5", "None", 5),  # untyped: Python literal ...
        ("Paid search", "None", "Paid search"),  # ... else the text
    ],
    ids=[
        "float",
        "int",
        "bool-yes",
        "bool-off",
        "str",
        "optional-none",
        "union",
        "list",
        "untyped-int",
        "untyped-text",
    ],
)
def test_param_text_is_converted_to_declared_type(text: str, type_name: str, expected: object) -> None:
    assert planning._convert(text, type_name) == expected


@pytest.mark.parametrize(("text", "type_name"), [("lots", "float"), ("1.5", "int"), ("maybe", "bool")])
def test_param_text_that_does_not_convert_is_refused(text: str, type_name: str) -> None:
    with pytest.raises(ValueError, match=text):
        planning._convert(text, type_name)


def test_plan_passes_only_declared_standard_parameters(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "a.ipynb", ("code", PARAMS + "target: float = 0.5", ["parameters"]))
    standard = {"data": "/d", "quarter": "2026Q3", "mapping": None, "goals": "/g.yml", "engine": "duckdb"}
    (job,) = planning.plan([nb], standard, {"target": "0.9"})
    assert job.parameters == {"data": "/d", "quarter": "2026Q3", "target": 0.9}
    assert (job.name, job.title) == ("a", "A")


def test_plan_reports_every_parameter_problem_together(tmp_path: Path) -> None:
    typed = write_notebook(tmp_path / "a.ipynb", ("code", PARAMS + "target: float = 0.5", ["parameters"]))
    bare = write_notebook(tmp_path / "b.ipynb", ("code", "x = 1"))
    with pytest.raises(ParameterError) as info:
        planning.plan([typed, bare], {"quarter": "2026Q3"}, {"target": "lots", "typo": "1"})
    message = str(info.value)
    assert "`b.ipynb` has no cell tagged `parameters`" in message
    assert "unknown parameter `typo`" in message
    assert "parameter `target` for `a.ipynb` expects float, got 'lots'" in message
    assert message.endswith("nothing was executed")


def test_standard_parameters_cannot_come_through_params(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "a.ipynb", ("code", PARAMS, ["parameters"]))
    with pytest.raises(ParameterError, match=r"`quarter` cannot be passed with `--param`"):
        planning.plan([nb], {"quarter": "2026Q3"}, {"quarter": "x"})


@pytest.mark.parametrize(
    ("cells", "title"),
    [
        ([("markdown", "# Goal setting\n\ntext")], "Goal setting"),
        ([("markdown", "no heading")], "Funnel view"),
        ([("code", "x = 1")], "Funnel view"),
    ],
    ids=["heading", "no-heading", "no-markdown"],
)
def test_title_is_the_first_heading_else_the_name(tmp_path: Path, cells: list, title: str) -> None:
    nb = write_notebook(tmp_path / "03-funnel_view.ipynb", *cells, ("code", PARAMS, ["parameters"]))
    (job,) = planning.plan([nb], {}, {})
    assert job.title == title


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(0.5, 1), (1, 1), (1.2, 2), (600.0, 600), ("30", 30), (None, None)],
    ids=["half", "one", "fraction", "default", "text", "none"],
)
def test_cell_timeout_is_rounded_up_to_whole_seconds(value: object, seconds: int | None) -> None:
    assert planning.cell_timeout(value) == seconds


@pytest.mark.parametrize(
    "value", [0, -5, math.nan, math.inf, "soon", True], ids=["zero", "negative", "nan", "inf", "text", "bool"]
)
def test_cell_timeout_must_be_a_positive_number(value: object) -> None:
    with pytest.raises(ReportInputError, match=r"`cell_timeout` must be a positive number of seconds"):
        planning.cell_timeout(value)


def test_mapping_is_a_list_of_presets_and_absolute_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mine.yml").write_text("leads: {file: leads.csv}\n")
    monkeypatch.chdir(tmp_path)
    assert planning.mapping_refs(["ga4", "mine.yml"]) == ["ga4", str(tmp_path / "mine.yml")]
    assert planning.mapping_refs(Path("mine.yml")) == [str(tmp_path / "mine.yml")]
    assert planning.mapping_refs("hubspot") == ["hubspot"]
    assert planning.mapping_refs([]) is None
    assert planning.mapping_refs(None) is None
    (tmp_path / "ga4").write_text("a file named like a preset")
    assert planning.mapping_refs(["ga4"]) == ["ga4"]  # the preset wins, as in mapping.load_mapping


@pytest.mark.parametrize(
    ("label", "ok"),
    [("2026Q3", True), ("FY2026Q1", True), ("my_run-2", True), ("../etc", False), ("index.html", False), ("", False)],
    ids=["quarter", "fiscal", "name", "path", "dotted", "empty"],
)
def test_a_quarter_label_must_name_a_folder(label: str, ok: bool) -> None:
    if ok:
        assert planning.check_label(label) == label
    else:
        with pytest.raises(ReportInputError, match=r"cannot name a report folder"):
            planning.check_label(label)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", None), ("1700000000", 1700000000), ("yesterday", "must be whole seconds"), ("-1", "must be whole seconds")],
    ids=["unset", "set", "text", "negative"],
)
def test_source_date_epoch(monkeypatch: pytest.MonkeyPatch, value: str, expected: object) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    if isinstance(expected, str):
        with pytest.raises(ReportInputError, match=expected):
            planning.source_date_epoch()
    else:
        assert planning.source_date_epoch() == expected


def test_default_notebooks_are_the_numbered_ones(tmp_path: Path) -> None:
    for name in ("01-b.ipynb", "00-a.ipynb", "scratch.ipynb"):
        write_notebook(tmp_path / "notebooks" / name, ("code", "x = 1"))
    assert [p.name for p in planning.default_notebooks(tmp_path)] == ["00-a.ipynb", "01-b.ipynb"]
    with pytest.raises(ReportInputError, match=r"no notebooks found: expected `notebooks/NN-\*.ipynb`"):
        planning.default_notebooks(tmp_path / "empty")
