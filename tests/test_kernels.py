"""Tests of the kit's kernels (kpi_helpers.kernels)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kpi_helpers import kernels
from kpi_helpers.exceptions import ReportInputError

ROOT = Path(__file__).resolve().parents[1]


def test_ensure_kernel_runs_this_interpreter() -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    name = kernels.ensure_kernel()
    spec = KernelSpecManager().get_kernel_spec(name)
    assert Path(spec.argv[0]).parent == Path(sys.executable).parent
    assert spec.display_name == "Marketing KPI kit"
    assert kernels.ensure_kernel() == name  # idempotent


def test_a_kernelspec_of_another_environment_is_not_ours() -> None:
    assert kernels._runs_this_python([sys.executable, "-m", "ipykernel_launcher"])
    assert not kernels._runs_this_python(["/opt/other-env/bin/python", "-m", "ipykernel_launcher"])
    assert not kernels._runs_this_python([])


# --------------------------------------------------------------------------------------------------
# python -m kpi_helpers.kernels: the kit's kernel into another Jupyter


def _spec(folder: Path) -> dict:
    return json.loads((folder / "kernel.json").read_text())


def test_python_m_kernels_user_installs_into_the_users_jupyter(tmp_path: Path) -> None:
    """The command a user runs; the user's Jupyter (JUPYTER_DATA_DIR here) then lists the kit's kernel."""
    # JUPYTER_PREFER_ENV_PATH=0: the user's folder before this venv's, where ensure_kernel put its own spec
    env = {
        **os.environ,
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_PREFER_ENV_PATH": "0",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "kpi_helpers.kernels", "--user"], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "data" / "kernels" / "kpi-kit"
    assert done.stdout.strip() == f"Installed kernel `kpi-kit` (Marketing KPI kit, {sys.executable}) in {folder}"
    assert done.stderr == ""  # no warning about the module being imported twice
    spec = _spec(folder)
    assert (spec["argv"][0], spec["display_name"]) == (sys.executable, "Marketing KPI kit")
    listed = subprocess.run(
        [sys.executable, "-m", "jupyter", "kernelspec", "list", "--json"], env=env, capture_output=True, text=True
    )
    assert json.loads(listed.stdout)["kernelspecs"]["kpi-kit"]["resource_dir"] == str(folder)


@pytest.mark.parametrize(
    ("argv", "where"),
    [
        (["--prefix", "{tmp}/env"], "env/share/jupyter/kernels/kpi-kit"),
        (["--user", "--name", "kpi-kit-2"], "data/kernels/kpi-kit-2"),
        (["--user"], "data/kernels/kpi-kit"),
    ],
    ids=["prefix", "name", "user-again-replaces"],
)
def test_main_installs_where_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], where: str
) -> None:
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data" / "kernels" / "kpi-kit").mkdir(parents=True)
    (tmp_path / "data" / "kernels" / "kpi-kit" / "kernel.json").write_text('{"argv": ["/other/python"]}')
    assert kernels.main([a.format(tmp=tmp_path) for a in argv]) == 0
    assert capsys.readouterr().out.strip().endswith(f" in {tmp_path / where}")
    assert _spec(tmp_path / where)["argv"][0] == sys.executable


def test_main_sys_prefix_is_this_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = []
    monkeypatch.setattr(kernels, "install_kernel", lambda **kw: calls.append(kw) or tmp_path)
    assert kernels.main(["--sys-prefix"]) == 0
    assert calls == [{"user": False, "prefix": sys.prefix, "name": "kpi-kit"}]


def test_main_refuses_two_places(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        kernels.main(["--user", "--prefix", "/x"])
    assert exit_info.value.code == 2
    assert "not allowed with argument --user" in capsys.readouterr().err
    with pytest.raises(ReportInputError, match=r"choose one of `--user` and `--prefix`"):
        kernels.install_kernel(user=True, prefix="/x")


def test_a_folder_it_may_not_write_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    def denied(*_: object, **__: object) -> str:
        raise PermissionError(13, "Permission denied", "/usr/local/share/jupyter/kernels/kpi-kit")

    monkeypatch.setattr(KernelSpecManager, "install_kernel_spec", denied)
    assert kernels.main([]) == 2
    err = capsys.readouterr().err
    assert "cannot write the kernel to `/usr/local/share/jupyter/kernels/kpi-kit` (permission denied)" in err
    assert "with `--user`" in err


def test_the_spec_ensure_kernel_writes_replaces_an_older_one(tmp_path: Path) -> None:
    target = tmp_path / "kernels" / "kpi-kit"
    target.mkdir(parents=True)
    (target / "kernel.json").write_text('{"argv": ["/other/python"]}')
    kernels._install_kernelspec(target)
    assert _spec(target)["argv"][0] == sys.executable and _spec(target)["display_name"] == "Marketing KPI kit"
    assert "logo-64x64.png" in os.listdir(target)
    assert [p.name for p in target.iterdir() if p.name.startswith(".")] == []  # no temporary file left
