"""Files the kit writes: atomically, under a lock, and checked by their digest.

One implementation for every writer of the kit (the report runner's pages, manifests and
``metrics.json``; the cache's entries and stamps; the sample generator's manifest):

- :func:`write_atomic` writes a unique temporary sibling (:func:`temp_name`) and renames it over the
  target with ``os.replace``: a reader sees the old file or the new one, never half of one, and a
  write that fails (a full disk, an interrupt) leaves the old file as it was. ``mode=0o600``
  makes the file private (the cache's entries).
- :func:`locked` holds an exclusive ``fcntl.flock`` on a lock file (released by the operating
  system if the process dies), waiting up to ``timeout`` seconds. Locking needs POSIX ``fcntl``;
  without it nothing is locked.
- :func:`sha256_of` is the digest the kit records of what it wrote.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> write_atomic(folder / "a.txt", "first")
>>> with locked(folder / ".a.lock", timeout=1):
...     write_atomic(folder / "a.txt", b"second")
>>> (folder / "a.txt").read_text(), sorted(p.name for p in folder.iterdir())
('second', ['.a.lock', 'a.txt'])
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

try:  # POSIX only; see the module docstring
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LockTimeout", "locked", "sha256_of", "temp_name", "write_atomic"]

#: how often a waiting :func:`locked` tries the lock again, in seconds
POLL = 0.1


class LockTimeout(TimeoutError):
    """:func:`locked` gave up waiting: another process holds the lock."""

    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__(f"`{path}` is locked by another process; gave up after {timeout:g} s")
        self.path = path
        self.timeout = timeout


def temp_name(path: Path) -> Path:
    """A hidden sibling of ``path`` no other writer uses: ``.NAME.<pid>-<thread>-<random>.tmp``.

    Same folder (so ``os.replace`` is a rename on one file system), hidden (a crash leaves no file
    a person mistakes for theirs), unique per process, thread and call.

    >>> temp_name(Path("/out/index.html")).name.startswith(".index.html.")
    True
    """
    token = f"{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:8]}"
    return path.with_name(f".{path.name}.{token}.tmp")


def write_atomic(path: str | Path, data: str | bytes, *, mode: int | None = None) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` through a temporary sibling and ``os.replace``.

    ``mode`` None creates the file as ``open`` would (``0o666`` less the umask); ``0o600`` makes
    it private to the user (set on the open descriptor, so no moment exists where others could
    read it). A symbolic link at the temporary name is never followed. On any failure the
    temporary file is removed and ``path`` is unchanged.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = temp_name(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(tmp, flags, 0o666 if mode is None else mode)
        with os.fdopen(fd, "wb") as handle:
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), mode)  # the umask may have taken bits the caller asked for
            handle.write(payload)
        os.replace(tmp, path)
    finally:
        with suppress(OSError):
            tmp.unlink()  # gone after the rename; a leftover only after a failure


@contextmanager
def locked(
    path: str | Path,
    *,
    timeout: float | None = None,
    mode: int = 0o666,
    on_wait: Callable[[], None] | None = None,
    on_timeout: Callable[[LockTimeout], BaseException] | None = None,
    required: bool = True,
) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created with ``mode`` when missing; never deleted).

    Parameters
    ----------
    timeout
        Seconds to wait for another holder; None waits as long as it takes.
    on_wait
        Called once when the lock is busy, before waiting (to say so).
    on_timeout
        Builds the exception raised when ``timeout`` passes (the caller's words and error class);
        by default :class:`LockTimeout`.
    required
        False: a lock file that cannot be opened (a read-only folder) means running unlocked
        instead of failing, for callers whose lock only saves duplicate work.
    """
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), mode)
    except OSError:
        if required:
            raise
        yield
        return
    try:
        _acquire(fd, path, timeout, on_wait, on_timeout)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(
    fd: int,
    path: Path,
    timeout: float | None,
    on_wait: Callable[[], None] | None,
    on_timeout: Callable[[LockTimeout], BaseException] | None,
) -> None:
    if timeout is None and on_wait is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if deadline is not None and time.monotonic() >= deadline:
            error = LockTimeout(path, float(timeout or 0))
            raise (on_timeout(error) if on_timeout is not None else error) from None
        if on_wait is not None and not told:
            on_wait()
            told = True
        time.sleep(POLL)


def sha256_of(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as hex (read in blocks: any size).

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "x"
    >>> _ = f.write_bytes(b"abc")
    >>> sha256_of(f)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
