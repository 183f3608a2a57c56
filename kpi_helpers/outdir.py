"""The report folder ``OUT`` on disk: what the kit owns there, and replacing it without losing anything.

The user's files are never lost: the kit replaces only what its manifests say it wrote, byte for
byte. A quarter folder holding anything else (a file the kit did not write, or a page edited since)
is refused, naming those files, and so is an ``OUT/index.html`` the kit did not write; the fix is to
move them away or to pass another ``out``. A first run into a folder that already holds other files
is fine: nothing of theirs is touched. Reports written before manifests existed are recognised by
their content (the kit's page header, papermill's metadata) and adopted. ``.DS_Store``,
``Thumbs.db`` and ``desktop.ini`` are not counted as the user's files.

A new report is swapped into place with two renames (:func:`swap_into_place`); a run killed in
between is repaired by the next run of the quarter (:func:`recover`). Failed runs are kept under
``OUT/.failed/<quarter>/<UTC time>/``, the last :data:`FAILED_KEEP` of them (:func:`keep_failed`).
Runs of one quarter are serialised by :func:`folder_lock`.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from . import fileio, jsonio
from .exceptions import ReportError, ReportInputError

KIT_NAME = "Marketing KPI kit"
#: The kit's record of the files it wrote in a folder (see the module docstring).
MANIFEST = ".kpi-manifest.json"
#: Failed runs kept per quarter under ``OUT/.failed/<quarter>/``.
FAILED_KEEP = 5
#: A quarter folder's name. No dots: a quarter folder is never confused with a page or a hidden file of the kit.
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
#: errors that mean the disk is full
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
# Text every page of the kit carries (the index pages' footer; the notebook pages' header), used to
# recognise reports written before manifests existed.
INDEX_MARK = f"{KIT_NAME} · generated"
PAGE_MARK = '<header class="kpi-header">'
# Files an operating system's file browser drops into any folder it shows: not the user's work.
_DISPOSABLE = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
_FAILED_RUN = re.compile(r"^\d{8}T\d{6}Z(?:-\d+)?$")


# --------------------------------------------------------------------------------------------------
# Manifests: what the kit wrote


def read_manifest(folder: Path) -> dict[str, list[str]] | None:
    """``{file name: [sha256, ...]}`` the kit recorded in ``folder``; None without a readable manifest."""
    try:
        doc = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # no manifest, or a damaged one: nothing there is known to be the kit's
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(files, dict):
        return None
    return {
        str(name): [h for h in hashes if isinstance(h, str)]
        for name, hashes in files.items()
        if isinstance(hashes, list)
    }


def write_manifest(folder: Path, files: Mapping[str, Sequence[str]]) -> None:
    """Record ``files`` (name -> the SHA-256s it may have) as what the kit wrote in ``folder``."""
    doc = {
        "about": f"files the {KIT_NAME} wrote here, with their SHA-256; it replaces only these",
        "files": {name: sorted(set(hashes)) for name, hashes in sorted(files.items())},
        "manifest_version": 1,
    }
    jsonio.write_json(folder / MANIFEST, doc, indent=1, sort_keys=True)


def manifest_of(folder: Path) -> dict[str, list[str]]:
    """Every file in ``folder`` (its manifest aside) with its SHA-256, for :func:`write_manifest`."""
    return {p.name: [fileio.sha256_of(p)] for p in sorted(folder.iterdir()) if p.name != MANIFEST}


def foreign_files(folder: Path) -> list[str]:
    """What in a quarter folder the kit did not write, or changed since it did; sorted, described.

    A folder without a manifest is a report of an older kit when its ``index.html`` is the kit's
    page: then each file the kit writes (its pages, executed notebooks, ``metrics.json``) is
    recognised by its content; otherwise every file in it is the user's.
    """
    if not folder.is_dir() or folder.is_symlink():
        return []
    owned = read_manifest(folder)
    legacy = owned is None and kit_made(folder / "index.html")
    found = []
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            name = entry.name
            if name == MANIFEST or name in _DISPOSABLE:
                continue
            if entry.is_symlink() or not entry.is_file():
                found.append(f"`{name}{'/' if entry.is_dir() else ''}`")
            elif owned is not None and name in owned:
                if fileio.sha256_of(entry.path) not in owned[name]:
                    found.append(f"`{name}` (changed since the kit wrote it)")
            elif not (legacy and kit_made(Path(entry.path))):
                found.append(f"`{name}`")
    return found


def kit_made(path: Path) -> bool:
    """Whether a file without a manifest entry is one an older kit wrote (see :func:`foreign_files`)."""
    try:
        if not path.is_file() or path.is_symlink():
            return False
        if path.suffix == ".html":
            text = path.read_text(encoding="utf-8", errors="replace")
            return INDEX_MARK in text or (PAGE_MARK in text and KIT_NAME in text)
        if path.suffix == ".ipynb":
            return isinstance(json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get("papermill"), dict)
        if path.name == "metrics.json":
            return isinstance(json.loads(path.read_text(encoding="utf-8")), dict)
    except (OSError, ValueError, AttributeError):
        return False
    return False


def is_report(folder: Path) -> bool:
    """Whether ``folder`` is a quarter the kit rendered (a manifest, or an older kit's page)."""
    return (folder / "index.html").is_file() and (read_manifest(folder) is not None or kit_made(folder / "index.html"))


# --------------------------------------------------------------------------------------------------
# Refusing to replace the user's files


def refused_folders(out_dir: Path) -> list[str]:
    """Folders of ``out_dir`` that could name a quarter and hold the user's files."""
    if not out_dir.is_dir():
        return []
    with os.scandir(out_dir) as entries:
        candidates = sorted(e.name for e in entries if LABEL_RE.match(e.name) and e.is_dir(follow_symlinks=False))
    return [name for name in candidates if foreign_files(out_dir / name)]


def check_quarter_folder(out_dir: Path, label: str) -> None:
    """Refuse (:class:`ReportInputError`) to replace ``OUT/<label>`` when it holds anything the kit did not write."""
    final = out_dir / label
    how = "move them elsewhere (or delete what you do not need), or pass another `--out`"
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        raise ReportInputError(
            f"`{final}` is not a report folder of the kit; the report for {label} would replace it. "
            f"Move it elsewhere, or pass another `--out`"
        )
    found = foreign_files(final)
    if found:
        shown = ", ".join(found[:10]) + (f" and {len(found) - 10} more" if len(found) > 10 else "")
        raise ReportInputError(
            f"`{final}` holds files the kit did not write: {shown}; the report for {label} would replace "
            f"that folder. To keep them, {how}"
        )


def check_reports_index(out_dir: Path) -> str | None:
    """The SHA-256 of ``OUT/index.html`` when the kit wrote it (None when absent); else refuse."""
    index = out_dir / "index.html"
    if not index.exists() and not index.is_symlink():
        return None
    problem = ""
    if index.is_symlink() or not index.is_file():
        problem = "is not a file the kit wrote"
    else:
        digest = fileio.sha256_of(index)
        recorded = (read_manifest(out_dir) or {}).get("index.html")
        if recorded is None and kit_made(index):
            return digest  # written by a kit from before manifests
        if recorded is None:
            problem = "was not written by the kit"
        elif digest not in recorded:
            problem = "was changed since the kit wrote it"
        else:
            return digest
    raise ReportInputError(
        f"`{index}` {problem}, and the report index would overwrite it. Move it elsewhere, or pass another `--out`"
    )


# --------------------------------------------------------------------------------------------------
# Locks, swaps, failed runs


@contextmanager
def folder_lock(path: Path, timeout: float, what: str, say: Callable[[str], None] | None) -> Iterator[None]:
    """Exclusive lock on ``path`` (:func:`kpi_helpers.fileio.locked`); :class:`ReportError` after ``timeout`` s."""

    def gave_up(exc: fileio.LockTimeout) -> ReportError:
        return ReportError(
            f"another run is rendering {what} (`{path}` is locked); gave up after "
            f"{timeout:g} s. Wait for it to finish, or pass a longer `lock_timeout`"
        )

    on_wait = None if say is None else (lambda: say(f"Waiting for another run rendering {what} ..."))
    with fileio.locked(path, timeout=timeout, on_wait=on_wait, on_timeout=gave_up):
        yield


def swap_into_place(new: Path, final: Path) -> None:
    """Replace ``final`` by ``new`` with two renames (same filesystem), keeping a backup until done."""
    backup = final.with_name(f".old-{final.name}-{uuid.uuid4().hex[:12]}")
    had_old = final.exists()
    if had_old:
        os.rename(final, backup)
    try:
        os.rename(new, final)
    except OSError:
        if had_old:
            os.rename(backup, final)
        raise
    if had_old:
        shutil.rmtree(backup, ignore_errors=True)


def recover(out: Path, label: str) -> None:
    """Clean up after a run that was killed (the caller holds the quarter lock, so no other run is active).

    A crash between the two renames of the swap leaves only the backup: put it back.
    """
    final = out / label
    backups = sorted(out.glob(f".old-{label}-*"), key=lambda p: p.stat().st_mtime)
    if backups and not final.exists():
        os.rename(backups.pop(), final)
    for stale in [*backups, *out.glob(f".tmp-{label}-*")]:
        shutil.rmtree(stale, ignore_errors=True)


def keep_failed(executed: list[Path], failed_root: Path) -> dict[str, Path]:
    """Move the failed notebooks to ``failed_root/<UTC time>/``; keep the last :data:`FAILED_KEEP` runs.

    Runs are named by the time they failed (a suffix keeps two runs of one second apart) and pruned
    only here, after the new one is in place: a run that starts never deletes an earlier failure.
    Returns each notebook's new path by its stem.
    """
    present = [p for p in executed if p.exists()]
    if not present:
        return {}
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    failed_root.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        folder = failed_root / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            folder.mkdir()
            break
        except FileExistsError:
            continue
    kept = {p.stem: Path(shutil.move(p, folder / p.name)) for p in present}
    runs = sorted(p for p in failed_root.iterdir() if p.is_dir() and _FAILED_RUN.match(p.name))
    for old in runs[:-FAILED_KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return kept


def write_error(exc: OSError, out_dir: Path, state: str) -> ReportError:
    """A failed write as a run that failed (exit 1): a full disk said plainly, else the file and why.

    ``state`` says what is left (``the previous report for 2026Q3 is unchanged``).
    """
    name = f"`{Path(exc.filename).name}`" if exc.filename else "the report"
    if exc.errno in DISK_FULL:
        return ReportError(
            f"the disk holding `{out_dir}` is full (no space left writing {name}); {state}. "
            "Free some space, or pass another `--out`, and run again"
        )
    return ReportError(f"cannot write {name} under `{out_dir}` ({exc.strerror or type(exc).__name__}); {state}")
