"""Settings from ``goals.yml``: fiscal calendar, currency, growth and CLV parameters, KPI targets.

Every key is optional; a data folder without ``goals.yml`` gets the defaults below.

.. code-block:: yaml

    fiscal_year_start_month: 1   # 1-12
    currency: USD
    growth_uplift: 0.05          # points added to the average YoY growth (0.05 = 5 points)
    growth_lookback_years: 3     # completed fiscal years averaged
    gross_margin: 0.7            # for customer lifetime value
    customer_lifetime_years: 3   # expected years a customer stays (1 / annual churn)
    kpis:
      - name: Leads per quarter
        metric: leads            # a metrics.json key (optional: a KPI may be tracked by hand)
        owner: Demand generation
        baseline: 2000           # a number, or year_ago / previous_quarter (that quarter's actual)
        target: 3000             # a number, or funnel (the reverse funnel's requirement; funnel
                                 # metrics: visits, leads, mqls, sqls, opportunities, won_deals)
        period: quarter          # quarter (every quarter), FY2026 or 2026Q3
        goal: revenue            # the goal it serves
        higher_is_better: true
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .exceptions import ConfigError

BASELINE_WORDS = ("year_ago", "previous_quarter")
TARGET_WORDS = ("funnel",)
FUNNEL_METRICS = ("visits", "leads", "mqls", "sqls", "opportunities", "won_deals")


@dataclass(frozen=True)
class KpiTarget:
    name: str
    owner: str
    baseline: float | str | None
    target: float | str
    period: str = "quarter"
    metric: str | None = None
    goal: str = "revenue"
    higher_is_better: bool = True

    def applies_to(self, quarter_label: str, fiscal_year_label: str) -> bool:
        p = self.period.strip().upper()
        return p == "QUARTER" or p == quarter_label.upper() or p == fiscal_year_label.upper()


@dataclass(frozen=True)
class Settings:
    fiscal_year_start_month: int = 1
    currency: str = "USD"
    growth_uplift: float = 0.05
    growth_lookback_years: int = 3
    gross_margin: float = 0.7
    customer_lifetime_years: float = 3.0
    kpis: tuple[KpiTarget, ...] = field(default_factory=tuple)
    source: str = "defaults"


def _number(where: str, key: str, value: Any, lo: float, hi: float, integer: bool = False) -> Any:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and lo <= value <= hi
    if ok and integer and int(value) != value:
        ok = False
    if not ok:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"`{where}`, key `{key}`: expected {kind} from {lo} to {hi}, got {value!r}")
    return int(value) if integer else float(value)


def load_settings(path: str | Path | None) -> Settings:
    """Read ``goals.yml`` (or return defaults when ``path`` is None or missing)."""
    if path is None or not Path(path).exists():
        return Settings()
    where = Path(path).name
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8-sig")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"`{where}` is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"`{where}`: expected a mapping of settings at the top level")
    known = {f.name for f in fields(Settings)} - {"source"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"`{where}`: unknown key(s) {', '.join(map(repr, unknown))}; known: {sorted(known)}")
    kw: dict[str, Any] = {"source": str(path)}
    if "fiscal_year_start_month" in raw:
        kw["fiscal_year_start_month"] = _number(
            where, "fiscal_year_start_month", raw["fiscal_year_start_month"], 1, 12, True
        )
    if "currency" in raw:
        if not (isinstance(raw["currency"], str) and raw["currency"].strip()):
            raise ConfigError(f"`{where}`, key `currency`: expected a currency code such as USD")
        kw["currency"] = raw["currency"].strip()
    for key, lo, hi, integer in (
        ("growth_uplift", -1.0, 10.0, False),
        ("growth_lookback_years", 1, 50, True),
        ("gross_margin", 0.0, 1.0, False),
        ("customer_lifetime_years", 0.0, 100.0, False),
    ):
        if key in raw:
            kw[key] = _number(where, key, raw[key], lo, hi, integer)
    kpis = raw.get("kpis") or []
    if not isinstance(kpis, list):
        raise ConfigError(f"`{where}`, key `kpis`: expected a list of KPI targets")
    targets = []
    kpi_keys = {f.name for f in fields(KpiTarget)}
    for i, item in enumerate(kpis, start=1):
        if not isinstance(item, dict):
            raise ConfigError(f"`{where}`, kpis item {i}: expected a mapping with name, owner, baseline, target")
        missing = [k for k in ("name", "owner", "baseline", "target") if k not in item]
        extra = sorted(set(item) - kpi_keys)
        if missing or extra:
            raise ConfigError(
                f"`{where}`, kpis item {i} ({item.get('name', '?')!r}): "
                + (f"missing {', '.join(missing)}" if missing else "")
                + ("; " if missing and extra else "")
                + (f"unknown key(s) {', '.join(extra)}" if extra else "")
            )
        values = {}
        for k, words in (("baseline", BASELINE_WORDS), ("target", TARGET_WORDS)):
            v = item[k]
            if isinstance(v, str) and v in words:
                values[k] = v
            elif v is None and k == "baseline":
                values[k] = None
            else:
                if isinstance(v, str):
                    raise ConfigError(
                        f"`{where}`, kpis item {i} ({item['name']!r}), `{k}`: expected a number or "
                        f"one of {', '.join(words)}, got {v!r}"
                    )
                values[k] = _number(where, f"kpis[{i}].{k}", v, -1e18, 1e18)
        if values["target"] == "funnel" and item.get("metric") not in FUNNEL_METRICS:
            raise ConfigError(
                f"`{where}`, kpis item {i} ({item['name']!r}): `target: funnel` needs `metric` "
                f"to be one of {', '.join(FUNNEL_METRICS)}"
            )
        if isinstance(values["baseline"], str) and not item.get("metric"):
            raise ConfigError(
                f"`{where}`, kpis item {i} ({item['name']!r}): `baseline: {values['baseline']}` needs a `metric`"
            )
        targets.append(KpiTarget(**{**item, **values}))
    kw["kpis"] = tuple(targets)
    return Settings(**kw)
