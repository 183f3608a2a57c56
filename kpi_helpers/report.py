"""Render the quarterly report: run the numbered notebooks with papermill, turn them into offline
HTML pages for leadership and write the index pages.

Layout under ``out``::

    OUT/index.html                      every rendered quarter, newest first, with headline numbers
    OUT/<quarter>/index.html            headline KPI tiles against targets; links to the notebook pages
    OUT/<quarter>/metrics.json          what ``metrics_fn`` returned (NaN -> null)
    OUT/<quarter>/<notebook>.ipynb      executed notebook
    OUT/<quarter>/<notebook>.html       the same as a page: code hidden, images embedded, no external requests
    OUT/.failed/<quarter>/<nb>.ipynb    executed copy of a notebook that raised, kept for debugging
    OUT/.<quarter>.lock                 per-quarter lock file (``fcntl.flock``; never deleted)

A run renders into a unique ``OUT/.tmp-<quarter>-*`` folder and swaps it into place only when every
notebook succeeded, so a failed run leaves the previous report of the quarter untouched. Runs of the
same quarter are serialised: the second waits for the first (up to ``lock_timeout`` seconds, then
:class:`~kpi_helpers.exceptions.ReportError`). Locking needs POSIX ``fcntl``; without it runs are
not serialised.

Speed: kernel and process start dominate small reports, so everything runs in this one process:
kernels boot in worker threads while this thread imports papermill and reads the parameters cells,
up to ``jobs`` notebooks execute at once (papermill in threads; each kernel is its own process), and
each notebook becomes HTML in-process (nbconvert ``HTMLExporter``) as soon as it finishes.

``metrics_fn`` contract: a dict, written as ``metrics.json`` whole (NaN -> null); the index pages
show only ``kpis`` and the channel/campaign tables, so other keys never reach a page. Every key is
optional::

    {"quarter": "2026Q3",                  # resolved label; used when `quarter` is `latest`/`current`
     "currency": "USD",
     "kpis": [                             # metrics.QuarterKpis.kpi_table() rows ...
        {"name": "Leads per quarter", "metric": "leads", "actual": 850, "projected": None,
         "target": 1000, "status": "on track"},          # on track | at risk | off track | no data
        # ... or the short form; status then comes from value/target (>= 100 % / >= 90 % / below)
        {"name": "cost_per_lead", "value": 52.0, "target": 50.0, "better": "lower",
         "format": "currency"}],           # currency | percent (fraction 0-1) | number; else guessed
     "by_channel": {"Paid search": {"leads": 120, "cost": 1.0e4, "roi": 1.8}},   # or "channels": [rows]
     "campaigns": [{"campaign": "Spring webinar", "spend": 900.0}],
     "formats": {"roi": "percent"}}        # column formats for the tables (else guessed by name)

``kpis`` may also be a mapping ``{name: {...}}`` or ``{name: number}``.
"""

from __future__ import annotations

import ast
import datetime as dt
import functools
import hashlib
import json
import math
import os
import re
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from .exceptions import KpiError, NotebookError, ParameterError, ReportError

try:  # POSIX only; see the module docstring
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "KERNEL_NAME",
    "STANDARD_PARAMS",
    "Tile",
    "default_notebooks",
    "ensure_kernel",
    "format_value",
    "headline_tiles",
    "make_html_exporter",
    "parse_params",
    "render_report",
    "run_cli",
    "write_metrics",
    "write_reports_index",
]

KIT_NAME = "Marketing KPI kit"
KERNEL_NAME = "kpi-kit"
#: Parameters the runner passes to every notebook that declares them in its `parameters` cell.
STANDARD_PARAMS = ("data", "quarter", "mapping", "goals", "engine")
#: Cells with one of these tags are left out of the HTML (they stay in the executed .ipynb).
# `record` cells carry the values tests compare (a JSON bundle); readers do not need them.
REMOVE_CELL_TAGS = frozenset({"widgets", "record", "remove", "remove-cell", "remove_cell"})
REMOVE_OUTPUT_TAGS = frozenset({"remove-output", "remove_output"})
LOCK_TIMEOUT = 900.0  # seconds a second run of the same quarter waits for the first
TEMPLATES = Path(__file__).with_name("templates")

_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_KERNEL_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------------
# Small public helpers (the CLI calls these)


def parse_params(pairs: Iterable[str]) -> dict[str, str]:
    """Turn CLI ``--param key=value`` strings into a dict.

    Values stay text; :func:`render_report` converts each to the type the notebook's `parameters`
    cell declares (``int``, ``float``, ``bool``, ``str``; literals for untyped parameters).

    >>> parse_params(["target_roi=3.5", "note=a=b"])
    {'target_roi': '3.5', 'note': 'a=b'}
    """
    out: dict[str, str] = {}
    bad = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            bad.append(pair)
        else:
            out[key.strip()] = value
    if bad:
        raise ParameterError(
            f"`--param` expects `name=value` with a Python name; got {', '.join(repr(b) for b in bad)}"
        )
    return out


