"""Tests of the kit's atomic writes and locks (kpi_helpers.fileio)."""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from pathlib import Path

import pytest

from kpi_helpers import fileio


def test_write_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "index.html"
    fileio.write_atomic(path, "old")
    fileio.write_atomic(path, "néw")
    assert path.read_text(encoding="utf-8") == "néw"
    fileio.write_atomic(path, b"\x00bytes")
    assert path.read_bytes() == b"\x00bytes"
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]


def test_an_interrupted_write_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "metrics.json"
    fileio.write_atomic(path, '{"leads": 850}\n')

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)  # the data was written; the rename never happens
    with pytest.raises(OSError, match="No space left"):
        fileio.write_atomic(path, '{"leads": 9')
    assert path.read_text() == '{"leads": 850}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # the temporary file is gone


def test_a_write_interrupted_halfway_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "index.html"
    fileio.write_atomic(path, "old page")
    real_fdopen = os.fdopen

    class Interrupted:
        def __init__(self, fd: int, mode: str) -> None:
            self.handle = real_fdopen(fd, mode)

        def __enter__(self) -> Interrupted:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

        def fileno(self) -> int:
            return self.handle.fileno()

        def write(self, data: bytes) -> None:
            self.handle.write(data[: len(data) // 2])
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "fdopen", Interrupted)
    with pytest.raises(KeyboardInterrupt):
        fileio.write_atomic(path, "new page, longer")
    monkeypatch.undo()
    assert path.read_text() == "old page" and [p.name for p in tmp_path.iterdir()] == ["index.html"]


@pytest.mark.parametrize(("mode", "expected"), [(0o600, 0o600), (None, 0o666 & ~0o022)], ids=["private", "umask"])
def test_write_atomic_mode(tmp_path: Path, mode: int | None, expected: int) -> None:
    old = os.umask(0o022)
    try:
        fileio.write_atomic(tmp_path / "x", "data", mode=mode)
    finally:
        os.umask(old)
    assert (tmp_path / "x").stat().st_mode & 0o777 == expected


def test_temp_names_are_hidden_siblings_and_unique(tmp_path: Path) -> None:
    names = {fileio.temp_name(tmp_path / "a.json") for _ in range(50)}
    assert len(names) == 50
    assert all(p.parent == tmp_path and p.name.startswith(".a.json.") and p.name.endswith(".tmp") for p in names)


def test_locked_serialises_threads(tmp_path: Path) -> None:
    inside: list[int] = []
    overlaps: list[bool] = []

    def work() -> None:
        with fileio.locked(tmp_path / ".lock"):
            inside.append(1)
            overlaps.append(len(inside) > 1)
            time.sleep(0.02)
            inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == [False] * 4


def test_locked_waits_says_so_and_gives_up(tmp_path: Path) -> None:
    said: list[str] = []
    with open(tmp_path / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with (
            pytest.raises(fileio.LockTimeout, match=r"`.*\.lock` is locked by another process; gave up after 0.2 s"),
            fileio.locked(tmp_path / ".lock", timeout=0.2, on_wait=lambda: said.append("waiting")),
        ):
            pass
        with (
            pytest.raises(RuntimeError, match="mine"),
            fileio.locked(tmp_path / ".lock", timeout=0, on_timeout=lambda exc: RuntimeError("mine")),
        ):
            pass
    assert said == ["waiting"]
    with fileio.locked(tmp_path / ".lock", timeout=0):
        pass  # released: taken at once


def test_a_lock_that_cannot_be_created(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / ".lock"
    with pytest.raises(FileNotFoundError), fileio.locked(missing):
        pass
    with fileio.locked(missing, required=False):
        pass  # runs unlocked


def test_sha256_of() -> None:
    # hand-checked: the SHA-256 of b"abc" (FIPS 180-2, appendix B.1)
    import tempfile

    with tempfile.NamedTemporaryFile() as f:
        f.write(b"abc")
        f.flush()
        assert fileio.sha256_of(f.name) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
