import pytest

from kpi_helpers.config import Settings, load_settings
from kpi_helpers.exceptions import ConfigError


def test_defaults_without_file(tmp_path):
    s = load_settings(tmp_path / "goals.yml")
    assert s == Settings()
    assert (s.fiscal_year_start_month, s.currency, s.growth_uplift, s.growth_lookback_years) == (1, "USD", 0.05, 3)


def test_full_file(tmp_path):
    p = tmp_path / "goals.yml"
    p.write_text(
        "fiscal_year_start_month: 7\ncurrency: EUR\ngrowth_uplift: 0.1\ngrowth_lookback_years: 2\n"
        "kpis:\n  - {name: Leads per quarter, metric: leads, owner: Demand gen, baseline: 2000, target: 3000}\n",
        encoding="utf-8",
    )
    s = load_settings(p)
    assert s.fiscal_year_start_month == 7 and s.currency == "EUR" and s.growth_uplift == 0.1
    (k,) = s.kpis
    assert (k.name, k.metric, k.owner, k.baseline, k.target, k.period) == (
        "Leads per quarter",
        "leads",
        "Demand gen",
        2000.0,
        3000.0,
        "quarter",
    )
    assert k.applies_to("2026Q3", "FY2026")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("fiscal_year_start_month: 13\n", "fiscal_year_start_month"),
        ("growth_uplift: lots\n", "growth_uplift"),
        ("budget: 5\n", "unknown key"),
        ("kpis:\n  - {name: Leads}\n", "missing owner, baseline, target"),
        ("kpis:\n  - {name: L, owner: o, baseline: 1, target: 2, colour: red}\n", "unknown key"),
        ("kpis: [1, 2]\n", "expected a mapping"),
        ("[: bad", "not valid YAML"),
    ],
    ids=["month", "uplift-text", "unknown-key", "kpi-missing", "kpi-extra", "kpi-not-mapping", "yaml"],
)
def test_bad_settings(tmp_path, text, match):
    p = tmp_path / "goals.yml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        load_settings(p)
