"""Modelled CLV (:mod:`kpi_helpers.clv_model`): the per-account summary worked by hand on a tiny folder,
the choices (model, channel pooling, settings, refusals), the result's shape and its cache round trip
(fast); the published BG/NBD fit of the CDNOW data, a BG/NBD fit recovering known parameters from a
synthetic CRM, and the sample's shifted beta-geometric fit against its truth (slow: NUTS and MAP fits).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kpi_helpers import cache
from kpi_helpers import clv_model as C
from kpi_helpers.config import Settings
from kpi_helpers.exceptions import KpiInputError
from kpi_helpers.schema import SALES_SOURCED
from kpi_helpers.source import DataSource

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
CDNOW = Path(__file__).parent / "fixtures" / "cdnow" / "cdnow_customers_summary.csv"
CUTOFF = dt.date(2025, 10, 1)
LEADS_HEADER = "lead_id,created_at,channel,mql_at,sql_at\n"
OPPS_HEADER = "opportunity_id,lead_id,account_id,created_at,closed_at,stage,amount,type\n"


def write_folder(folder: Path, leads: str, opportunities: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "leads.csv").write_text(LEADS_HEADER + leads)
    (folder / "opportunities.csv").write_text(OPPS_HEADER + opportunities)
    return folder


# A1 (lead L1 Email, then L3 Paid Search): new 2023-02-01; a renewal and an expansion won the same day,
#     2024-01-25; its second renewal lost. A2 (no lead): new 2024-03-15, renewed 2025-03-10.
# A3: a renewal and an expansion only (a customer from before the data). A4: lost its only deal.
# A5 (L4 Events): new 2025-09-20. A6: won after the cutoff. Leads F0-F32 (one a month) and F99 (the
# data's last day, 2025-09-30) lead nowhere: validation refuses dates a year from every other as typos.
TINY_LEADS = (
    """\
L1,2023-01-05 09:00:00,Email,,
L2,2023-03-01 09:00:00,Referral,,
L3,2024-06-01 09:00:00,Paid Search,,
L4,2025-08-01 09:00:00,Events,,
L5,2025-09-01 09:00:00,Organic Search,,
"""
    + "".join(f"F{i},{2023 + i // 12}-{i % 12 + 1:02d}-15 09:00:00,Organic Search,,\n" for i in range(33))
    + "F99,2025-09-30 09:00:00,Organic Search,,\n"
)
TINY_OPPS = """\
O1,L1,A1,2023-01-10 10:00:00,2023-02-01 10:00:00,won,10000,new
O2,,A1,2023-11-01 10:00:00,2024-01-25 10:00:00,won,10500,renewal
O3,,A1,2023-12-01 10:00:00,2024-01-25 15:00:00,won,2000,expansion
O4,,A1,2024-11-01 10:00:00,2025-02-05 10:00:00,lost,11000,renewal
O5,L3,A1,2024-06-02 10:00:00,2024-08-01 10:00:00,lost,3000,expansion
O6,,A2,2024-01-10 10:00:00,2024-03-15 10:00:00,won,20000,new
O7,,A2,2024-12-15 10:00:00,2025-03-10 10:00:00,won,21000,renewal
O8,,A3,2023-05-01 10:00:00,2023-06-01 10:00:00,won,5000,renewal
O9,,A3,2024-01-05 10:00:00,2024-02-01 10:00:00,won,1000,expansion
O10,L2,A4,2023-03-05 10:00:00,2023-05-01 10:00:00,lost,7000,new
O11,L4,A5,2025-08-02 10:00:00,2025-09-20 10:00:00,won,8000,
O12,L5,A6,2025-09-02 10:00:00,2025-10-15 10:00:00,won,9000,new
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> DataSource:
    return DataSource.open(write_folder(tmp_path_factory.mktemp("clv") / "data", TINY_LEADS, TINY_OPPS))


