"""The models' entries of metrics.json: n/a with a reason a person can act on, never 0, and the switches."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kpi_helpers.exceptions import KpiInputError
from kpi_helpers.model_metrics import clv_settings, mmm_settings, model_entries
from kpi_helpers.source import DataSource

TINY = Path(__file__).parent / "fixtures" / "tiny"


def test_settings_follow_the_parameters_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPI_MODEL_DRAWS", "120")
    s = mmm_settings({"target": "pipeline", "weeks": 78, "draws": 0})
    assert (s.target, s.weeks, s.draws, s.tune) == ("pipeline", 78, 120, 120)
    assert mmm_settings({"draws": 300}).draws == 300  # a parameter wins over the environment
    monkeypatch.delenv("KPI_MODEL_DRAWS")
    assert mmm_settings({}).draws == mmm_settings(None).draws >= 500  # the accurate default


@pytest.mark.parametrize("value", ["many", "3"])
def test_a_bad_draws_setting_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("KPI_MODEL_DRAWS", value)
    with pytest.raises(KpiInputError, match="KPI_MODEL_DRAWS"):
        mmm_settings({})


def test_clv_settings_read_goals_yml(tmp_path: Path) -> None:
    from kpi_helpers.config import Settings

    s = clv_settings(Settings(gross_margin=0.6, clv_model="bgnbd", clv_horizon_years=2))
    assert (s.gross_margin, s.model, s.horizon_years) == (0.6, "bgnbd", 2.0)


def test_models_turned_off_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPI_NO_MODELS", "1")
    out = model_entries(None, "2025Q1")
    assert out["incrementality"] is None and out["clv_model"] is None
    assert out["undefined"] == dict.fromkeys(("incrementality", "clv_model"), "models are turned off (KPI_NO_MODELS=1)")


def test_without_spend_the_mix_model_is_na_with_the_table_it_needs(tmp_path: Path) -> None:
    folder = tmp_path / "tiny"
    shutil.copytree(TINY, folder)
    (folder / "spend.csv").unlink()
    out = model_entries(DataSource.open(folder), "2025Q1")
    assert out["incrementality"] is None
    assert "spend" in out["undefined"]["incrementality"]
