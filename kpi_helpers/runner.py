"""Render the quarterly report: run the numbered notebooks with papermill, turn them into offline
HTML pages for leadership and write the index pages.

Layout under ``out``::

    OUT/index.html                      every rendered quarter, newest first, with headline numbers
    OUT/.kpi-manifest.json              the kit's record of `OUT/index.html` (its SHA-256)
    OUT/<quarter>/index.html            headline KPI tiles against targets; links to the notebook pages
    OUT/<quarter>/metrics.json          what ``metrics_fn`` returned (NaN -> null)
    OUT/<quarter>/changes.json          the KPIs whose value changed since the last render (kpi_helpers.history)
    OUT/<quarter>/brief.html            the one-page brief (kpi_helpers.brief)
    OUT/<quarter>/report.html           the whole quarter in one self-contained file (kpi_helpers.onefile)
    OUT/<quarter>/report.pdf            with ``pdf=True``: report.html printed by headless Chromium (kpi_helpers.pdf)
    OUT/<quarter>/<notebook>.ipynb      executed notebook
    OUT/<quarter>/<notebook>.html       the same as a page: code hidden, images embedded, no external requests
    OUT/<quarter>/.kpi-manifest.json    every file above with its SHA-256: what the kit wrote
    OUT/.failed/<quarter>/<time>/       executed copies of the notebooks that raised, one folder per failed
                                        run named by its UTC time (``20261105T060012Z``); the last 5 are kept
    OUT/.<quarter>.lock, OUT/.index.lock  lock files (``fcntl.flock``; never deleted)
    OUT/.history/<quarter>/<time>/      each published render's metrics.json (kpi_helpers.history)

A run renders into a unique ``OUT/.tmp-<quarter>-*`` folder and swaps it into place only when every
notebook succeeded, so a failed run leaves the previous report of the quarter untouched. Runs of the
same quarter are serialised: the second waits for the first (up to ``lock_timeout`` seconds, then
:class:`~kpi_helpers.exceptions.ReportError`). The kit replaces only files it wrote
(:mod:`kpi_helpers.outdir`).

Exit codes (:attr:`~kpi_helpers.exceptions.KpiError.exit_code`): every problem with the inputs is
found before any kernel starts (:mod:`kpi_helpers.planning`) and raises
:class:`~kpi_helpers.exceptions.ReportInputError` (exit 2), and so do the user's files in the way. A
run that fails raises :class:`~kpi_helpers.exceptions.ReportError` (exit 1): a notebook that raised,
a dead kernel or a cell timeout (:class:`~kpi_helpers.exceptions.NotebookError`, naming the
notebook, the cell counted from 1 in the source notebook and the line that raised), a full disk,
another run holding the lock. Errors of the data that ``resolve_quarter`` or ``metrics_fn`` raise
keep their own exit code.

Reproducible: the same data, kit and ``SOURCE_DATE_EPOCH`` give byte-identical files
(:mod:`kpi_helpers.executed`); kernels run with ``PYTHONHASHSEED=0`` unless it is set; the
"generated" time of the index pages is ``SOURCE_DATE_EPOCH`` in UTC when set.

Speed: kernel and process start dominate small reports, so everything runs in this one process.
The cheap checks run first; then kernels boot in worker threads while this thread resolves the
quarter (the CLI validates the data there) and imports papermill. Only when a quarter folder of
``out`` would be refused is the quarter resolved before any kernel boots, so that no kernel starts
for a run that is refused. Up to ``jobs`` notebooks execute at once (papermill in threads; each
kernel is its own process), and each notebook becomes HTML in-process (:mod:`kpi_helpers.htmlexport`)
as soon as it finishes. This module imports no pandas: the kernels must not wait for it.

``metrics_fn`` returns a dict, written as ``metrics.json`` whole (NaN -> null, by
:mod:`kpi_helpers.jsonio`); the index pages show only ``kpis`` and the channel and campaign tables
(:mod:`kpi_helpers.pages` says what they read), so other keys never reach a page.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import brief, fileio, history, jsonio, kernels, onefile, outdir, pages, planning
from . import pdf as _pdf  # `pdf` is render_report's flag
from .exceptions import KpiError, NotebookError, ReportError, ReportInputError
from .executed import first_line, notebook_text, raising_line, reproducible, running_cell, source_cell
from .htmlexport import HtmlConverter
from .outdir import DISK_FULL
from .planning import STANDARD_PARAMS, Job, clip

__all__ = ["LOCK_TIMEOUT", "render_report", "run_cli", "write_metrics"]

LOCK_TIMEOUT = 900.0  # seconds a second run of the same quarter waits for the first


def write_metrics(path: str | Path, metrics: Mapping[str, Any]) -> Path:
    """Write ``metrics`` as JSON to ``path`` atomically; NaN and infinities become ``null``.

    numpy/pandas scalars, arrays, Series, DataFrames (as records), dates and Decimals are converted.
    """
    return jsonio.write_json(path, metrics, what="metrics.json")


def run_cli(**kwargs: Any) -> int:
    """Call :func:`render_report` and turn a kit error into its exit code (message on stderr).

    2 for bad input or usage (nothing ran), 1 for a run that failed; see the module docstring.
    For the ``kpi report`` command: ``sys.exit(run_cli(data=..., quarter=..., out=...))``.
    """
    try:
        render_report(**kwargs)
    except KpiError as exc:
        print(f"kpi report: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


@dataclass
class _Failure(Exception):
    job: Job
    cell_index: int | None  # in the executed notebook (papermill's injected cell counted)
    cell_source: str
    ename: str
    evalue: str
    executed: Path | None
    line: str = ""  # the line of the cell that raised, when the traceback names it


def render_report(
    *,
    data: str | Path,
    quarter: str,
    out: str | Path,
    mapping: str | Path | Sequence[str | Path] | None = None,
    goals: str | Path | None = None,
    engine: str = "duckdb",
    notebooks: Sequence[str | Path] | None = None,
    params: Mapping[str, object] | None = None,
    jobs: int | None = None,
    kernel_name: str | None = None,
    progress: Callable[[str], None] | None = print,
    metrics_fn: Callable[..., dict] | None = None,
    resolve_quarter: Callable[[str], str] | None = None,
    lock_timeout: float = LOCK_TIMEOUT,
    cell_timeout: float | None = 600.0,
    pdf: bool = False,
    paper: str = "A4",
) -> Path:
    """Execute the notebooks for one quarter and write the HTML report; return ``OUT/<quarter>/index.html``.

    Parameters
    ----------
    data
        Data folder or file; passed to the notebooks as an absolute path.
    quarter
        ``2026Q3``, ``FY2026Q1``, ``latest`` or ``current``. Resolved by ``resolve_quarter`` if given,
        else by the ``"quarter"`` key of ``metrics_fn``'s result (then ``metrics_fn`` runs first),
        else used as typed. The resolved label names the output folder.
    out
        Report root (``reports/``). The kit replaces only files it wrote there (module docstring).
    mapping
        Column mappings: one or a list of preset names (``ga4``) and YAML files. Passed to the
        notebooks as a list, files as absolute paths (a preset name wins over a file of that name,
        as in :func:`~kpi_helpers.mapping.load_mapping`); ``None`` or ``[]`` leaves the notebook's
        default.
    goals, engine
        Passed to the notebooks that declare them (``goals`` as an absolute path; it must exist);
        ``None`` leaves the notebook's default.
    notebooks
        Notebooks to run, in report order; default :func:`default_notebooks`.
    params
        Extra notebook parameters (CLI ``--param k=v``). Each must be declared by at least one
        notebook's `parameters` cell and is passed only to the notebooks that declare it; text is
        converted to the declared type. Anything else raises :class:`ParameterError` before any
        kernel starts.
    jobs
        Notebooks executed at once; default ``min(len(notebooks), CPUs)``.
    kernel_name
        Jupyter kernel; default :func:`ensure_kernel` (the running interpreter).
    progress
        Called with one line per event (``print`` by default; ``None`` for silence).
    metrics_fn
        ``metrics_fn(data=, quarter=, mapping=, goals=, engine=) -> dict`` for ``metrics.json`` and the
        KPI tiles (contract in the module docstring). Runs in a thread while the notebooks execute.
    resolve_quarter
        ``resolve_quarter("latest") -> "2026Q3"``.
    lock_timeout
        Seconds to wait for another run of the same quarter before giving up.
    cell_timeout
        Seconds one cell may run before the notebook fails (default 600; None: no limit). Rounded
        up to a whole second, as Jupyter's execution client counts whole seconds: a cell is never
        stopped before the limit given. A limit keeps a scheduled run from hanging on a stalled kernel.
    pdf
        Also print ``report.pdf`` (:mod:`kpi_helpers.pdf`; needs Chromium, checked before anything runs).
    paper
        Page size of ``report.pdf`` and of ``report.html`` printed: one of :data:`kpi_helpers.onefile.PAPERS`.

    Raises
    ------
    ReportInputError
        Bad input or usage (exit 2), found before any kernel starts: see the module docstring.
    ParameterError
        Unknown or unconvertible parameter (a :class:`ReportInputError`); nothing was executed.
    NotebookError
        A notebook raised, its kernel died or a cell timed out (exit 1); names the notebook, the
        cell and the line; the executed copy is kept under ``OUT/.failed/<quarter>/<time>/`` and the
        previous report is untouched.
    ReportError
        The disk filled up, another run held the lock too long, a kernel could not be installed
        (exit 1).
    """
    started = time.perf_counter()
    say = progress or (lambda _line: None)

    # The cheap checks, all before any kernel starts: a refused run costs nothing and leaves no trace.
    planning.source_date_epoch()
    timeout = planning.cell_timeout(cell_timeout)
    chromium = _pdf.find_chromium() if pdf else None
    if paper not in onefile.PAPERS:
        raise ReportInputError(f"paper size `{paper}` is not one of {', '.join(onefile.PAPERS)}")
    data_path = planning.data_path(data)
    standard: dict[str, Any] = {
        "data": str(data_path),
        "mapping": planning.mapping_refs(mapping),
        "goals": planning.goals_path(goals),
        "engine": engine,
    }
    sources = planning.notebook_paths(notebooks)
    out_dir = planning.usable_out(out)
    label = str(quarter).strip()
    # Known now when nothing resolves it: then its folder is checked here too.
    known = resolve_quarter is None and (metrics_fn is None or planning.looks_resolved(label))
    if known:
        planning.check_label(label)
    plan = planning.plan(sources, {**standard, "quarter": label}, dict(params or {}))  # ParameterError
    outdir.check_reports_index(out_dir)
    metrics: dict | None = None
    resolved = known
    if known:
        outdir.check_quarter_folder(out_dir, label)
    elif outdir.refused_folders(out_dir):
        # Some quarter folder of `out` would be refused: learn which quarter this run writes before
        # any kernel boots (this gives up the overlap of kernel start and data validation).
        label, metrics = _resolve_label(label, standard, resolve_quarter, metrics_fn, out_dir)
        resolved = True

    kernel = kernel_name or kernels.ensure_kernel()
    n_jobs = max(1, min(len(sources), jobs or _cpu_count()))
    # Kernels boot in the worker threads from here on, while this thread resolves the quarter (the
    # CLI validates the data there) and imports papermill: kernel start-up dominates small reports.
    with _Runner(sources, kernel, n_jobs, timeout) as runner:
        if not resolved:
            label, metrics = _resolve_label(label, standard, resolve_quarter, metrics_fn, out_dir)
        standard["quarter"] = label
        plan = [
            replace(j, parameters={**j.parameters, "quarter": label}) if "quarter" in j.parameters else j for j in plan
        ]

        out_dir.mkdir(parents=True, exist_ok=True)
        final = out_dir / label
        with outdir.folder_lock(out_dir / f".{label}.lock", lock_timeout, f"quarter {label}", say):
            outdir.recover(out_dir, label)
            outdir.check_quarter_folder(out_dir, label)  # again under the lock: no other run writes now
            tmp = out_dir / f".tmp-{label}-{uuid.uuid4().hex[:12]}"
            try:
                tmp.mkdir()  # not mkdtemp: 0700 would make the swapped-in report unreadable to others
                say(
                    f"Rendering {len(plan)} notebook{'s' if len(plan) != 1 else ''} for {label} "
                    f"({n_jobs} at a time, kernel `{kernel}`)"
                )
                # metrics_fn gets its own thread so it never holds a notebook slot.
                with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kpi-metrics") as side:
                    pending = None
                    if metrics is None and metrics_fn is not None:
                        pending = side.submit(_call_metrics, metrics_fn, standard)
                    failures = runner.run(plan, tmp, HtmlConverter(label, plan), say)
                    if failures:
                        raise _notebook_error(failures, plan, out_dir / ".failed" / label, label, timeout)
                    if pending is not None:
                        metrics = pending.result()
                metrics = metrics if metrics is not None else {"quarter": label}
                write_metrics(tmp / "metrics.json", metrics)
                # compared with the last published render of the quarter, read under its lock
                changes = history.changes(label, history.last_render(out_dir, label), metrics)
                history.write_changes(tmp / "changes.json", changes)
                pages.write_quarter_index(tmp, label, metrics, plan, changes)
                _share(tmp, label, metrics, plan, changes, chromium, paper, say)
                outdir.write_manifest(tmp, outdir.manifest_of(tmp))
                outdir.swap_into_place(tmp, final)
            except OSError as exc:
                if exc.errno in DISK_FULL or exc.filename is not None:
                    raise outdir.write_error(exc, out_dir, f"the previous report for {label} is unchanged") from exc
                raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful swap
            try:
                history.record(out_dir, label, final / "metrics.json")  # only a published render is history
            except OSError as exc:
                state = f"the report for {label} is in place; its metrics are not kept in `{history.HISTORY}`"
                raise outdir.write_error(exc, out_dir, state) from exc
    try:
        pages.write_reports_index(out_dir)
    except OSError as exc:
        if exc.errno in DISK_FULL or exc.filename is not None:
            state = f"the report for {label} is in place; `{out_dir / 'index.html'}` is not updated"
            raise outdir.write_error(exc, out_dir, state) from exc
        raise
    index = final / "index.html"
    say(f"Report for {label} in {time.perf_counter() - started:.1f} s: {index}")
    return index


def _share(
    tmp: Path,
    label: str,
    metrics: Mapping[str, Any],
    plan: list[Job],
    changes: Mapping[str, Any],
    chromium: Path | None,
    paper: str,
    say: Callable[[str], None],
) -> None:
    """What leadership gets besides the pages: the brief, the one file and, with Chromium, the PDF."""
    started = time.perf_counter()
    shared = brief.write_brief(tmp, label, metrics, plan, changes)
    one = onefile.write_report(tmp, label, plan, brief.render(shared, standalone=False), metrics, paper=paper)
    say(f"{one.name} ({one.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - started:.1f} s")
    if chromium is not None:
        started = time.perf_counter()
        printed = _pdf.write_pdf(tmp, chromium=chromium)
        say(f"{printed.name} ({printed.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - started:.1f} s")


def _resolve_label(
    label: str,
    standard: Mapping[str, Any],
    resolve_quarter: Callable[[str], str] | None,
    metrics_fn: Callable[..., dict] | None,
    out_dir: Path,
) -> tuple[str, dict | None]:
    """The quarter's folder name, checked, and the metrics when computing them was the way to learn it."""
    metrics = None
    if resolve_quarter is not None:
        label = str(resolve_quarter(label))
    elif metrics_fn is not None and not planning.looks_resolved(label):
        metrics = _call_metrics(metrics_fn, {**standard, "quarter": label})
        label = str(metrics.get("quarter") or label)
    planning.check_label(label)
    outdir.check_quarter_folder(out_dir, label)
    return label, metrics