@pytest.fixture(scope="module")
def summary(tiny: DataSource) -> pd.DataFrame:
    return C.account_summary(tiny, CUTOFF)


M = 365.25 / 12  # days a month
# by hand, from the comments above TINY_LEADS
BY_HAND = {
    "A1": {
        "channel": "Email",  # its first lead, not the later Paid Search one
        "won_deals": 3,
        "new_deals": 1,
        "renewals": 1,
        "expansions": 1,
        "purchase_days": 2,  # the renewal and the expansion closed the same day: one purchase
        "first_won": pd.Timestamp("2023-02-01"),
        "last_won": pd.Timestamp("2024-01-25"),
        "total_amount": 22_500.0,
        "first_amount": 10_000.0,
        "acquired": True,
        "frequency": 1,
        "recency": 358 / M,  # 2023-02-01 to 2024-01-25
        "T": 973 / M,  # 2023-02-01 to 2025-10-01
        "monetary_value": 12_500.0,  # 10,500 + 2,000 on the one repeat day
        "periods_observed": 3,  # 1 + floor((973 - 60) / 365.25) = 1 + 2
        "periods_active": 2,  # the first contract and one renewal: churned at the second
        "period_value": 11_250.0,  # 22,500 over 2 paid years
    },
    "A2": {
        "channel": SALES_SOURCED,
        "won_deals": 2,
        "renewals": 1,
        "expansions": 0,
        "acquired": True,
        "frequency": 1,
        "recency": 360 / M,
        "T": 565 / M,
        "monetary_value": 21_000.0,
        "periods_observed": 2,  # 1 + floor((565 - 60) / 365.25)
        "periods_active": 2,  # renewed: active
        "period_value": 20_500.0,
    },
    "A3": {"channel": SALES_SOURCED, "won_deals": 2, "new_deals": 0, "acquired": False, "first_amount": 5_000.0},
    "A5": {
        "channel": "Events",
        "won_deals": 1,
        "new_deals": 1,  # no type: new business
        "acquired": True,
        "frequency": 0,
        "recency": 0.0,
        "T": 11 / M,
        "monetary_value": math.nan,  # no repeat purchase
        "periods_observed": 1,  # 11 days: no renewal due yet
        "periods_active": 1,
        "period_value": 8_000.0,
    },
}
CASES = [(acc, col, v) for acc, row in BY_HAND.items() for col, v in row.items()]


def test_summary_has_one_row_per_account_with_a_won_deal_before_the_cutoff(summary):
    assert sorted(summary.index) == ["A1", "A2", "A3", "A5"]  # A4 never won, A6 won after the cutoff


@pytest.mark.parametrize(("account", "column", "expected"), CASES, ids=[f"{a}-{c}" for a, c, _ in CASES])
def test_summary_by_hand(summary, account, column, expected):
    got = summary.loc[account, column]
    if isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(got)
    elif isinstance(expected, float):
        assert got == pytest.approx(expected)
    else:
        assert got == expected


def test_summary_reaches_pandas_one_row_per_account(tiny):
    before = tiny.rows_fetched
    C.account_summary(tiny, dt.date(2025, 9, 30))  # another cutoff: not memoised
    assert tiny.rows_fetched - before == 4


# ------------------------------------------------------------------------------------ choices


@pytest.mark.parametrize(
    ("won", "renewals", "setting", "expected"),
    [
        ([3, 1, 2], [2, 0, 0], "auto", "sbg"),  # 2 of 3 repeat deals are renewals
        ([3, 1, 3], [1, 0, 0], "auto", "bgnbd"),  # 1 of 4
        ([2, 2], [0, 0], "auto", "bgnbd"),  # no type column: no renewal
        ([1, 1], [0, 0], "auto", "bgnbd"),  # no repeat deal at all
        ([3, 3], [2, 2], "bgnbd", "bgnbd"),  # the setting wins
    ],
    ids=["mostly-renewals", "mostly-expansions", "no-type", "no-repeats", "set"],
)
def test_choose_model(won, renewals, setting, expected):
    model, why = C.choose_model(pd.DataFrame({"won_deals": won, "renewals": renewals}), setting)
    assert model == expected
    assert "repeat deals" in why


