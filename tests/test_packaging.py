"""pyproject.toml and environment.yml pin the same lower bounds."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# pip name -> conda-forge name where they differ
CONDA_NAMES = {"ibis-framework": "ibis-duckdb", "duckdb": "python-duckdb", "types-pyyaml": "types-pyyaml"}


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$", req)
    assert m, req
    return m.group(1).lower(), m.group(3).replace(" ", "")


def test_environment_agrees_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_reqs = dict(_split(r) for r in project["dependencies"] + project["optional-dependencies"]["test"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str) and dep != "pip":
            name, spec = _split(dep)
            conda[name] = spec
        elif isinstance(dep, dict):
            assert dep["pip"] == ["-e ."]
    assert "conda-forge" in env["channels"]
    assert conda.pop("python") == ">=" + project["requires-python"].lstrip(">=")
    assert conda.pop("openjdk")  # Java for the Spark engine, a conda package without a pip twin
    expected = {CONDA_NAMES.get(n, n): spec for n, spec in pip_reqs.items()}
    assert conda == expected


def test_every_dependency_has_a_lower_bound():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"] + project["optional-dependencies"]["test"]:
        assert ">=" in req, f"{req} has no lower bound"


def test_data_contract_doc_matches_schema():
    from kpi_helpers.schema import contract_markdown

    doc = (ROOT / "docs" / "data-contract.md").read_text()
    assert contract_markdown() in doc, "docs/data-contract.md is stale: regenerate its Tables section"


def test_metrics_doc_matches_registry():
    from kpi_helpers.registry import metrics_markdown

    doc = (ROOT / "docs" / "metrics.md").read_text()
    assert metrics_markdown() in doc, "docs/metrics.md is stale: regenerate its table from kpi_helpers/registry.py"