class _Runner:
    """Worker threads that each own one kernel from boot to shutdown.

    Kernels boot as soon as the runner exists, which :func:`render_report` creates only once every
    input check passed (up to ``2 * n_jobs`` at once, so the next kernels are ready when a slot
    frees). Notebooks execute once :meth:`run` opens
    the gate, at most ``n_jobs`` at a time; each page is converted as soon as its notebook finished,
    while the others still execute. A kernel is driven only from the thread that started it (its
    zmq sockets belong to that thread's event loop). After a notebook failure no further notebook
    starts and those executing run to their end; when the caller leaves with an exception (Ctrl-C)
    the executing kernels are killed too.
    """

    def __init__(self, sources: list[Path], kernel: str, n_jobs: int, cell_timeout: int | None) -> None:
        self._kernel = kernel
        self._cell_timeout = cell_timeout
        self._executing: dict[int, Any] = {}  # thread id -> kernel manager, for __exit__
        self._slots = threading.BoundedSemaphore(n_jobs)
        self._gate = threading.Event()
        self._abort = threading.Event()
        self._jobs: dict[Path, Job] = {}
        self._tmp = Path()
        self._convert: HtmlConverter | None = None
        self._pool = ThreadPoolExecutor(max_workers=min(len(sources), 2 * n_jobs), thread_name_prefix="kpi-nb")
        self._futures = {self._pool.submit(self._work, src): src for src in sources}

    def __enter__(self) -> _Runner:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._abort.set()  # no-op after a complete run; otherwise booted kernels are shut down
        self._gate.set()
        if exc_type is not None:
            # A kernel belongs to its worker's event loop, but a signal is safe from any thread; the
            # worker then sees a dead kernel and returns.
            for km in list(self._executing.values()):
                with suppress(Exception):
                    os.kill(km.provisioner.pid, signal.SIGKILL)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def run(self, plan: list[Job], tmp: Path, convert: HtmlConverter, say: Callable[[str], None]) -> list[_Failure]:
        """Execute ``plan``; report progress; return the failures (empty when all succeeded)."""
        self._jobs, self._tmp, self._convert = {job.source: job for job in plan}, tmp, convert
        self._gate.set()
        convert.warm_up()  # build the exporter while the first kernels execute
        pages.warm_up()  # and import what the index pages format with
        failures: list[_Failure] = []
        done = 0
        for future in as_completed(self._futures):
            if future.cancelled():
                continue
            job = self._jobs[self._futures[future]]
            try:
                seconds = future.result()
            except _Failure as failure:
                done += 1
                failures.append(failure)
                self._abort.set()  # no point starting the remaining notebooks
                say(f"[{done}/{len(plan)}] {job.name} FAILED: {failure.ename}: {clip(failure.evalue, 200)}")
            else:
                if seconds is not None:  # None: skipped after an abort
                    done += 1
                    say(f"[{done}/{len(plan)}] {job.name} done in {seconds:.1f} s")
        return failures

    def _work(self, source: Path) -> float | None:
        if self._abort.is_set():
            return None
        km, boot_error = None, None
        try:
            try:
                km = kernels.start_kernel(self._kernel, source.parent)
            except Exception as exc:  # reported once the plan says this notebook runs
                boot_error = exc
            self._gate.wait()
            if self._abort.is_set():
                return None
            job = self._jobs[source]
            if boot_error is not None:
                raise _Failure(job, None, "", type(boot_error).__name__, str(boot_error).strip(), None)
            with self._slots:
                if self._abort.is_set():
                    return None
                started = time.perf_counter()
                self._executing[threading.get_ident()] = km
                try:
                    nb = _execute_notebook(job, self._tmp, self._kernel, km, self._cell_timeout)
                finally:
                    self._executing.pop(threading.get_ident(), None)
            kernels.stop_kernel(km)  # free its memory before converting
            km = None
            nb = reproducible(nb, job)
            fileio.write_atomic(self._tmp / f"{job.name}.ipynb", notebook_text(nb))
            assert self._convert is not None
            try:
                html = self._convert(nb, job)
            except Exception as exc:  # an output nbconvert cannot render: fail this notebook clearly
                executed = self._tmp / f"{job.name}.ipynb"
                raise _Failure(job, None, "", type(exc).__name__, f"converting to HTML: {exc}", executed) from exc
            fileio.write_atomic(self._tmp / f"{job.name}.html", html)
            return time.perf_counter() - started
        finally:
            if km is not None:
                kernels.stop_kernel(km)