@pytest.mark.parametrize(
    ("counts", "groups", "reference"),
    [
        ({"A": 50, "B": 40}, {"A": "A", "B": "B"}, "A"),
        ({"A": 50, "B": 20, "C": 15}, {"A": "A", "B": C.POOLED, "C": C.POOLED}, "A"),  # 35 pooled: a group
        ({"A": 50, "B": 20}, {"A": "A", "B": "A"}, "A"),  # 20 pooled is still thin: joins the largest
        ({"A": 10, "B": 5}, {"A": C.POOLED, "B": C.POOLED}, C.POOLED),  # all thin: one group
        ({"B": 40, "A": 40}, {"A": "A", "B": "B"}, "A"),  # a tie goes to the first name
    ],
    ids=["all-thick", "pool", "pool-joins-largest", "all-thin", "tie"],
)
def test_channel_groups(counts, groups, reference):
    channels = pd.Series([c for c, n in counts.items() for _ in range(n)])
    got, ref, others = C.channel_groups(channels, 30)
    assert got == groups
    assert ref == reference
    assert others == sorted(set(groups.values()) - {reference})


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"model": "pareto"}, "`model` must be one of auto, bgnbd, sbg"),
        ({"horizon_years": 0}, r"`horizon_years` must be a number of years in \(0, 50\]"),
        ({"gross_margin": 75}, r"`gross_margin` must be a fraction in \(0, 1\] \(0.7 for 70%\); got 75"),
        ({"period_months": 0}, "`period_months` must be a whole number from 1 to 60"),
        ({"chains": 2.5}, "`chains` must be a whole number"),
        ({"level": 90.0}, "`level` must be a fraction between 0 and 1"),
        ({"horizon_years": 0.25}, r"shorter than one contract period \(`period_months` 12\)"),
    ],
    ids=["model", "horizon", "margin-in-percent", "period", "chains", "level", "horizon-under-a-period"],
)
def test_settings_refused(changes, match):
    with pytest.raises(KpiInputError, match=match):
        C.ClvSettings(**changes)


def test_settings_take_the_margin_from_goals_and_name_every_setting_in_the_key():
    s = C.ClvSettings.from_settings(Settings(gross_margin=0.75), horizon_years=2)
    assert (s.gross_margin, s.horizon_months, s.horizon_periods) == (0.75, 24, 2)
    assert {k for k, _ in s.key()} == {f.name for f in dataclasses.fields(C.ClvSettings)}


def test_refuses_without_opportunities(tmp_path):
    (tmp_path / "leads.csv").write_text(LEADS_HEADER + "L1,2025-01-05 09:00:00,Email,,\n")
    with pytest.raises(KpiInputError, match="the source has no `opportunities`; add opportunities.csv"):
        C.fit_clv(DataSource.open(tmp_path), "2025Q1")


@pytest.mark.parametrize(
    ("model", "match"),
    [
        ("sbg", r"only 2 customers whose first renewal was due at least 60 days before the cutoff, of 3 acquired"),
        ("bgnbd", r"only 2 customers acquired in the data who bought again .*, of 3 acquired in the data; it needs"),
    ],
)
def test_refuses_too_few_repeat_customers(tiny, model, match):
    with pytest.raises(KpiInputError, match=match):
        C.fit_clv(tiny, "2025Q3", C.ClvSettings(model=model))


def test_refuses_a_renewal_model_without_renewals(tmp_path):
    opps = "".join(f"O{i},,A{i},2024-01-0{i} 10:00:00,2024-02-0{i} 10:00:00,won,1000,new\n" for i in range(1, 4))
    src = DataSource.open(write_folder(tmp_path, "", opps))
    with pytest.raises(KpiInputError, match="needs renewals.*set `model: bgnbd`"):
        C.fit_clv(src, "2024Q1", C.ClvSettings(model="sbg"))


