"""Planning a report run: every input checked, and what each notebook receives; nothing runs here.

Every problem with the inputs is found here, before any kernel starts, and raises
:class:`~kpi_helpers.exceptions.ReportInputError` (exit 2; :class:`~kpi_helpers.exceptions.ParameterError`
is one): data missing or unreadable; notebooks missing, not notebooks or writing the same page;
unknown or ill-typed parameters; a mapping that is neither a file nor a preset; a missing goals file;
a quarter label that cannot name a folder; ``out`` that is a file, lies under a file or cannot be
written; a ``cell_timeout`` that is not a positive number; a malformed ``SOURCE_DATE_EPOCH``.

Parameters are read from each notebook's cell tagged ``parameters`` (papermill's Python translator,
whatever kernel the notebook names) and each value given as text is converted to the type declared
there, so ``--param target=0.9`` reaches a ``target: float`` as ``0.9`` and ``--param spnd=5``
(a typo) is refused instead of being ignored, as papermill would.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .exceptions import ParameterError, ReportInputError
from .outdir import DISK_FULL, LABEL_RE, write_error

__all__ = ["STANDARD_PARAMS", "Job", "default_notebooks", "parse_params", "plan"]

#: Parameters the runner passes to every notebook that declares them in its `parameters` cell.
STANDARD_PARAMS = ("data", "quarter", "mapping", "goals", "engine")


def parse_params(pairs: Iterable[str]) -> dict[str, str]:
    """Turn CLI ``--param key=value`` strings into a dict.

    Values stay text; :func:`plan` converts each to the type the notebook's `parameters`
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
    raise ReportInputError(
        f"no notebooks found: expected `notebooks/NN-*.ipynb` under {', '.join(f'`{b}`' for b in bases)}; "
        "run from the project folder or pass `notebooks=`"
    )


@dataclass(frozen=True)
class Job:
    """One notebook of a run: its source, page name, title and the parameters it receives."""

    source: Path
    name: str  # file stem, unique in a run
    title: str
    parameters: dict[str, Any]
    cell_ids: frozenset[str] = frozenset()  # the ids the source notebook's cells carry on disk


def notebook_paths(notebooks: Sequence[str | Path] | None) -> list[Path]:
    """The notebooks to run, each checked to be a readable notebook; pages named by stems that differ."""
    sources = default_notebooks() if notebooks is None else [Path(n).expanduser().resolve() for n in notebooks]
    if not sources:
        raise ReportInputError("`notebooks` is empty; pass at least one notebook")
    missing = [str(p) for p in sources if not p.exists()]
    if missing:
        raise ReportInputError(f"notebook not found: {', '.join(f'`{m}`' for m in missing)}")
    folders = [str(p) for p in sources if not p.is_file()]
    if folders:
        raise ReportInputError(
            f"not a notebook file: {', '.join(f'`{f}`' for f in folders)}; pass `.ipynb` files, not folders or devices"
        )
    stems = [p.stem for p in sources]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise ReportInputError(f"two notebooks would write the same page: {', '.join(f'`{d}`' for d in dupes)}")
    for path in sources:
        load_notebook(path)  # not a notebook: refused here, before anything runs
    return sources