def _execute_notebook(job: Job, tmp: Path, kernel: str, km: Any, cell_timeout: int | None) -> Any:
    """papermill on a booted kernel; the executed notebook is written to ``tmp`` (also on failure)."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    target = tmp / f"{job.name}.ipynb"
    try:
        # No `cwd=`: papermill would os.chdir, which is process-wide; the kernel runs in the
        # notebook's folder already. `language` is given so the notebook's metadata is not consulted.
        # No timing metadata: a page must not differ from run to run (module docstring).
        return papermill.execute_notebook(
            str(job.source),
            str(target),
            parameters=job.parameters,
            kernel_name=kernel,
            language="python",
            progress_bar=False,
            execution_timeout=cell_timeout,
            km=km,
            record_timing=False,
        )
    except PapermillExecutionError as exc:
        line = raising_line(exc.traceback, exc.exec_count, exc.source)
        raise _Failure(job, exc.cell_index, exc.source, exc.ename, exc.evalue, target, line) from exc
    except Exception as exc:  # cell timeout, kernel died, a write that failed
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            raise  # a full disk is the run's failure, not the notebook's (render_report says so)
        executed = target if target.exists() else None
        index, source = running_cell(executed)
        if isinstance(exc, CellTimeoutError):
            evalue = (
                f"the cell ran longer than the cell timeout ({cell_timeout} s); "
                "make it faster or raise `--cell-timeout`"
            )
        elif isinstance(exc, DeadKernelError):
            evalue = "the kernel died while the cell ran (out of memory, or killed)"
        else:
            evalue = str(exc).strip()
        raise _Failure(job, index, source, type(exc).__name__, evalue, executed) from exc


def _notebook_error(
    failures: list[_Failure], plan: list[Job], failed_root: Path, label: str, cell_timeout: int | None
) -> NotebookError:
    """Keep every failed executed notebook and describe the first failure (in report order)."""
    order = {job.name: i for i, job in enumerate(plan)}
    failures.sort(key=lambda f: order[f.job.name])
    kept = outdir.keep_failed([f.executed for f in failures if f.executed is not None], failed_root)
    first = failures[0]
    path = kept.get(first.job.name)
    cell_index = source_cell(path, first.cell_index)
    shown = first.line or first_line(first.cell_source)
    return NotebookError(
        notebook=first.job.source.name,
        cell_index=cell_index,
        cell_source=shown,
        ename=first.ename,
        evalue=clip(first.evalue, 2000),
        failed_path=str(path) if path else None,
        quarter=label,
        others=tuple(f.job.source.name for f in failures[1:]),
    )


def _call_metrics(metrics_fn: Callable[..., dict], standard: Mapping[str, Any]) -> dict:
    try:
        result = metrics_fn(**{k: standard.get(k) for k in STANDARD_PARAMS})
    except KpiError:
        raise
    except Exception as exc:
        raise ReportError(f"`metrics_fn` failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(result, Mapping):
        raise ReportError(f"`metrics_fn` must return a dict, got {type(result).__name__}")
    return dict(result)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours taskset/cgroup cpusets
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1