def test_refuses_a_quarter_without_won_deals(tmp_path):
    src = DataSource.open(
        write_folder(tmp_path, TINY_LEADS, "O1,,A1,2023-01-10 10:00:00,2023-05-01 10:00:00,won,1000,new\n")
    )
    with pytest.raises(KpiInputError, match="no deal was won before 2023-04-01 in `opportunities`; choose a later"):
        C.fit_clv(src, "2023Q1")


# ------------------------------------------------------------------------------------ the result


def hand_result() -> C.ClvResult:
    """A result as a fit leaves it, with one channel given and two n/a."""
    channels = pd.DataFrame(
        {
            "group": ["Email", "Email", SALES_SOURCED],
            "customers": [40, 3, 30],
            "clv": [30_000.0, 30_000.0, 50_000.0],
            "clv_low": [25_000.0, 25_000.0, 41_000.0],
            "clv_high": [36_000.0, 36_000.0, 60_000.0],
            "clv_to_cac": [3.0, math.nan, math.nan],
            "clv_to_cac_low": [2.1, math.nan, math.nan],
            "clv_to_cac_high": [4.2, math.nan, math.nan],
            "clv_reason": ["", "", ""],
            "clv_to_cac_reason": ["", "no customer was acquired through Webinar in 2025Q3", "sales-sourced ..."],
        },
        index=pd.Index(["Email", "Webinar", SALES_SOURCED], name="channel"),
    )
    accounts = pd.DataFrame(
        {"channel": ["Email"], "acquired": [True], "first_won": pd.to_datetime(["2024-01-02"]).astype("datetime64[s]")},
        index=pd.Index(["A1"], name="account_id"),
    )
    return C.ClvResult(
        model="sbg",
        why="renewals are 90% of the 10 repeat deals",
        quarter="2025Q3",
        cutoff=CUTOFF,
        settings=dict(C.ClvSettings().key()),
        accounts=accounts,
        channels=channels,
        parameters=pd.DataFrame({"model": ["sBG"], "parameter": ["alpha"], "mean": [1.0], "r_hat": [1.0]}),
        diagnostics={"converged": True, "rhat_max": 1.0, "warnings": []},
        notes=["a note"],
    )


def test_metrics_have_exactly_the_keys_of_metrics_json_and_none_for_na():
    m = hand_result().metrics()
    assert list(m) == ["model", "by_channel"]
    assert m["model"] == "sbg"
    assert all(list(v) == list(C.METRIC_KEYS) for v in m["by_channel"].values())
    assert m["by_channel"]["Webinar"]["clv_to_cac"] is None  # n/a, never 0
    assert m["by_channel"]["Email"] == {
        "clv": 30_000.0,
        "clv_low": 25_000.0,
        "clv_high": 36_000.0,
        "clv_to_cac": 3.0,
        "clv_to_cac_low": 2.1,
        "clv_to_cac_high": 4.2,
    }
    json.dumps(m, allow_nan=False)  # plain JSON


def test_a_none_keeps_its_reason_beside_it():
    r = hand_result()
    assert r.reason("Webinar", "clv_to_cac_low") == "no customer was acquired through Webinar in 2025Q3"
    assert r.reason("Email") == ""


def test_the_result_round_trips_through_the_cache_without_pickle():
    r = hand_result()
    data = cache.encode(r.to_cache(), name="x")  # raises TypeError if not stored exactly
    assert b"pickle" not in data
    back = C.ClvResult.from_cache(cache.decode(data, name="x"))
    assert back.metrics() == r.metrics()
    pd.testing.assert_frame_equal(back.channels, r.channels)
    assert (back.cutoff, back.notes, back.label) == (CUTOFF, ["a note"], C.MODEL_LABELS["sbg"])