def write_metrics(path: str | Path, metrics: Mapping[str, Any]) -> Path:
    """Write ``metrics`` as JSON to ``path`` atomically; NaN and infinities become ``null``.

    numpy/pandas scalars, arrays, Series, DataFrames (as records), dates and Decimals are converted.
    """
    path = Path(path)
    text = json.dumps(_jsonable(metrics), indent=2, ensure_ascii=False, allow_nan=False)
    _write_atomic(path, text + "\n")
    return path


def run_cli(**kwargs: Any) -> int:
    """Call :func:`render_report` and turn a kit error into exit status 1 (message on stderr).

    For the ``kpi report`` command: ``sys.exit(run_cli(data=..., quarter=..., out=...))``.
    """
    try:
        render_report(**kwargs)
    except KpiError as exc:
        print(f"kpi report: error: {exc}", file=sys.stderr)
        return 1
    return 0


def default_notebooks(root: str | Path | None = None) -> list[Path]:
    """The kit's numbered notebooks ``notebooks/NN-*.ipynb``.

    Looked up under ``root``, else the current directory, else the source checkout the package
    was installed from (editable install).
    """
    bases = [Path(root)] if root is not None else [Path.cwd(), Path(__file__).resolve().parents[1]]
    for base in bases:
        found = sorted((base / "notebooks").glob("[0-9][0-9]-*.ipynb"))
        if found:
            return [p.resolve() for p in found]
    raise ReportError(
        f"no notebooks found: expected `notebooks/NN-*.ipynb` under {', '.join(f'`{b}`' for b in bases)}; "
        "run from the project folder or pass `notebooks=`"
    )


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


@dataclass(frozen=True)
class _Job:
    source: Path
    name: str  # file stem, unique in a run
    title: str
    parameters: dict[str, Any]


@dataclass
class _Failure(Exception):
    job: _Job
    cell_index: int | None
    cell_source: str
    ename: str
    evalue: str
    executed: Path | None


