"""Marketing KPI notebook kit: data contract, KPI formulas, goals, attribution and reports."""

__version__ = "0.2.0"
