"""What things are called on the pages: numbers in a sentence, attribution models, how revenue reached
the channels, a KPI's status and how far it has come.

Labels of KPIs and table columns come from the registry (:func:`kpi_helpers.registry.label_of`);
statuses from :mod:`kpi_helpers.status`. This module words them for charts, tables and sentences alike,
so a page calls one thing by one name.

>>> key_label("cost_per_lead"), model_label("position_based"), status_word("at risk")
('cost per lead', 'position-based', 'at risk')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from . import kpis as K
from .formats import is_missing
from .registry import label_of, words
from .status import LABELS, STATUSES

__all__ = [
    "MODEL_LABELS",
    "OWN_CHANNEL",
    "credit_words",
    "has_touches",
    "key_label",
    "model_label",
    "status_word",
    "way_to_target",
]

#: plain names of the attribution models (kpi_helpers.attribution.MODELS)
MODEL_LABELS = {
    "first_touch": "first-touch",
    "last_touch": "last-touch",
    "last_non_direct": "last non-direct",
    "linear": "linear",
    "time_decay": "time-decay",
    "position_based": "position-based",
    "w_shaped": "W-shaped",
    "full_path": "full-path",
    "markov": "Markov",
    "shapley": "Shapley",
}

#: how lead revenue reaches the channels without touchpoints (the attribution's own-channel rule)
OWN_CHANNEL = "revenue credited to each lead's own channel"


def model_label(name: Any) -> str:
    """``position_based`` -> ``position-based``, ``markov`` -> ``Markov``; unknown names in words.

    >>> model_label("w_shaped"), model_label("own_channel")
    ('W-shaped', 'own channel')
    """
    return MODEL_LABELS.get(str(name), words(str(name)).lower())


def key_label(key: str) -> str:
    """A ``metrics()`` key in words for a sentence: the registry's label, lower case unless it starts
    with an acronym.

    >>> key_label("cac"), key_label("clv_to_cac"), key_label("revenue_target")
    ('CAC', 'CLV:CAC', 'revenue target')
    """
    label = label_of(key)
    return label if label[1:2].isupper() else label[:1].lower() + label[1:]


def status_word(status: Any) -> str:
    """A status as a sentence says it (:data:`kpi_helpers.status.LABELS`, lower case); anything that
    is not a status is ``no data``.

    >>> status_word("off track"), status_word(None)
    ('off track', 'no data')
    """
    key = str(status) if status in STATUSES else "no data"
    return LABELS[key].lower()


def way_to_target(actual: Any, target: Any, baseline: Any = None, *, higher_is_better: bool = True) -> float:
    r"""How far a KPI has come: the number :func:`kpi_helpers.status.judge` compares with 90%.

    .. math::

        w = \frac{a - B}{T - B} \text{ with a baseline } B, \qquad
        w = \frac{a}{T} \quad (\text{lower is better: } \frac{T}{a}) \text{ without}

    1 (100%) is the target reached; at least 0.9 is *at risk*, below it *off track*. With a baseline
    the formula works in either direction (a cost's baseline lies above its target). NaN when the
    actual or the target is missing, or the target equals the baseline.

    >>> way_to_target(624, 705, 481), way_to_target(95, 100), way_to_target(342, 325, higher_is_better=False)
    (0.6383928571428571, 0.95, 0.9502923976608187)
    """
    if is_missing(actual) or is_missing(target):
        return math.nan
    a, t = float(actual), float(target)
    if not is_missing(baseline):
        share = K.progress(a, t, float(baseline))
    else:
        share = K.safe_divide(a, t) if higher_is_better else K.safe_divide(t, a)
    return math.nan if is_missing(share) else float(share)


def has_touches(m: Mapping[str, Any]) -> bool:
    """The quarter's attribution reads journeys: the leads' touches, or a conversion-path export of
    the quarter (``m["attribution_source"]``). Without them, won deals are credited to each lead's own
    channel. Metrics without that key (older ones) are read from ``coverage``; without either they
    are taken to have touches."""
    source = m.get("attribution_source")
    if source is not None:
        return source in ("touchpoints", "paths")
    coverage = m.get("coverage")
    if coverage is None:
        return True
    t = coverage.get("touchpoints")
    return bool(t) and t.get("status_in_quarter", "full") in ("full", "partial")


def credit_words(m: Mapping[str, Any], model: str | None = None) -> str:
    """``"position-based attribution"`` (``model``, default the metrics' own), of the conversion-path
    export when that is the source (Markov's converters-only mode named), or :data:`OWN_CHANNEL` when
    there are no journeys to attribute from (:func:`has_touches`).

    >>> credit_words({"attribution_source": "touchpoints", "attribution_model": "linear"})
    'linear attribution'
    >>> credit_words({"attribution_source": "own_channel", "attribution_model": "linear"})
    "revenue credited to each lead's own channel"
    """
    if not has_touches(m):
        return OWN_CHANNEL
    name = model or m.get("attribution_model", "")
    text = f"{model_label(name)} attribution"
    if m.get("attribution_source") == "paths":
        text += " of the conversion-path export"
        if m.get("markov_mode") == "converters_only" and name == "markov":
            text += " (converters-only: the export has no non-converting paths)"
    return text
