"""Tests of the report folder on disk (kpi_helpers.outdir): what the kit owns, refusing the user's
files, swaps, recovery after a crash, failed runs kept."""

from __future__ import annotations

import fcntl
import json
import re
from pathlib import Path

import pytest
from conftest import kit_quarter

from kpi_helpers import fileio, outdir
from kpi_helpers.exceptions import ReportError, ReportInputError


def test_a_manifest_names_what_the_kit_wrote(tmp_path: Path) -> None:
    folder = kit_quarter(tmp_path)
    doc = json.loads((folder / outdir.MANIFEST).read_text())
    assert doc["files"] == {
        "index.html": [fileio.sha256_of(folder / "index.html")],
        "metrics.json": [fileio.sha256_of(folder / "metrics.json")],
    }
    assert outdir.read_manifest(folder) == doc["files"] and outdir.is_report(folder)
    assert outdir.foreign_files(folder) == []


@pytest.mark.parametrize(
    ("text", "readable"),
    [("", False), ("[]", False), ('{"files": "x"}', False), ('{"files": {"a": ["h", 3]}}', True)],
    ids=["empty", "list", "files-not-a-mapping", "odd-hash"],
)
def test_a_damaged_manifest_names_nothing(tmp_path: Path, text: str, readable: bool) -> None:
    (tmp_path / outdir.MANIFEST).write_text(text)
    assert outdir.read_manifest(tmp_path) == ({"a": ["h"]} if readable else None)


def test_the_users_files_in_a_quarter_folder_are_named(tmp_path: Path) -> None:
    folder = kit_quarter(tmp_path)
    (folder / "notes.txt").write_text("mine")
    (folder / "drafts").mkdir()
    (folder / "index.html").write_text("edited")
    (folder / ".DS_Store").write_bytes(b"\0")
    assert outdir.foreign_files(folder) == ["`drafts/`", "`index.html` (changed since the kit wrote it)", "`notes.txt`"]
    assert outdir.refused_folders(tmp_path) == ["2026Q3"]
    with pytest.raises(ReportInputError, match=r"holds files the kit did not write: `drafts/`, .* To keep them, move"):
        outdir.check_quarter_folder(tmp_path, "2026Q3")
    (tmp_path / "2026Q4").write_text("a file where the folder would go")
    with pytest.raises(ReportInputError, match=r"`.*2026Q4` is not a report folder of the kit"):
        outdir.check_quarter_folder(tmp_path, "2026Q4")


def test_reports_of_an_older_kit_are_adopted(tmp_path: Path) -> None:
    """Written before manifests: recognised by the kit's page header and papermill's metadata."""
    folder = tmp_path / "2026Q2"
    folder.mkdir()
    (folder / "index.html").write_text(f"<footer>{outdir.KIT_NAME} · generated 2026-07-05 06:00 UTC</footer>")
    (folder / "00-summary.html").write_text(f'<header class="kpi-header"><div>{outdir.KIT_NAME} · 2026Q2</div>')
    (folder / "00-summary.ipynb").write_text(json.dumps({"metadata": {"papermill": {}}, "cells": []}))
    (folder / "metrics.json").write_text("{}")
    (folder / ".DS_Store").write_bytes(b"\0")
    assert outdir.foreign_files(folder) == []
    (folder / "notes.html").write_text("<p>my notes</p>")
    (folder / "other.ipynb").write_text(json.dumps({"metadata": {}, "cells": []}))
    assert outdir.foreign_files(folder) == ["`notes.html`", "`other.ipynb`"]
    (tmp_path / "index.html").write_text(f"<footer>{outdir.KIT_NAME} · generated 2026-07-05 06:00 UTC</footer>")
    assert outdir.check_reports_index(tmp_path) == fileio.sha256_of(tmp_path / "index.html")
    (folder / "index.html").write_text("<h1>mine</h1>")  # not the kit's: nothing in the folder is
    assert "`00-summary.html`" in outdir.foreign_files(folder)


def test_failed_runs_keep_the_last_five(tmp_path: Path) -> None:
    root = tmp_path / ".failed" / "2026Q3"
    for stamp in ("20260101T000000Z", "20260102T000000Z", "20260103T000000Z", "20260104T000000Z",
                  "20260105T000000Z", "20260105T000000Z-1", "notes"):  # fmt: skip
        (root / stamp).mkdir(parents=True)
    executed = tmp_path / "01-bad.ipynb"
    executed.write_text("{}")
    kept = outdir.keep_failed([executed], root)
    new = kept["01-bad"].parent
    assert re.fullmatch(r"\d{8}T\d{6}Z", new.name) and (new / "01-bad.ipynb").read_text() == "{}"
    assert sorted(p.name for p in root.iterdir()) == sorted(
        ["20260103T000000Z", "20260104T000000Z", "20260105T000000Z", "20260105T000000Z-1", new.name, "notes"]
    )


def test_swap_replaces_the_old_report(tmp_path: Path) -> None:
    (tmp_path / "2026Q3").mkdir()
    (tmp_path / "2026Q3" / "old.txt").write_text("old")
    new = tmp_path / ".tmp-2026Q3-x"
    new.mkdir()
    (new / "new.txt").write_text("new")
    outdir.swap_into_place(new, tmp_path / "2026Q3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026Q3"]
    assert [p.name for p in (tmp_path / "2026Q3").iterdir()] == ["new.txt"]


def test_recover_restores_backup_after_a_crash_mid_swap(tmp_path: Path) -> None:
    backup = tmp_path / ".old-2026Q3-dead"
    backup.mkdir()
    (backup / "index.html").write_text("previous")
    (tmp_path / ".tmp-2026Q3-dead").mkdir()
    outdir.recover(tmp_path, "2026Q3")
    assert (tmp_path / "2026Q3" / "index.html").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026Q3"]


def test_a_second_holder_waits_then_gives_up(tmp_path: Path) -> None:
    said: list[str] = []
    with open(tmp_path / ".2026Q3.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with (
            pytest.raises(ReportError, match=r"another run is rendering quarter 2026Q3 .*gave up after 0.2 s"),
            outdir.folder_lock(tmp_path / ".2026Q3.lock", 0.2, "quarter 2026Q3", said.append),
        ):
            pass
    assert said == ["Waiting for another run rendering quarter 2026Q3 ..."]
    with outdir.folder_lock(tmp_path / ".2026Q3.lock", 0.2, "quarter 2026Q3", said.append):
        pass  # free again


@pytest.mark.parametrize(
    ("errno_", "filename", "message"),
    [
        (28, None, r"^the disk holding `/out` is full \(no space left writing the report\); it is unchanged. Free"),
        (28, "/out/x/index.html", r"no space left writing `index.html`"),
        (13, "/out/a.html", r"^cannot write `a.html` under `/out` \(Permission denied\); it is unchanged$"),
    ],
    ids=["disk-full", "disk-full-named", "permission"],
)
def test_a_failed_write_is_a_run_that_failed(errno_: int, filename: str | None, message: str) -> None:
    exc = OSError(errno_, "Permission denied" if errno_ == 13 else "No space left on device", filename)
    error = outdir.write_error(exc, Path("/out"), "it is unchanged")
    assert isinstance(error, ReportError) and error.exit_code == 1
    assert re.search(message, str(error))
