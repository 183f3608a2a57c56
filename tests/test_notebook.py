"""The notebooks' one setup call: where a relative data folder is found."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpi_helpers.exceptions import KpiError
from kpi_helpers.notebook import NOTEBOOKS, resolve_data


def test_the_default_data_folder_is_found_from_the_project_root(monkeypatch) -> None:
    monkeypatch.chdir(NOTEBOOKS.parent)  # papermill notebooks/01-goal-setting.ipynb out.ipynb, from the root
    assert resolve_data("../data/sample") == NOTEBOOKS.parent / "data" / "sample"


def test_a_folder_found_from_the_working_folder_wins(tmp_path: Path) -> None:
    (tmp_path / "exports").mkdir()
    assert resolve_data("exports", cwd=tmp_path, notebooks=tmp_path / "nb") == tmp_path / "exports"


def test_a_missing_folder_names_every_path_tried(tmp_path: Path) -> None:
    with pytest.raises(KpiError) as err:
        resolve_data("../nowhere", cwd=tmp_path / "a", notebooks=tmp_path / "b")
    message = str(err.value)
    assert str(tmp_path / "nowhere") in message and "-p data" in message
