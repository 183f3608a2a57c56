"""The modelled entries of ``metrics.json``: ``incrementality`` (the mix model of notebook 05) and
``clv_model`` (the modelled CLV of notebook 04).

The report's metrics function and the notebooks ask for the same fits with the same settings
(:func:`mmm_settings`, :func:`clv_settings`), so the fit runs once: whichever process comes first
computes it, the other waits for the cached result (:meth:`kpi_helpers.source.DataSource.memo`).

A model the data cannot support is ``None`` with its reason under ``undefined`` (as every KPI);
``KPI_NO_MODELS=1`` turns both off (a quick report), and ``KPI_MODEL_DRAWS`` sets the draws and tuning
steps per chain of both (a quick look, or the test suite; the defaults are the accurate ones).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .exceptions import KpiInputError

__all__ = [
    "DRAWS_ENV",
    "NO_MODELS_ENV",
    "clv_of",
    "clv_settings",
    "incrementality_of",
    "mmm_settings",
    "model_entries",
    "turned_off",
]

NO_MODELS_ENV = "KPI_NO_MODELS"
DRAWS_ENV = "KPI_MODEL_DRAWS"
#: the parameters of notebook 05 that are mix model settings
MMM_PARAMS = ("target", "weeks", "draws")


def turned_off() -> str:
    """Why the models are off (``KPI_NO_MODELS=1``), or ``""`` when they are on."""
    if os.environ.get(NO_MODELS_ENV, "") not in ("", "0"):
        return f"models are turned off ({NO_MODELS_ENV}=1)"
    return ""


def _draws() -> int | None:
    text = os.environ.get(DRAWS_ENV, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise KpiInputError(f"{DRAWS_ENV} must be a whole number of draws (such as 200); got {text!r}") from None
    if value < 10:
        raise KpiInputError(f"{DRAWS_ENV} must be at least 10; got {value}")
    return value


def mmm_settings(params: Mapping[str, Any] | None = None) -> Any:
    """The mix model's settings from notebook 05's parameters (``target``, ``weeks``, ``draws``; 0 or
    empty: the default), then :data:`DRAWS_ENV`."""
    from .mmm import MmmSettings

    p = dict(params or {})
    chosen: dict[str, Any] = {}
    if p.get("target"):
        chosen["target"] = str(p["target"])
    if p.get("weeks"):
        chosen["weeks"] = int(p["weeks"])
    draws = int(p["draws"]) if p.get("draws") else _draws()
    if draws:
        chosen["draws"] = chosen["tune"] = draws
    return MmmSettings.of(chosen)


def clv_settings(settings: Any) -> Any:
    """The modelled CLV's settings from ``goals.yml`` (:class:`~kpi_helpers.config.Settings`), then
    :data:`DRAWS_ENV`."""
    from .clv_model import ClvSettings

    draws = _draws()
    extra = {"draws": max(50, draws), "tune": max(50, draws)} if draws else {}
    return ClvSettings.from_settings(settings, **extra)


def incrementality_of(
    src: Any,
    quarter: str,
    params: Mapping[str, Any] | None = None,
    *,
    attribution_model: str = "position_based",
    budget: float | None = None,
    without_lift_tests: bool = True,
) -> tuple[Any, Any, str]:
    """Notebook 05's fits: ``(result, plain, problem)``: the mix model (:func:`mmm_settings` of ``params``),
    the same model without the lift tests when they calibrated it (``plain``, else None), and why there
    is no result (``""`` when there is one)."""
    off = turned_off()
    if off:
        return None, None, off
    from .mmm import fit_incrementality

    try:
        settings = mmm_settings(params)
        result = fit_incrementality(src, quarter, settings, attribution_model=attribution_model, budget=budget)
        plain = None
        if result.calibrated and without_lift_tests:
            plain = fit_incrementality(
                src,
                quarter,
                settings.model_copy(update={"calibrate": False}),
                attribution_model=attribution_model,
                budget=budget,
            )
    except KpiInputError as exc:
        return None, None, str(exc)
    return result, plain, ""


def clv_of(src: Any, quarter: str) -> tuple[Any, str]:
    """The modelled CLV (:func:`clv_settings` of ``goals.yml``): ``(result, problem)``, ``problem`` saying
    why there is no result (``""`` when there is one)."""
    off = turned_off()
    if off:
        return None, off
    from .clv_model import fit_clv

    try:
        return fit_clv(src, quarter, clv_settings(src.settings)), ""
    except KpiInputError as exc:
        return None, str(exc)


def model_entries(
    src: Any, quarter: str, *, attribution_model: str = "position_based", params: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``{"incrementality": ..., "clv_model": ..., "undefined": {...}}`` for ``metrics.json``: each
    model's public block, or None with the reason under ``undefined``."""
    result, _, why_mmm = incrementality_of(
        src, quarter, params, attribution_model=attribution_model, without_lift_tests=False
    )
    clv, why_clv = clv_of(src, quarter)
    why = {k: v for k, v in (("incrementality", why_mmm), ("clv_model", why_clv)) if v}
    return {
        "incrementality": None if result is None else result.metrics(),
        "clv_model": None if clv is None else clv.metrics(),
        "undefined": why,
    }
