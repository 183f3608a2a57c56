"""Every command the README shows is run as written (the README's promises are tested).

``kpi`` commands run through ``kpi_helpers.cli.main`` in a scratch folder whose ``data`` and
``notebooks`` link to the project's, so relative paths resolve as in the project and ``--out
reports`` writes into the scratch folder. ``make`` targets are checked against the Makefile: the
report target runs the command `tests/test_e2e.py` renders; ``make test`` and ``pytest`` are this
suite itself.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from kpi_helpers.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def sh_lines() -> list[str]:
    """Every command line of the README's ```sh blocks, without its trailing comment."""
    out = []
    for block in re.findall(r"```sh\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command:
                out.append(command)
    return out


KPI = [c for c in sh_lines() if c.startswith(".venv/bin/kpi ")]
OTHER = [c for c in sh_lines() if not c.startswith(".venv/bin/kpi ")]


def test_the_readme_shows_commands():
    assert len(KPI) >= 10 and {"validate", "summary", "report", "sample", "cache"} <= {shlex.split(c)[1] for c in KPI}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("readme")
    for name in ("data", "notebooks"):
        (folder / name).symlink_to(ROOT / name)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("command", KPI, ids=[re.sub(r"\W+", "-", c.removeprefix(".venv/bin/kpi "))[:60] for c in KPI])
def test_every_kpi_command_of_the_readme_runs(scratch, command, monkeypatch, tmp_path):
    monkeypatch.chdir(scratch)
    monkeypatch.setenv("KPI_CACHE_DIR", str(tmp_path / "cache"))  # `kpi cache --clear` clears only this
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(shlex.split(command)[1:])
    assert code == 0, err.getvalue()
    assert "Traceback" not in err.getvalue()


def test_make_and_pytest_commands_are_the_documented_ones():
    """``make report`` renders data/sample with ``kpi report --quarter latest`` (what test_e2e runs);
    ``make test``, ``make test-fast`` and ``make check`` are real targets, and the fast tests select on
    the ``slow`` marker."""
    assert set(OTHER) - set(PAPERMILL) == {"make report", "make test", "make test-fast", "make check"}, OTHER
    dry = subprocess.run(["make", "-n", "report", "STAMP=/dev/null"], cwd=ROOT, capture_output=True, text=True)
    assert "kpi report --data data/sample --quarter latest --out reports" in dry.stdout, dry.stdout + dry.stderr
    for target in ("test", "test-fast", "check"):
        assert re.search(rf"^{target}:", (ROOT / "Makefile").read_text(), flags=re.M), target
    assert '"slow' in (ROOT / "pyproject.toml").read_text()  # the marker `-m "not slow"` selects on


PAPERMILL = [c for c in OTHER if c.startswith(".venv/bin/papermill ")]


@pytest.mark.slow
@pytest.mark.parametrize("command", PAPERMILL)
def test_papermill_by_hand_from_the_project_root_runs(scratch, command):
    """The notebook's default ``data = "../data/sample"`` is found from the notebooks folder when the
    shell is elsewhere (here a scratch project root whose ``notebooks`` links to the kit's)."""
    argv = shlex.split(command)
    argv[0] = str(ROOT / argv[0])
    done = subprocess.run(argv, cwd=scratch, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = scratch / argv[2]
    assert out.is_file() and '"ename"' not in out.read_text(encoding="utf-8")


def test_cron_line_runs_the_tested_report_command():
    cron = re.search(r"```cron\n(.*?)```", README, flags=re.S).group(1)
    assert ".venv/bin/kpi report --data" in cron and "--quarter latest --out" in cron
    assert os.path.basename(".venv/bin/kpi") == "kpi"