def load_notebook(path: Path) -> tuple[Any, frozenset[str]]:
    """The notebook at ``path`` and the cell ids it carries on disk; :class:`ReportInputError` if it is none.

    The message says what the file is not (UTF-8 text, JSON, a notebook) and never quotes its bytes:
    ``--notebooks /etc/passwd`` must not print the file.
    """
    import nbformat

    hint = "pass Jupyter notebooks (`.ipynb`), such as `notebooks/00-quarterly-summary.ipynb`"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ReportInputError(f"notebook `{path}` cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        doc = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ReportInputError(f"`{path}` is not a notebook (not UTF-8 text); {hint}") from None
    except ValueError as exc:
        where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ReportInputError(f"`{path}` is not a notebook (not JSON{where}); {hint}") from None
    if not (
        isinstance(doc, dict)
        and isinstance(doc.get("nbformat"), int)
        and isinstance(doc.get("cells", doc.get("worksheets")), list)
    ):
        raise ReportInputError(f"`{path}` is not a notebook (JSON without `nbformat` and `cells`); {hint}")
    try:
        nb = nbformat.reads(raw.decode("utf-8-sig"), as_version=4)
    except Exception as exc:  # nbformat's messages may quote the file; name the kind of problem only
        raise ReportInputError(
            f"`{path}` is not a notebook nbformat {nbformat.current_nbformat} can read ({type(exc).__name__}); {hint}"
        ) from None
    cells = doc.get("cells") or []
    ids = frozenset(c["id"] for c in cells if isinstance(c, dict) and isinstance(c.get("id"), str))
    return nb, ids


def plan(sources: list[Path], standard: dict[str, Any], params: dict[str, Any]) -> list[Job]:
    """Read each notebook's `parameters` cell and decide what it receives; report every problem at once."""
    clash = sorted(set(params) & set(STANDARD_PARAMS))
    if clash:
        raise ParameterError(
            f"{', '.join(f'`{c}`' for c in clash)} cannot be passed with `--param`; use the matching option"
        )
    declared: dict[Path, dict[str, dict]] = {}
    titles: dict[Path, str] = {}
    ids: dict[Path, frozenset[str]] = {}
    problems: list[str] = []
    for src in sources:
        nb, ids[src] = load_notebook(src)
        titles[src] = _title(nb.cells, src.stem)
        found = _declared_parameters(nb)
        if found is None:
            problems.append(f"`{src.name}` has no cell tagged `parameters`, so it cannot receive the quarter")
            continue
        declared[src] = found
    for key in params:
        if not any(key in d for d in declared.values()):
            known = "; ".join(f"`{s.name}`: {', '.join(d) or 'none'}" for s, d in declared.items())
            problems.append(f"unknown parameter `{key}`: no notebook declares it (known parameters: {known})")
    jobs: list[Job] = []
    for src, decl in declared.items():
        values = {k: v for k, v in standard.items() if k in decl and v is not None}
        for key, value in params.items():
            if key in decl:
                try:
                    values[key] = _convert(value, decl[key].get("inferred_type_name") or "None")
                except ValueError:
                    problems.append(
                        f"parameter `{key}` for `{src.name}` expects {decl[key]['inferred_type_name']}, "
                        f"got {clip(repr(value), 40)}"
                    )
        jobs.append(Job(src, src.stem, titles[src], values, ids[src]))
    if problems:
        raise ParameterError("; ".join(problems) + "; nothing was executed")
    return jobs


def _declared_parameters(nb: Any) -> dict[str, dict] | None:
    """``{name: {name, inferred_type_name, default, help}}``, or None without a parameters cell.

    Same machinery as ``papermill.inspect_notebook`` but with the Python translator forced: the
    kernelspec stored in the notebook is not trusted (it may be missing or name another kernel).
    """
    from papermill.translators import PythonTranslator

    cell = next((c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        return None
    return {p.name: p._asdict() for p in PythonTranslator.inspect(cell)}


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


def looks_resolved(label: str) -> bool:
    return label.lower() not in ("latest", "current")


def check_label(label: str) -> str:
    if not LABEL_RE.match(label):
        raise ReportInputError(
            f"quarter `{clip(label, 40)}` cannot name a report folder; expected e.g. `2026Q3` "
            "(letters, digits, `-` and `_`; at most 64)"
        )
    return label


def cell_timeout(value: Any) -> int | None:
    """Whole seconds for nbclient (it counts whole seconds), rounded up; None: no limit.

    >>> cell_timeout(0.5), cell_timeout(600), cell_timeout(None)
    (1, 600, None)
    """
    if value is None:
        return None
    number = None
    if not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
    if number is None or not math.isfinite(number) or number <= 0:
        raise ReportInputError(
            f"`cell_timeout` must be a positive number of seconds (None for no limit); got {clip(repr(value), 40)}"
        )
    return math.ceil(number)


def source_date_epoch() -> int | None:
    """``SOURCE_DATE_EPOCH`` (seconds since 1970, UTC) when set; refused when malformed (reproducible-builds.org)."""
    text = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) > 253402300799:  # past 9999-12-31
        raise ReportInputError(
            f"`SOURCE_DATE_EPOCH` must be whole seconds since 1970-01-01 UTC; got {clip(repr(text), 40)}"
        )
    return int(text)


def data_path(data: str | Path) -> Path:
    path = Path(data).expanduser().resolve()
    if not path.exists():
        raise ReportInputError(f"data `{data}` not found; pass the folder (or file) holding the exports")
    try:
        if path.is_dir():
            with os.scandir(path) as entries:
                next(entries, None)
        else:
            with open(path, "rb"):
                pass
    except OSError as exc:
        raise ReportInputError(
            f"data `{data}` cannot be read ({exc.strerror or type(exc).__name__}); check its permissions"
        ) from None
    return path


def mapping_refs(mapping: str | Path | Sequence[str | Path] | None) -> list[str] | None:
    """The mappings as the notebooks take them: a list of preset names and absolute file paths.

    A preset name wins over a file of that name, as in :func:`~kpi_helpers.mapping.load_mapping`.
    Anything else is refused here, before a kernel starts.
    """
    if mapping is None:
        return None
    from .mapping import PRESETS as presets

    refs = [mapping] if isinstance(mapping, str | Path) else list(mapping)
    out: list[str] = []
    bad: list[str] = []
    for ref in refs:
        if not isinstance(ref, str | Path):
            bad.append(f"`{clip(repr(ref), 40)}` (expected a preset name or a file path)")
            continue
        path = Path(ref).expanduser()
        if str(ref) in presets:
            out.append(str(ref))
        elif path.is_file():
            out.append(str(path.resolve()))
        else:
            bad.append(f"`{clip(str(ref), 80)}`")
    if bad:
        raise ReportInputError(
            f"mapping {', '.join(bad)}: neither a file nor a preset ({', '.join(presets)}); "
            "pass a mapping YAML that exists or a preset name"
        )
    return out or None


def goals_path(goals: str | Path | None) -> str | None:
    if goals is None:
        return None
    path = Path(goals).expanduser()
    if not path.is_file():
        raise ReportInputError(
            f"goals file `{clip(str(goals), 80)}` not found; pass a `goals.yml`, or leave it out to use "
            "`goals.yml` in the data folder"
        )
    return str(path.resolve())


def usable_out(out: str | Path) -> Path:
    """``out`` as an absolute folder the kit can write into, or :class:`ReportInputError` (nothing created).

    Permission bits do not stop root, so writability is tried: a probe file is created and removed
    in ``out``, or in its nearest existing parent when ``out`` is still to be made.
    """
    out_dir = Path(out).expanduser().resolve()
    existing = next(p for p in (out_dir, *out_dir.parents) if p.exists())
    if not existing.is_dir():
        where = "is a file" if existing == out_dir else f"lies under the file `{existing}`"
        raise ReportInputError(f"`--out` `{out}` {where}; pass a folder (it is created when missing)")
    probe = existing / f".kpi-probe-{uuid.uuid4().hex[:12]}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        os.unlink(probe)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise write_error(exc, existing, "nothing was written") from None
        what = "cannot be written" if existing == out_dir else f"cannot be created in `{existing}`"
        raise ReportInputError(
            f"`--out` `{out}` {what} ({exc.strerror or type(exc).__name__}); pass a folder you can write to"
        ) from None
    return out_dir


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis: a message never prints a whole value."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