# --------------------------------------------------------------------------------------- fits


@pytest.mark.slow
def test_bgnbd_reproduces_the_published_cdnow_fit():
    """Fader, Hardie & Lee (2005), table 1: r 0.243, alpha 4.414, a 0.793, b 2.426 (maximum likelihood).
    With flat priors the MAP is the maximum-likelihood estimate."""
    from pymc_extras.prior import Prior
    from pymc_marketing.clv import BetaGeoModel

    data = pd.read_csv(CDNOW).rename(columns={"ID": "customer_id"})
    assert len(data) == 2357
    model = BetaGeoModel(model_config={k: Prior("HalfFlat") for k in ("r", "alpha", "a", "b")})
    model.fit(data=data, method="map", progressbar=False)
    fitted = model.fit_summary()
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    for name, value in published.items():
        assert fitted[name] == pytest.approx(value, rel=0.02), name


TRUTH_BG = {"r": 2.0, "alpha": 24.0, "a": 0.5, "b": 4.0, "referral_rate": 2.0}


def synthetic_crm(folder: Path, *, n: int = 500, seed: int = 7) -> Path:
    """A CRM of ``n`` customers buying by the BG/NBD with known parameters (months; :data:`TRUTH_BG`):
    rate ~ Gamma(r, alpha), Referral customers at twice the rate; after each repeat purchase a customer
    leaves with p ~ Beta(a, b). Deal values by Gamma-Gamma (p 6, q 4, v 10 thousand). Acquired
    2022-2024 (3 in 5 by Email, the others by Referral), observed to 2025-09-30; first deals are new
    business, repeat deals expansions."""
    rng = np.random.default_rng(seed)
    end = pd.Timestamp("2025-09-30 12:00")
    leads, opps = [LEADS_HEADER.strip()], [OPPS_HEADER.strip()]
    for i in range(n):
        channel = "Email" if i % 5 < 3 else "Referral"
        start = pd.Timestamp("2022-01-03 12:00") + pd.Timedelta(days=int(rng.integers(0, 3 * 365)))
        rate = rng.gamma(TRUTH_BG["r"], 1 / TRUTH_BG["alpha"]) * (
            TRUTH_BG["referral_rate"] if channel == "Referral" else 1
        )
        leave = rng.beta(TRUTH_BG["a"], TRUTH_BG["b"])
        nu = rng.gamma(4, 1 / 10)
        times = [0.0]
        while True:
            t = times[-1] + rng.exponential(1 / rate)
            if start + pd.Timedelta(days=t * M) > end:
                break
            times.append(t)
            if rng.random() < leave:
                break
        leads.append(f"L{i},{start - pd.Timedelta(days=40)},{channel},,")
        for k, t in enumerate(times):
            closed = start + pd.Timedelta(days=t * M)
            amount = round(rng.gamma(6, 1 / nu) * 1000, -2)
            lead, kind = (f"L{i}", "new") if k == 0 else ("", "expansion")
            opps.append(f"O{i}-{k},{lead},A{i},{closed - pd.Timedelta(days=20)},{closed},won,{amount},{kind}")
    leads.append(f"Lend,{end},Email,,")  # the data run to the quarter's end
    return write_folder(folder, "\n".join(leads[1:]) + "\n", "\n".join(opps[1:]) + "\n")