def render_report(
    *,
    data: str | Path,
    quarter: str,
    out: str | Path,
    mapping: str | Path | None = None,
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
        Report root (``reports/``).
    mapping, goals, engine
        Passed to the notebooks that declare them (paths made absolute when they exist); ``None``
        leaves the notebook's default.
    notebooks
        Notebooks to run, in report order; default :func:`default_notebooks`.
    params
        Extra notebook parameters (CLI ``--param k=v``). Each must be declared by at least one
        notebook's `parameters` cell and is passed only to the notebooks that declare it; text is
        converted to the declared type. Anything else raises :class:`ParameterError` before any
        notebook runs.
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
        Seconds one cell may run before the notebook fails (default 600; None: no limit). A limit
        keeps a scheduled run from hanging on a stalled kernel.

    Raises
    ------
    ParameterError
        Unknown or unconvertible parameter; nothing was executed.
    NotebookError
        A notebook raised; carries notebook, cell and exception; the executed copy is kept under
        ``OUT/.failed/<quarter>/`` and the previous report is untouched.
    ReportError
        Missing inputs, lock timeout, kernel problems.
    """
    started = time.perf_counter()
    say = progress or (lambda _line: None)

    data_path = Path(data).expanduser().resolve()
    if not data_path.exists():
        raise ReportError(f"data `{data}` not found; pass the folder (or file) holding the exports")
    out_dir = Path(out).expanduser().resolve()
    standard: dict[str, Any] = {
        "data": str(data_path),
        "mapping": _maybe_path(mapping),
        "goals": _maybe_path(goals),
        "engine": engine,
    }
    sources = _notebook_paths(notebooks)
    kernel = kernel_name or ensure_kernel()
    n_jobs = max(1, min(len(sources), jobs or _cpu_count()))
    # Kernels boot in the worker threads from here on, while this thread imports papermill, reads the
    # parameters cells and takes the lock: kernel start-up dominates small reports.
    with _Runner(sources, kernel, n_jobs, cell_timeout) as runner:
        metrics: dict | None = None
        label = str(quarter).strip()
        if resolve_quarter is not None:
            label = str(resolve_quarter(label))
        elif metrics_fn is not None and not _looks_resolved(label):
            metrics = _call_metrics(metrics_fn, {**standard, "quarter": label})
            label = str(metrics.get("quarter") or label)
        if not _LABEL_RE.match(label):
            raise ReportError(f"quarter `{label}` cannot name a report folder; expected e.g. `2026Q3`")
        standard["quarter"] = label
        plan = _plan(sources, standard, dict(params or {}))  # ParameterError: nothing has executed

        out_dir.mkdir(parents=True, exist_ok=True)
        final = out_dir / label
        with _file_lock(out_dir / f".{label}.lock", lock_timeout, f"quarter {label}", say):
            _recover(out_dir, label)
            failed_dir = out_dir / ".failed" / label
            shutil.rmtree(failed_dir, ignore_errors=True)  # stale copies from an earlier failed run
            tmp = out_dir / f".tmp-{label}-{uuid.uuid4().hex[:12]}"
            tmp.mkdir()  # not mkdtemp: 0700 would make the swapped-in report unreadable to others
            try:
                say(
                    f"Rendering {len(plan)} notebook{'s' if len(plan) != 1 else ''} for {label} "
                    f"({n_jobs} at a time, kernel `{kernel}`)"
                )
                # metrics_fn gets its own thread so it never holds a notebook slot.
                with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kpi-metrics") as side:
                    pending = None
                    if metrics is None and metrics_fn is not None:
                        pending = side.submit(_call_metrics, metrics_fn, standard)
                    failures = runner.run(plan, tmp, _HtmlConverter(label, plan), say)
                    if failures:
                        raise _notebook_error(failures, plan, failed_dir, label)
                    if pending is not None:
                        metrics = pending.result()
                metrics = metrics if metrics is not None else {"quarter": label}
                write_metrics(tmp / "metrics.json", metrics)
                _write_quarter_index(tmp, label, metrics, plan)
                _swap_into_place(tmp, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful swap
    write_reports_index(out_dir)
    index = final / "index.html"
    say(f"Report for {label} in {time.perf_counter() - started:.1f} s: {index}")
    return index


class _Runner:
    """Worker threads that each own one kernel from boot to shutdown.

    Kernels boot as soon as the runner exists (before the plan is known; up to ``2 * n_jobs`` at
    once, so the next kernels are ready when a slot frees). Notebooks execute once :meth:`run` opens
    the gate, at most ``n_jobs`` at a time; each page is converted as soon as its notebook finished,
    while the others still execute. A kernel is driven only from the thread that started it (its
    zmq sockets belong to that thread's event loop). After a notebook failure no further notebook
    starts and those executing run to their end; when the caller leaves with an exception (Ctrl-C)
    the executing kernels are killed too.
    """

    def __init__(self, sources: list[Path], kernel: str, n_jobs: int, cell_timeout: float | None) -> None:
        self._kernel = kernel
        self._cell_timeout = cell_timeout
        self._executing: dict[int, Any] = {}  # thread id -> kernel manager, for __exit__
        self._slots = threading.BoundedSemaphore(n_jobs)
        self._gate = threading.Event()
        self._abort = threading.Event()
        self._jobs: dict[Path, _Job] = {}
        self._tmp = Path()
        self._convert: _HtmlConverter | None = None
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

    def run(self, plan: list[_Job], tmp: Path, convert: _HtmlConverter, say: Callable[[str], None]) -> list[_Failure]:
        """Execute ``plan``; report progress; return the failures (empty when all succeeded)."""
        self._jobs, self._tmp, self._convert = {job.source: job for job in plan}, tmp, convert
        self._gate.set()
        convert.warm_up()  # build the exporter while the first kernels execute
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
                say(f"[{done}/{len(plan)}] {job.name} FAILED: {failure.ename}: {failure.evalue}")
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
                km = _start_kernel(self._kernel, source.parent)
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
            _stop_kernel(km)  # free its memory before converting
            km = None
            assert self._convert is not None
            try:
                html = self._convert(nb, job)
            except Exception as exc:  # an output nbconvert cannot render: fail this notebook clearly
                executed = self._tmp / f"{job.name}.ipynb"
                raise _Failure(job, None, "", type(exc).__name__, f"converting to HTML: {exc}", executed) from exc
            (self._tmp / f"{job.name}.html").write_text(html, encoding="utf-8")
            return time.perf_counter() - started
        finally:
            if km is not None:
                _stop_kernel(km)


def _execute_notebook(job: _Job, tmp: Path, kernel: str, km: Any, cell_timeout: float | None) -> Any:
    """papermill on a booted kernel; the executed notebook is written to ``tmp`` (also on failure)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    target = tmp / f"{job.name}.ipynb"
    try:
        # No `cwd=`: papermill would os.chdir, which is process-wide; the kernel runs in the
        # notebook's folder already. `language` is given so the notebook's metadata is not consulted.
        return papermill.execute_notebook(
            str(job.source),
            str(target),
            parameters=job.parameters,
            kernel_name=kernel,
            language="python",
            progress_bar=False,
            execution_timeout=cell_timeout,
            km=km,
        )
    except PapermillExecutionError as exc:
        raise _Failure(job, exc.cell_index, exc.source, exc.ename, exc.evalue, target) from exc
    except Exception as exc:  # kernel died, cell timeout, unreadable notebook
        executed = target if target.exists() else None
        raise _Failure(job, None, "", type(exc).__name__, str(exc).strip(), executed) from exc


def _notebook_error(failures: list[_Failure], plan: list[_Job], failed_dir: Path, label: str) -> NotebookError:
    """Keep every failed executed notebook and describe the first failure (in report order)."""
    order = {job.name: i for i, job in enumerate(plan)}
    failures.sort(key=lambda f: order[f.job.name])
    kept: dict[str, Path] = {}
    for failure in failures:
        if failure.executed is not None and failure.executed.exists():
            failed_dir.mkdir(parents=True, exist_ok=True)
            kept[failure.job.name] = Path(shutil.move(failure.executed, failed_dir / failure.executed.name))
    first = failures[0]
    cell_index, first_line = _source_cell(kept.get(first.job.name), first.cell_index, first.cell_source)
    path = kept.get(first.job.name)
    return NotebookError(
        notebook=first.job.source.name,
        cell_index=cell_index,
        cell_source=first_line,
        ename=first.ename,
        evalue=first.evalue,
        failed_path=str(path) if path else None,
        quarter=label,
        others=tuple(f.job.source.name for f in failures[1:]),
    )


def _source_cell(executed: Path | None, cell_index: int | None, source: str) -> tuple[int | None, str]:
    """Map papermill's cell index (executed notebook) to the source notebook; first non-blank line."""
    first_line = next((line.strip() for line in (source or "").splitlines() if line.strip()), "")
    if len(first_line) > 80:
        first_line = first_line[:77] + "..."
    if cell_index is None or executed is None:
        return cell_index, first_line
    try:
        cells = json.loads(executed.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return cell_index, first_line
    # papermill computed the index before inserting its error banner cells; without them the saved
    # notebook is the executed one, where the injected-parameters cell is the only extra cell.
    regular = [c for c in cells if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])]
    injected = next(
        (i for i, c in enumerate(regular) if "injected-parameters" in c.get("metadata", {}).get("tags", [])),
        None,
    )
    return (cell_index - 1 if injected is not None and injected < cell_index else cell_index), first_line


# --------------------------------------------------------------------------------------------------
# Planning: notebooks, parameters, quarter


def _notebook_paths(notebooks: Sequence[str | Path] | None) -> list[Path]:
    sources = default_notebooks() if notebooks is None else [Path(n).expanduser().resolve() for n in notebooks]
    if not sources:
        raise ReportError("`notebooks` is empty; pass at least one notebook")
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        raise ReportError(f"notebook not found: {', '.join(f'`{m}`' for m in missing)}")
    stems = [p.stem for p in sources]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise ReportError(f"two notebooks would write the same page: {', '.join(f'`{d}`' for d in dupes)}")
    return sources


def _plan(sources: list[Path], standard: dict[str, Any], params: dict[str, Any]) -> list[_Job]:
    """Read each notebook's `parameters` cell and decide what it receives; report every problem at once."""
    clash = sorted(set(params) & set(STANDARD_PARAMS))
    if clash:
        raise ParameterError(
            f"{', '.join(f'`{c}`' for c in clash)} cannot be passed with `--param`; use the matching option"
        )
    declared: dict[Path, dict[str, dict]] = {}
    titles: dict[Path, str] = {}
    problems: list[str] = []
    for src in sources:
        found = _declared_parameters(src)
        if found is None:
            problems.append(f"`{src.name}` has no cell tagged `parameters`, so it cannot receive the quarter")
            continue
        declared[src], titles[src] = found
    for key in params:
        if not any(key in d for d in declared.values()):
            known = "; ".join(f"`{s.name}`: {', '.join(d) or 'none'}" for s, d in declared.items())
            problems.append(f"unknown parameter `{key}`: no notebook declares it (known parameters: {known})")
    jobs: list[_Job] = []
    for src, decl in declared.items():
        values = {k: v for k, v in standard.items() if k in decl and v is not None}
        for key, value in params.items():
            if key in decl:
                try:
                    values[key] = _convert(value, decl[key].get("inferred_type_name") or "None")
                except ValueError:
                    problems.append(
                        f"parameter `{key}` for `{src.name}` expects {decl[key]['inferred_type_name']}, got {value!r}"
                    )
        jobs.append(_Job(src, src.stem, titles[src], values))
    if problems:
        raise ParameterError("; ".join(problems) + "; nothing was executed")
    return jobs


def _declared_parameters(path: Path) -> tuple[dict[str, dict], str] | None:
    """``({name: {name, inferred_type_name, default, help}}, title)``, or None without a parameters cell.

    Same machinery as ``papermill.inspect_notebook`` but with the Python translator forced: the
    kernelspec stored in the notebook is not trusted (it may be missing or name another kernel).
    """
    import nbformat
    from papermill.translators import PythonTranslator

    nb = nbformat.read(path, as_version=4)
    title = _title(nb.cells, path.stem)
    cell = next((c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        return None
    return {p.name: p._asdict() for p in PythonTranslator.inspect(cell)}, title


def _title(cells: list, stem: str) -> str:
    """First Markdown heading of the notebook, else the file name made readable."""
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            for line in cell.get("source", "").splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
            break
    words = re.sub(r"^\d+[-_]", "", stem).replace("-", " ").replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else stem


def _convert(value: Any, type_name: str) -> Any:
    """Convert CLI text to the type declared in the parameters cell (``ValueError`` when impossible)."""
    if not isinstance(value, str):
        return value
    names = set(re.findall(r"\w+", type_name))
    if "Optional" in names:
        names.add("None")
    names -= {"Optional", "Union", "typing"}
    text = value.strip()
    if names <= {"None"}:  # untyped: read a Python literal, else keep the text (like papermill's -p)
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return value
    if "None" in names and text.lower() in ("none", "null"):
        return None
    if "str" in names:
        return value
    if "bool" in names and text.lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
        return text.lower() in ("true", "yes", "1", "on")
    for kind in (int, float):
        if kind.__name__ in names:
            try:
                return kind(text)
            except ValueError:
                pass
    if names & {"list", "dict", "tuple", "set"}:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            pass
    raise ValueError(value)


def _looks_resolved(label: str) -> bool:
    return label.lower() not in ("latest", "current")


def _maybe_path(value: str | Path | None) -> str | None:
    """Absolute path when ``value`` names an existing file or folder, else the text (e.g. a preset name)."""
    if value is None:
        return None
    path = Path(value).expanduser()
    return str(path.resolve()) if path.exists() else str(value)


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


# --------------------------------------------------------------------------------------------------
# Kernel


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


def _start_kernel(kernel: str, cwd: Path) -> Any:
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
    # In-memory IPython history: parallel kernels would otherwise contend for one history.sqlite.
    run_sync(km.start_kernel)(cwd=str(cwd), extra_arguments=["--HistoryManager.hist_file=:memory:"])
    return km


def _stop_kernel(km: Any) -> None:
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
    """Write an ipykernel spec for ``sys.executable`` at ``target`` without a half-written moment."""
    from ipykernel.kernelspec import write_kernel_spec

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}-{uuid.uuid4().hex[:8]}"
    write_kernel_spec(str(staging), overrides={"display_name": KIT_NAME})
    try:
        if target.exists():
            os.replace(staging / "kernel.json", target / "kernel.json")
        else:
            try:
                os.rename(staging, target)
            except OSError:  # another process installed it meanwhile
                os.replace(staging / "kernel.json", target / "kernel.json")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# HTML pages of the notebooks (nbconvert, in-process)


class _HtmlConverter:
    """Thread-safe nbconvert ``HTMLExporter`` built once per run with the kit's offline template."""

    def __init__(self, quarter: str, plan: list[_Job]) -> None:
        self._quarter = quarter
        self._pages = [{"href": f"{j.name}.html", "title": j.title} for j in plan]
        self._lock = threading.Lock()
        self._exporter: Any = None

    def warm_up(self) -> None:
        """Import nbconvert and build the exporter now, while kernels execute."""
        with self._lock:
            if self._exporter is None:
                self._exporter = make_html_exporter()

    def __call__(self, nb: Any, job: _Job) -> str:
        resources = {
            "metadata": {"name": f"{job.title} · {self._quarter}", "path": str(job.source.parent)},
            "kpi": {"kit": KIT_NAME, "quarter": self._quarter, "title": job.title, "pages": self._pages},
        }
        # Conversion is pure Python (GIL-bound): serialising it costs nothing and keeps the exporter's
        # preprocessors and Jinja environment single-threaded.
        with self._lock:
            if self._exporter is None:
                self._exporter = make_html_exporter()
            body, _ = self._exporter.from_notebook_node(nb, resources=resources)
        return body


def make_html_exporter() -> Any:
    """nbconvert ``HTMLExporter`` for leadership pages.

    Code and prompts hidden; cells tagged ``widgets``/``remove`` dropped; widget views, stderr
    streams and JavaScript outputs dropped; Markdown images embedded; template
    ``templates/kpi_report`` (no CDN scripts).
    """
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_cell_tags = set(REMOVE_CELL_TAGS)
    config.TagRemovePreprocessor.remove_all_outputs_tags = set(REMOVE_OUTPUT_TAGS)
    exporter = HTMLExporter(
        config=config,
        template_name="kpi_report",
        extra_template_basedirs=[str(TEMPLATES)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )
    exporter.register_preprocessor(TagRemovePreprocessor(config=config), enabled=True)
    exporter.register_preprocessor(_drop_unrenderable_outputs, enabled=True)
    return exporter


def _drop_unrenderable_outputs(nb: Any, resources: dict) -> tuple[Any, dict]:
    """Drop what cannot work offline or is noise for leadership (kept in the executed .ipynb).

    Widget views need the widget manager from a CDN; stderr is warnings; the widget state in the
    metadata would make the template emit the CDN loader.
    """
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = [
            out
            for out in cell.get("outputs", [])
            if not (out.get("output_type") == "stream" and out.get("name") == "stderr")
            and _WIDGET_MIME not in out.get("data", {})
        ]
    return nb, resources


# --------------------------------------------------------------------------------------------------
# Index pages (jinja2, autoescaped)


@dataclass(frozen=True)
class Tile:
    """One headline KPI, formatted for a page."""

    label: str
    value: str
    target: str
    status: str  # good | warn | bad | none
    status_text: str
    attainment: str


_STATUS_ALIASES = {
    "good": "good", "met": "good", "on_track": "good", "on track": "good", "green": "good", "ok": "good",
    "warn": "warn", "near": "warn", "at_risk": "warn", "at risk": "warn", "amber": "warn", "yellow": "warn",
    "bad": "bad", "missed": "bad", "off_track": "bad", "off track": "bad", "red": "bad",
    "none": "none", "no data": "none", "no_data": "none", "unknown": "none",
}  # fmt: skip
# Spelled out on the tile so the status never depends on colour alone.
_STATUS_TEXT = {"good": "On track", "warn": "At risk", "bad": "Off track", "none": "No target"}
_CURRENCY = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
_PERCENT_WORDS = ("rate", "share", "roi", "pct", "ratio", "margin")
_CURRENCY_WORDS = ("spend", "revenue", "cost", "amount", "value", "cpl", "cac", "budget", "pipeline", "clv")


def headline_tiles(metrics: Mapping[str, Any], limit: int | None = None) -> list[Tile]:
    """KPI tiles from ``metrics["kpis"]`` with status against target (see the module docstring).

    Reads the kit's ``kpi_table`` rows (``name``, ``metric``, ``actual``, ``projected``, ``target``,
    ``status``, and ``baseline`` with ``progress``, shown as "65% of the way from $822k") as well
    as the short form (``name``, ``value``, ``target``, ``better``).
    """
    raw = metrics.get("kpis") or []
    if isinstance(raw, Mapping):
        raw = [{"name": k, **v} if isinstance(v, Mapping) else {"name": k, "value": v} for k, v in raw.items()]
    currency = str(metrics.get("currency") or "")
    tiles = []
    for kpi in raw:
        if not isinstance(kpi, Mapping):
            continue
        name = str(kpi.get("name") or kpi.get("metric") or "")
        fmt = str(kpi.get("format") or _guess_format(str(kpi.get("metric") or name)))
        value = _number(kpi["value"] if "value" in kpi else kpi.get("actual"))
        projected, target = _number(kpi.get("projected")), _number(kpi.get("target"))
        judged = projected if projected is not None else value  # an unfinished quarter: its projection
        lower_better = str(kpi.get("better", "")).lower() == "lower" or kpi.get("higher_is_better") is False
        attainment = None
        if judged is not None and target not in (None, 0) and not (lower_better and judged == 0):
            attainment = target / judged if lower_better else judged / target
        status = _STATUS_ALIASES.get(str(kpi.get("status") or "").strip().lower()) or _status_from(attainment)
        # Identifiers become words; display names ("MQLs per quarter") stay as written.
        label = kpi.get("label") or (_words(name) if re.fullmatch(r"\w+", name) else name)
        detail = f"{attainment:.0%} of target" if attainment is not None else ""
        # With a baseline the status judges the way from it to the target (kpis.kpi_status): say so.
        baseline, progress = _number(kpi.get("baseline")), _number(kpi.get("progress"))
        if baseline is not None and progress is not None:
            detail += f"{'; ' if detail else ''}{progress:.0%} of the way from {format_value(baseline, fmt, currency)}"
        if projected is not None:
            detail = f"projected {format_value(projected, fmt, currency)}" + (f", {detail}" if detail else "")
        tiles.append(
            Tile(
                label=str(label),
                value=format_value(value, fmt, currency),
                target=format_value(target, fmt, currency) if target is not None else "",
                status=status,
                status_text=_STATUS_TEXT[status],
                attainment=detail,
            )
        )
    return tiles[:limit] if limit else tiles


_ACRONYMS = {"roi": "ROI", "cpl": "CPL", "cac": "CAC", "clv": "CLV", "ctr": "CTR", "mqls": "MQLs", "sqls": "SQLs"}


def _words(identifier: str) -> str:
    """``cost_per_lead`` -> ``Cost per lead``, ``marketing_roi`` -> ``Marketing ROI``."""
    words = [_ACRONYMS.get(w.lower(), w.lower()) for w in identifier.split("_") if w]
    return " ".join(words)[:1].upper() + " ".join(words)[1:] if words else identifier


def _status_from(attainment: float | None) -> str:
    """Green at or above target, amber within 10 % below it, red further below."""
    if attainment is None:
        return "none"
    return "good" if attainment >= 1 else "warn" if attainment >= 0.9 else "bad"


def format_value(value: Any, fmt: str = "number", currency: str = "") -> str:
    """``1234567`` -> ``1.23M``; percent for fractions; ``—`` for missing values. Text passes through."""
    number = _number(value)
    if number is None:
        return "—" if value is None or isinstance(value, float) else str(value)
    if fmt == "percent":
        return f"{number:.1%}"
    sign, size = ("-" if number < 0 else ""), abs(number)
    for threshold, unit, suffix in ((1e9, 1e9, "B"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):  # 9,999 stays as is
        if size >= threshold:
            text = f"{size / unit:.3g}{suffix}"
            break
    else:
        # Counts and large amounts as integers; small fractional values (targets) to 3 significant digits.
        text = f"{size:,.0f}" if size >= 100 or float(size).is_integer() else f"{size:.3g}"
    if fmt == "currency":
        symbol = _CURRENCY.get(currency.upper())
        return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency}".rstrip()
    return sign + text


def _guess_format(name: str) -> str:
    low = name.lower()
    if any(w in low for w in _PERCENT_WORDS):
        return "percent"
    if any(w in low for w in _CURRENCY_WORDS):
        return "currency"
    return "number"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _tables(metrics: Mapping[str, Any], max_rows: int = 25) -> list[dict]:
    """Breakdown tables (``channels``, ``campaigns``) as formatted text; escaping is the template's job."""
    formats = metrics.get("formats") if isinstance(metrics.get("formats"), Mapping) else {}
    currency = str(metrics.get("currency") or "")
    tables = []
    for key, title in (("channels", "Channels"), ("by_channel", "Channels"), ("campaigns", "Campaigns")):
        raw = metrics.get(key) or []
        if isinstance(raw, Mapping):  # {channel: {numbers}}, as metrics.py writes `by_channel`
            raw = [
                {key.removeprefix("by_").rstrip("s"): name, **v} for name, v in raw.items() if isinstance(v, Mapping)
            ]
        rows = [r for r in raw if isinstance(r, Mapping)][:max_rows]
        if not rows:
            continue
        columns = list(dict.fromkeys(k for r in rows for k in r))
        # A column is numeric when any value is; its missing values then align right too.
        numeric = {c: any(_number(r.get(c)) is not None for r in rows) for c in columns}
        body = [
            [
                {
                    "text": format_value(row.get(c), formats.get(c) or _guess_format(c), currency)
                    if numeric[c]
                    else format_value(row.get(c)),
                    "numeric": numeric[c],
                }
                for c in columns
            ]
            for row in rows
        ]
        headers = [{"text": _words(c), "numeric": numeric[c]} for c in columns]
        model = metrics.get("attribution_model")
        if model and any(c in ("attributed_revenue", "roi") for c in columns):
            # attributed numbers depend on the model: name it next to them
            title = f"{title} (attributed revenue and ROI: {str(model).replace('_', '-')} attribution)"
        tables.append({"title": title, "headers": headers, "rows": body})
    return tables


def _page_env() -> Any:
    from jinja2 import Environment, FileSystemLoader

    # autoescape=True for every template (select_autoescape would skip *.j2): channel and campaign
    # names come from the data and must render as text.
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES / "pages")),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _conclusion_html(folder: Path, plan: list[_Job]) -> str:
    """The story of the quarter for its index page: the Markdown the first notebook's cells tagged
    `conclusion` displayed (the summary page's own words, not a second computation), as HTML.

    Raw HTML in that text is escaped and unsafe link targets dropped (mistune ``escape=True``), so
    names from the data stay text here as on the pages.
    """
    if not plan:
        return ""
    try:
        cells = json.loads((folder / f"{plan[0].name}.ipynb").read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return ""
    texts = []
    for cell in cells:
        if "conclusion" in cell.get("metadata", {}).get("tags", []):
            for out in cell.get("outputs", []):
                text = out.get("data", {}).get("text/markdown")
                if text:
                    texts.append("".join(text) if isinstance(text, list) else str(text))
    if not texts:
        return ""
    import mistune

    return mistune.create_markdown(escape=True)("\n\n".join(texts))


def _write_quarter_index(folder: Path, label: str, metrics: Mapping[str, Any], plan: list[_Job]) -> None:
    from markupsafe import Markup

    html = (
        _page_env()
        .get_template("quarter.html.j2")
        .render(
            kit=KIT_NAME,
            quarter=label,
            conclusion=Markup(_conclusion_html(folder, plan)),  # already escaped by mistune
            tiles=headline_tiles(metrics),
            tables=_tables(metrics),
            pages=[{"href": f"{j.name}.html", "ipynb": f"{j.name}.ipynb", "title": j.title} for j in plan],
            generated=_now(),
        )
    )
    _write_atomic(folder / "index.html", html)


def write_reports_index(out: str | Path) -> Path:
    """(Re)write ``OUT/index.html`` listing every rendered quarter, newest first; atomic and locked."""
    out = Path(out)
    with _file_lock(out / ".index.lock", 60.0, "the report index", None):
        quarters = []
        for folder in out.iterdir():
            if folder.name.startswith(".") or not (folder / "index.html").is_file():
                continue
            try:
                metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                metrics = {}
            quarters.append({
                "label": folder.name,
                "href": f"{folder.name}/index.html",
                "tiles": headline_tiles(metrics if isinstance(metrics, Mapping) else {}, limit=4),
            })  # fmt: skip
        quarters.sort(key=lambda q: _quarter_sort_key(q["label"]), reverse=True)
        html = _page_env().get_template("reports.html.j2").render(kit=KIT_NAME, quarters=quarters, generated=_now())
        target = out / "index.html"
        _write_atomic(target, html)
    return target


def _quarter_sort_key(label: str) -> tuple[int, int, int, str]:
    from .exceptions import PeriodError
    from .periods import parse_quarter

    try:
        q = parse_quarter(label)
    except PeriodError:
        return (0, 0, 0, label)  # unknown names sort after (below) the real quarters
    return (1, q.fiscal_year, q.q, label)


def _now() -> str:
    return dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


# --------------------------------------------------------------------------------------------------
# Files: atomic writes, locks, swap


def _write_atomic(path: Path, text: str) -> None:
    """Write to a unique sibling then ``os.replace``: readers see the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def _file_lock(path: Path, timeout: float, what: str, say: Callable[[str], None] | None) -> Iterator[None]:
    """Exclusive ``fcntl.flock`` on ``path``; wait up to ``timeout`` seconds, then ``ReportError``."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a") as handle:  # "a": never truncate a file another run has locked
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ReportError(
                        f"another run is rendering {what} (`{path}` is locked); gave up after "
                        f"{timeout:g} s. Wait for it to finish, or pass a longer `lock_timeout`"
                    ) from None
                if say is not None and not told:
                    say(f"Waiting for another run rendering {what} ...")
                    told = True
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _swap_into_place(new: Path, final: Path) -> None:
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


def _recover(out: Path, label: str) -> None:
    """Clean up after a run that was killed (we hold the quarter lock, so no other run is active).

    A crash between the two renames of the swap leaves only the backup: put it back.
    """
    final = out / label
    backups = sorted(out.glob(f".old-{label}-*"), key=lambda p: p.stat().st_mtime)
    if backups and not final.exists():
        os.rename(backups.pop(), final)
    for stale in [*backups, *out.glob(f".tmp-{label}-*")]:
        shutil.rmtree(stale, ignore_errors=True)


def _jsonable(obj: Any) -> Any:
    """Plain JSON types; NaN/inf/NA/NaT -> None."""
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if type(obj).__name__ in ("NAType", "NaTType"):  # pandas missing markers, without importing pandas
        return None
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Decimal):
        return _jsonable(float(obj))
    if isinstance(obj, (dt.date, dt.datetime, dt.time)) or hasattr(obj, "isoformat"):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "columns") and hasattr(obj, "to_dict"):  # DataFrame
        return _jsonable(obj.to_dict(orient="records"))
    if hasattr(obj, "to_dict"):  # Series
        return _jsonable(obj.to_dict())
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return _jsonable(obj.tolist())
    raise TypeError(f"`metrics.json`: cannot write a {type(obj).__name__} ({obj!r:.60}); use numbers and text")
