"""Jupyter kernels for a report run: the kit's kernelspec, and booting and stopping kernels.

The kernelspec ``kpi-kit`` (:data:`KERNEL_NAME`) runs the interpreter the kit is installed in, so a
report, and a notebook opened from any Jupyter where that spec is installed, sees this kit and its
dependencies. :func:`ensure_kernel` installs it when missing. To open the notebooks on the kit from
another Jupyter (a system JupyterLab, another environment's), install the spec there with
:func:`install_kernel`, from the command line::

    python -m kpi_helpers.kernels --user            # every Jupyter of this user
    python -m kpi_helpers.kernels --prefix ENV      # the Jupyter installed in environment ENV
    python -m kpi_helpers.kernels --sys-prefix      # this environment's Jupyter
    python -m kpi_helpers.kernels                   # system-wide (as `python -m ipykernel install`)

It prints the folder the spec went to. Each kernel of a run boots in the
notebook's folder, talks over Unix sockets in the private runtime folder (no TCP ports to race
for), keeps its IPython history in memory and runs with ``PYTHONHASHSEED=0`` unless that is set.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import sys
import threading
import uuid
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from .exceptions import ReportError, ReportInputError
from .outdir import KIT_NAME

__all__ = ["KERNEL_NAME", "ensure_kernel", "install_kernel", "main", "start_kernel", "stop_kernel"]

KERNEL_NAME = "kpi-kit"
_KERNEL_LOCK = threading.Lock()


def ensure_kernel(name: str = KERNEL_NAME) -> str:
    """Return the name of a kernelspec that runs *this* interpreter, installing it if needed.

    The spec is written into ``sys.prefix`` (``share/jupyter/kernels/<name>``). If a spec of that name
    elsewhere (e.g. the user's data dir) points at another environment and shadows ours, a name
    suffixed with a hash of ``sys.prefix`` is used instead. The notebook's own kernelspec metadata is
    never consulted.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    digest = hashlib.sha1(sys.prefix.encode()).hexdigest()[:8]
    with _KERNEL_LOCK:
        for candidate in (name, f"{name}-{digest}"):
            try:
                spec = KernelSpecManager().get_kernel_spec(candidate)
            except NoSuchKernel:
                spec = None
            if spec is not None and _runs_this_python(spec.argv):
                return candidate
            ours = Path(sys.prefix, "share", "jupyter", "kernels", candidate)
            if spec is None or Path(spec.resource_dir).resolve() == ours.resolve():
                try:
                    _install_kernelspec(ours)
                except PermissionError:
                    continue  # read-only prefix: try the hashed name, then give up
                return candidate
    raise ReportError(
        f"cannot install a Jupyter kernel for `{sys.executable}` (is `{sys.prefix}` read-only?); "
        "register one with `python -m ipykernel install --user --name NAME` and pass `kernel_name=`"
    )


# --------------------------------------------------------------------------------------------------
# The runner


@functools.cache
def _kernel_manager_class() -> type:
    from jupyter_client.manager import AsyncKernelManager

    class KitKernelManager(AsyncKernelManager):
        """Remembers its clients: nbclient leaves the client of a kernel it did not start running."""

        def client(self, **kwargs: Any) -> Any:
            kc = super().client(**kwargs)
            self.kit_clients = [*getattr(self, "kit_clients", []), kc]
            return kc

    return KitKernelManager


def start_kernel(kernel: str, cwd: Path) -> Any:
    """Boot a kernel in ``cwd`` (the notebook's folder) from the calling thread."""
    from jupyter_core.paths import jupyter_runtime_dir
    from jupyter_core.utils import run_sync

    transport: dict[str, str] = {}
    if os.name == "posix":
        # Unix sockets in the private runtime dir: no TCP ports to race for, and ipykernel does not
        # warn about unencrypted TCP. Socket paths get "-<port>" and must stay under ~104 bytes.
        runtime = Path(jupyter_runtime_dir())
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        ip = runtime / f"kpi-{uuid.uuid4().hex[:12]}"
        if len(str(ip)) < 90:
            transport = {"transport": "ipc", "ip": str(ip)}
    km = _kernel_manager_class()(kernel_name=kernel, **transport)
    # A fixed hash seed: set and dict-of-set orders, hence pages, are the same from run to run.
    env = {"PYTHONHASHSEED": "0", **os.environ}
    # In-memory IPython history: parallel kernels would otherwise contend for one history.sqlite.
    run_sync(km.start_kernel)(cwd=str(cwd), extra_arguments=["--HistoryManager.hist_file=:memory:"], env=env)
    return km


def stop_kernel(km: Any) -> None:
    """Close the clients and kill the kernel (its outputs are in hand; no graceful shutdown needed)."""
    from jupyter_core.utils import run_sync

    for kc in getattr(km, "kit_clients", []):
        kc.stop_channels()
    with suppress(Exception):  # already dead: nothing left to clean
        run_sync(km.shutdown_kernel)(now=True)


def _runs_this_python(argv: list[str]) -> bool:
    # Same bin folder = same environment; resolving symlinks would equate every venv of one Python.
    return bool(argv) and os.path.dirname(os.path.abspath(argv[0])) == os.path.dirname(os.path.abspath(sys.executable))


def _install_kernelspec(target: Path) -> None:
    """Write an ipykernel spec for ``sys.executable`` at ``target``, each file atomically
    (:func:`kpi_helpers.fileio.write_atomic`): a kernel starting meanwhile reads the old spec or the new."""
    import tempfile

    from ipykernel.kernelspec import write_kernel_spec

    from . import fileio

    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kpi-kernel-") as tmp:
        staging = Path(write_kernel_spec(str(Path(tmp) / target.name), overrides={"display_name": KIT_NAME}))
        # kernel.json last: a spec is found by its kernel.json, so its logos are in place by then
        for file in sorted(staging.iterdir(), key=lambda f: f.name == "kernel.json"):
            fileio.write_atomic(target / file.name, file.read_bytes())


# --------------------------------------------------------------------------------------------------
# Installing the kit's kernel into another Jupyter


def install_kernel(*, user: bool = False, prefix: str | Path | None = None, name: str = KERNEL_NAME) -> Path:
    """Install the kernelspec ``name`` that runs *this* interpreter where another Jupyter finds it.

    As ``python -m ipykernel install`` does: ``user=True`` into the user's Jupyter data folder
    (``JUPYTER_DATA_DIR`` when set), ``prefix`` into ``PREFIX/share/jupyter/kernels`` (another
    environment's Jupyter), neither system-wide. A spec of that name there is replaced. Returns the
    spec's folder.

    Raises
    ------
    ReportInputError
        ``user`` and ``prefix`` together, or a folder this user may not write (exit 2: choose another).

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     folder = install_kernel(prefix=tmp)
    ...     folder.relative_to(tmp).as_posix(), sorted(os.listdir(folder))[:1]
    ('share/jupyter/kernels/kpi-kit', ['kernel.json'])
    """
    import tempfile

    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager

    if user and prefix is not None:
        raise ReportInputError("choose one of `--user` and `--prefix`, not both")
    with tempfile.TemporaryDirectory(prefix="kpi-kernel-") as tmp:
        staging = write_kernel_spec(str(Path(tmp) / name), overrides={"display_name": KIT_NAME})
        try:
            where = KernelSpecManager().install_kernel_spec(
                staging, kernel_name=name, user=user, prefix=None if prefix is None else str(prefix)
            )
        except PermissionError as exc:
            raise ReportInputError(
                f"cannot write the kernel to `{exc.filename or 'the system Jupyter folder'}` (permission denied); "
                "install it for this user with `--user`, or into an environment with `--prefix ENV`"
            ) from exc
    return Path(where)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kpi_helpers.kernels``: install the kit's kernel; print where (exit 2: bad usage)."""
    parser = argparse.ArgumentParser(
        prog="python -m kpi_helpers.kernels",
        description=f"Install the `{KERNEL_NAME}` kernel (this Python, with the kit) into a Jupyter, so the "
        "notebooks open on the kit from it.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="into the user's Jupyter data folder")
    where.add_argument("--prefix", metavar="PREFIX", help="into PREFIX/share/jupyter/kernels (another environment)")
    where.add_argument("--sys-prefix", action="store_true", help=f"into this environment ({sys.prefix})")
    parser.add_argument("--name", default=KERNEL_NAME, help=f"the kernel's name (default {KERNEL_NAME})")
    args = parser.parse_args(argv)
    try:
        folder = install_kernel(user=args.user, prefix=sys.prefix if args.sys_prefix else args.prefix, name=args.name)
    except ReportInputError as exc:
        print(f"python -m kpi_helpers.kernels: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"Installed kernel `{args.name}` ({KIT_NAME}, {sys.executable}) in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