@pytest.mark.slow
def test_bgnbd_fit_recovers_known_parameters_from_a_synthetic_crm(tmp_path):
    src = DataSource.open(synthetic_crm(tmp_path / "crm"))
    r = C.fit_clv(src, "2025Q3")
    assert r.model == "bgnbd"  # no renewal among the repeat deals
    assert r.converged, r.diagnostics["warnings"]
    p = r.parameters.set_index("parameter")
    truth = {
        "r": TRUTH_BG["r"],
        "alpha_scale": TRUTH_BG["alpha"],  # Email, the larger channel, is the reference
        "purchase_coefficient_alpha[group=Referral]": math.log(
            TRUTH_BG["referral_rate"]
        ),  # alpha / e^coef for Referral
    }
    for name, value in truth.items():
        assert p.loc[name, "low"] <= value <= p.loc[name, "high"], (name, value, p.loc[name].to_dict())
    # Referral customers buy twice as often: they are worth more, and the data says so
    assert r.channels.loc["Referral", "clv"] > r.channels.loc["Email", "clv"]
    assert r.channels.loc["Referral", "units"] > r.channels.loc["Email", "units"]
    assert r.channels["clv_to_cac_reason"].str.startswith("needs spend").all()  # no spend: CLV:CAC n/a
    assert r.accounts["p_alive"].between(0, 1).all()
    check_intervals(r)


def check_intervals(r: C.ClvResult) -> None:
    for ch, row in r.metrics()["by_channel"].items():
        for key in ("clv", "clv_to_cac"):
            low, value, high = row[f"{key}_low"], row[key], row[f"{key}_high"]
            if value is None:
                assert low is None and high is None and r.reason(ch, key), (ch, key)
            else:
                assert low <= value <= high, (ch, key, row)
    acquired = r.accounts[r.accounts["acquired"]]
    assert (acquired["clv_low"] <= acquired["clv"] + 1e-6).all() and (
        acquired["clv"] <= acquired["clv_high"] + 1e-6
    ).all()


@pytest.fixture(scope="module")
def sample_fit(tmp_path_factory: pytest.TempPathFactory) -> tuple[C.ClvResult, DataSource, float]:
    data = tmp_path_factory.mktemp("sample") / "data"
    shutil.copytree(SAMPLE, data)
    src = DataSource.open(data)
    started = time.perf_counter()
    result = C.fit_clv(src, "latest")
    return result, src, time.perf_counter() - started


@pytest.mark.slow
def test_sample_fits_the_renewal_model_and_converges(sample_fit):
    r, _, _ = sample_fit
    assert r.model == "sbg"  # the sample's repeat deals are mostly renewals
    assert r.converged, r.diagnostics["warnings"]
    assert r.diagnostics["divergences"] == 0
    m = r.metrics()
    assert set(m["by_channel"]) >= {"Email", "Events", "Organic Search", "Paid Search", "Referral", SALES_SOURCED}
    check_intervals(r)
    assert m["by_channel"][SALES_SOURCED]["clv_to_cac"] is None  # no marketing cost: a reason, not 0
    assert "sales-sourced" in r.reason(SALES_SOURCED)


@pytest.mark.slow
def test_sample_first_renewal_churn_recovers_the_truth(sample_fit):
    """The generator draws each account's yearly churn from Beta(a, b) by acquisition channel
    (``truth.json``): the model's first-year churn of a new customer is close to a / (a + b), and
    the channels come in the right order."""
    r, _, _ = sample_fit
    truth = json.loads((SAMPLE / "truth.json").read_text())["customers"]["churn_beta"]
    own = r.channels[r.channels["group"] == r.channels.index]  # channels with their own estimate
    mean = {ch: a / (a + b) for ch, (a, b) in truth.items() if ch in own.index}
    assert len(mean) >= 5
    got = own.loc[list(mean), "first_renewal_churn"]
    assert (got - pd.Series(mean)).abs().max() < 0.07, pd.DataFrame({"model": got, "truth": mean})
    assert got.rank().corr(pd.Series(mean).rank(), method="spearman") >= 0.6


@pytest.mark.slow
def test_a_second_fit_of_the_same_data_reads_the_cache(sample_fit):
    r, src, _ = sample_fit
    started = time.perf_counter()
    again = C.fit_clv(src, "latest")
    assert time.perf_counter() - started < 2
    assert again.metrics() == r.metrics()
    assert again.diagnostics == r.diagnostics  # the stored fit, fit time included
