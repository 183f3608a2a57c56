"""The kit's on-disk cache: validation stamps, typed tables and memoised results.

Everything lives in one private folder, ``$KPI_CACHE_DIR`` (default ``~/.cache/kpi-kit``);
``KPI_NO_CACHE=1`` turns the cache off. The folder holds only names the kit makes::

    validated/<data key>            validation stamp (JSON): these inputs passed validation
    validated/<data key>.duckdb     their typed tables (CSV sources), read instead of parsing again
    results/<data key>/<hash>.result   one memoised result (Arrow IPC or JSON, checksummed)
    results/<data key>/<hash>.lock     held while a process computes that result

A *data key* hashes the input files' bytes, the mapping and contract, the kit's own code
(:func:`code_hash`) and the engines' versions (:func:`engine_versions`); a result's hash adds the
caller's key (the SQL, the quarter's dates, the model). A changed kit, engine or input therefore
never meets an entry written by another.

Nothing read from the folder can run code: results are Arrow IPC (DataFrame, Series) or JSON
(scalars and containers), never pickle. The folder must belong to the user and not be writable
by group or others (:class:`~kpi_helpers.exceptions.CacheError` otherwise); entries are created
0600, folders 0700. A damaged entry (empty, truncated, altered, not the kit's format) is discarded
with a :class:`CacheWarning` and computed again.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import functools
import hashlib
import json
import math
import os
import re
import stat
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from . import fileio, jsonio
from .exceptions import CacheError
from .sqltext import ident, literal

#: bump when what a memoised result holds changes shape (old cache entries are then ignored)
RESULTS_FORMAT = 2
#: bump when the validation stamp's content changes shape
STAMP_FORMAT = 3
#: cache entries (stamps, typed tables, results) of inputs not seen for this many days are removed
CACHE_DAYS = 30

T = TypeVar("T")

_MAGIC = b"kpi-kit-cache"
_SERIES_COLUMN = "__kpi_series__"
_META = b"kpi-kit"
#: every file the kit writes in the folder: a 40-hex key and a kind; while written, a hidden temporary
#: name (:func:`kpi_helpers.fileio.temp_name`), or the visible one of older kits
_KIT_FILE = re.compile(
    r"[0-9a-f]{40}(\.(duckdb|duckdb\.wal|result|lock|pkl))?(\.\d+([.-]\d+)?(\.json)?\.tmp(\.wal)?)?"
    r"|\.[0-9a-f]{40}(\.(duckdb|result))?\.\d+-\d+-[0-9a-f]{8}\.tmp(\.wal)?"
)
_KIT_DIR = re.compile(r"[0-9a-f]{40}")
_SUBDIRS = ("validated", "results")


class CacheWarning(UserWarning):
    """A cache entry was damaged and has been discarded (its value is computed again)."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: what :func:`get` returns when nothing (usable) is cached
MISSING: Any = _Missing()


class _Damaged(Exception):
    """An entry that is not what the kit wrote (the message says how)."""


class _Unsupported(Exception):
    """A value the cache does not store (it is computed every time)."""


# ----------------------------------------------------------------------------------------- keys


def enabled() -> bool:
    """False when ``KPI_NO_CACHE`` is set (``1``, ``yes``, ...; not ``0``, ``false``, ``no`` or empty)."""
    return os.environ.get("KPI_NO_CACHE", "").strip().lower() in ("", "0", "false", "no", "off")


@functools.cache
def code_hash() -> str:
    """BLAKE2b (160 bits) of the kit's installed code and data files, computed once per process.

    Every file under the package folder counts (modules, presets, templates: whatever can change
    a result or a verdict), by its path and bytes; compiled files (``__pycache__``) and hidden
    files do not. Any change of the kit's code changes the hash, and with it every cache key.

    Examples
    --------
    >>> len(code_hash()), code_hash() == code_hash()
    (40, True)
    """
    return tree_hash(Path(__file__).resolve().parent)


def tree_hash(folder: Path) -> str:
    """BLAKE2b (160 bits) of every file under ``folder`` (relative path and bytes), in sorted order;
    ``__pycache__`` folders and hidden files are left out."""
    h = hashlib.blake2b(digest_size=20)
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part == "__pycache__" or part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        data = path.read_bytes()
        h.update(f"{rel.as_posix()}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


@functools.cache
def engine_versions() -> tuple[str, ...]:
    """Versions of the libraries that can change a result (a new DuckDB may sum in another order)."""
    import duckdb
    import ibis
    import numpy
    import pandas
    import pyarrow

    return ibis.__version__, duckdb.__version__, pandas.__version__, pyarrow.__version__, numpy.__version__


def _key_hash(*parts: Any) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=20).hexdigest()


# --------------------------------------------------------------------------------------- folder


def cache_dir(*, create: bool = True) -> Path:
    """The cache folder, checked: ``$KPI_CACHE_DIR`` or ``~/.cache/kpi-kit``.

    Created private (0700) when missing (unless ``create`` is false). Raises
    :class:`~kpi_helpers.exceptions.CacheError` when it is not a folder, belongs to another user,
    or is writable by group or others: whoever can write there could change the kit's results.
    """
    try:
        folder = Path(os.environ.get("KPI_CACHE_DIR") or Path.home() / ".cache" / "kpi-kit").expanduser()
    except (KeyError, RuntimeError):  # no home folder to expand
        raise CacheError(
            "no cache folder: the home folder is unknown; set `KPI_CACHE_DIR` to a folder of your own, "
            "or turn the cache off with `KPI_NO_CACHE=1`"
        ) from None
    if create and not folder.exists():
        try:
            folder.mkdir(parents=True, mode=0o700, exist_ok=True)
            os.chmod(folder, 0o700)
        except OSError as exc:
            raise CacheError(
                f"cannot create the cache folder `{folder}` ({exc.strerror or exc}); "
                "set `KPI_CACHE_DIR` to a folder of your own, or turn the cache off with `KPI_NO_CACHE=1`"
            ) from None
    _check_folder(folder)
    return folder


def _check_folder(folder: Path) -> None:
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        return  # nothing to trust or distrust yet
    except OSError as exc:
        raise CacheError(
            f"cannot use the cache folder `{folder}` ({exc.strerror or exc}); "
            "set `KPI_CACHE_DIR` to a folder of your own, or turn the cache off with `KPI_NO_CACHE=1`"
        ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise CacheError(
            f"the cache folder `{folder}` is not a folder; "
            "set `KPI_CACHE_DIR` to a folder of your own, or turn the cache off with `KPI_NO_CACHE=1`"
        )
    me = os.geteuid() if hasattr(os, "geteuid") else None
    if me is not None and st.st_uid != me:
        raise CacheError(
            f"the cache folder `{folder}` belongs to another user (uid {st.st_uid}; you are {me}): its "
            "entries could be changed by them; set `KPI_CACHE_DIR` to a folder of your own, "
            "or turn the cache off with `KPI_NO_CACHE=1`"
        )
    writable = [who for who, bit in (("group", stat.S_IWGRP), ("others", stat.S_IWOTH)) if st.st_mode & bit]
    if me is not None and writable:
        raise CacheError(
            f"the cache folder `{folder}` is writable by {' and '.join(writable)} "
            f"(mode {stat.S_IMODE(st.st_mode):o}): anyone who can write there could change your results; "
            f"run `chmod 700 {folder}`, or set `KPI_CACHE_DIR` to a private folder, "
            "or turn the cache off with `KPI_NO_CACHE=1`"
        )


def _private_dir(path: Path) -> Path:
    """``path``, a folder inside the cache folder, and every folder between them: created 0700,
    and made 0700 when an older kit left them readable by others."""
    root = cache_dir()
    if not path.is_relative_to(root):  # the cache folder changed while this process ran
        path.mkdir(parents=True, mode=0o700, exist_ok=True)
        return path
    folder = root
    for part in path.relative_to(root).parts:
        folder = folder / part
        with suppress(FileExistsError):
            folder.mkdir(mode=0o700)
        if stat.S_IMODE(folder.stat().st_mode) & 0o077:
            os.chmod(folder, 0o700)
    return path


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary name, then rename), mode 0600."""
    _private_dir(path.parent)
    fileio.write_atomic(path, data, mode=0o600)


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    """Exclusive ``flock`` on ``path``, private (0600); without a lock when the folder cannot be
    written (the lock only saves computing a result twice)."""
    try:
        _private_dir(path.parent)
    except OSError:
        yield
        return
    with fileio.locked(path, mode=0o600, required=False):
        yield


def _discard(path: Path, why: str, *also: Path) -> None:
    """Remove a damaged entry (and the files that go with it), with a one-line warning."""
    for p in (path, *also):
        with suppress(OSError):
            p.unlink()
    # One line wherever it shows (a terminal, a kernel's stderr): no source line under it, as
    # ``warnings.warn`` would print; filters by category or by this module still apply.
    warnings.warn_explicit(
        f"cache entry `{path}` was damaged ({why}); it was discarded and is computed again",
        CacheWarning,
        filename=__file__,
        lineno=0,
        module=__name__,
    )


_TOUCHED: set[Path] = set()


def _touch(path: Path, *, once: bool = False) -> None:
    """Mark ``path`` as used now (pruning goes by modification time); ``once`` per process."""
    if once and path in _TOUCHED:
        return
    with suppress(OSError):
        os.utime(path)
        if once:
            _TOUCHED.add(path)


# ---------------------------------------------------------------------------------------- codec


def encode(value: Any, *, name: str = "") -> bytes:
    """``value`` as the bytes of a cache entry: Arrow IPC for a DataFrame or Series, else JSON.

    The bytes start with a header line carrying a checksum over ``name`` and the payload, so a
    truncated, altered or renamed entry is detected. Raises ``TypeError`` for a value the cache
    does not store (see :func:`put`), or one that would not come back exactly.

    Examples
    --------
    >>> decode(encode({"rate": 0.25, "period": ("2026Q1", 3)}))
    {'rate': 0.25, 'period': ('2026Q1', 3)}
    """
    try:
        data = _encode(value, name)
        if _same(value, decode(data, name=name)):
            return data
    except Exception:  # unsupported types; pandas or pyarrow refusing a frame (mixed object columns)
        pass
    raise TypeError(f"a value of type `{type(value).__name__}` is not stored in the cache")


def decode(data: bytes, *, name: str = "") -> Any:
    """The value of a cache entry written by :func:`encode`; never runs code.

    Raises ``ValueError`` naming what is wrong when ``data`` is not an intact entry of this format.
    """
    try:
        kind, payload = _unwrap(data, name)
        if kind == b"arrow":
            return _frame_from_arrow(payload)
        return _from_json(json.loads(payload, parse_constant=_reject_constant))
    except _Damaged as exc:
        raise ValueError(str(exc)) from None
    except Exception as exc:  # whatever garbage makes the decoders raise
        raise ValueError(f"unreadable content: {_first_line(exc)}") from None


def _encode(value: Any, name: str) -> bytes:
    import pandas as pd

    if type(value) in (pd.DataFrame, pd.Series):
        return _wrap(b"arrow", _frame_to_arrow(value), name)
    return _wrap(b"json", jsonio.dumps(_to_json(value), compact=True).encode(), name)


def _seal(name: str, payload: bytes) -> bytes:
    return hashlib.blake2b(name.encode() + b"\0" + payload, digest_size=16).hexdigest().encode()


def _wrap(kind: bytes, payload: bytes, name: str) -> bytes:
    return b" ".join((_MAGIC, str(RESULTS_FORMAT).encode(), kind, _seal(name, payload))) + b"\n" + payload


def _unwrap(data: bytes, name: str) -> tuple[bytes, bytes]:
    if not data:
        raise _Damaged("empty file")
    head, newline, payload = data.partition(b"\n")
    parts = head.split(b" ")
    if not newline or len(parts) != 4 or parts[0] != _MAGIC or parts[2] not in (b"arrow", b"json"):
        raise _Damaged("not a kit cache entry")
    if parts[1] != str(RESULTS_FORMAT).encode():
        raise _Damaged(f"format {parts[1][:8].decode(errors='replace')}, expected {RESULTS_FORMAT}")
    if parts[3] != _seal(name, payload):
        raise _Damaged("checksum mismatch: truncated or altered")
    return parts[2], payload


def _reject_constant(text: str) -> Any:
    raise _Damaged(f"bare {text} in JSON")


def _frame_to_arrow(value: Any) -> bytes:
    import pandas as pd
    import pyarrow as pa

    if isinstance(value, pd.Series):
        frame = value.to_frame(name=_SERIES_COLUMN)
        meta = {"kind": "series", "name": _to_json(value.name), "attrs": _to_json(dict(value.attrs))}
    else:
        frame = value
        meta = {"kind": "frame", "attrs": _to_json(dict(value.attrs))}
    # Arrow keeps an index's values, not a date index's frequency.
    meta["freq"] = value.index.freqstr if isinstance(value.index, pd.DatetimeIndex | pd.TimedeltaIndex) else None
    table = pa.Table.from_pandas(frame)  # a RangeIndex is kept as metadata, other indexes as columns
    meta_bytes = jsonio.dumps(meta, compact=True).encode()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _META: meta_bytes})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _frame_from_arrow(payload: bytes) -> Any:
    import pandas as pd
    import pyarrow as pa

    table = pa.ipc.open_file(pa.py_buffer(payload)).read_all()
    meta = json.loads((table.schema.metadata or {}).get(_META, b"null"), parse_constant=_reject_constant)
    if not isinstance(meta, dict) or meta.get("kind") not in ("frame", "series"):
        raise _Damaged("Arrow entry without the kit's metadata")
    frame = table.to_pandas()
    freq = meta.get("freq")
    if freq is not None:
        kind = {"DatetimeIndex": pd.DatetimeIndex, "TimedeltaIndex": pd.TimedeltaIndex}.get(type(frame.index).__name__)
        if kind is None:
            raise _Damaged("a frequency without a date index")
        frame.index = kind(frame.index, freq=str(freq))
    if meta["kind"] == "series":
        if list(frame.columns) != [_SERIES_COLUMN]:
            raise _Damaged("Arrow entry of a Series with other columns")
        out = frame[_SERIES_COLUMN]
        out.name = _from_json(meta["name"])
    else:
        out = frame
    attrs = _from_json(meta["attrs"])
    if not isinstance(attrs, dict):
        raise _Damaged("attrs that are not a mapping")
    out.attrs = attrs
    return out


_NUMPY_KINDS = frozenset("biufcmM")  # bool, integers, floats, complex, timedelta64, datetime64


def _to_json(v: Any) -> Any:
    """``v`` as plain JSON; tagged objects (``{"$": kind, ...}``) for what JSON lacks."""
    t = type(v)
    if v is None or t in (bool, int, str):
        return v
    if t is float:
        return v if math.isfinite(v) else {"$": "float", "v": repr(v)}
    if t is list:
        return [_to_json(x) for x in v]
    if t is tuple:
        return {"$": "tuple", "items": [_to_json(x) for x in v]}
    if t is dict:
        return {"$": "dict", "items": [[_to_json(k), _to_json(x)] for k, x in v.items()]}
    if t is dt.date:
        return {"$": "date", "iso": v.isoformat()}
    if t is dt.datetime and (v.tzinfo is None or type(v.tzinfo) is dt.timezone):
        return {"$": "datetime", "iso": v.isoformat()}
    if t is dt.timedelta:
        return {"$": "timedelta", "d": v.days, "s": v.seconds, "us": v.microseconds}
    if t is decimal.Decimal:
        return {"$": "decimal", "v": str(v)}
    return _to_json_library(v)


def _to_json_library(v: Any) -> Any:
    import numpy as np
    import pandas as pd

    from .kpis import Undefined

    t = type(v)
    if t is Undefined:
        return {"$": "undefined", "reason": v.reason}
    if isinstance(v, np.generic) and v.dtype.kind in _NUMPY_KINDS:
        return {"$": "numpy", "dtype": v.dtype.str, "hex": v.tobytes().hex()}
    if t is pd.Timestamp:
        return {"$": "timestamp", "iso": v.isoformat(), "unit": v.unit, "tz": None if v.tz is None else str(v.tz)}
    if t is pd.Timedelta:
        return {"$": "pd_timedelta", "iso": v.isoformat(), "unit": v.unit}
    if v is pd.NaT:
        return {"$": "nat"}
    if v is pd.NA:
        return {"$": "na"}
    if t in (pd.DataFrame, pd.Series):
        return {"$": "arrow", "b64": base64.b64encode(_frame_to_arrow(v)).decode()}
    raise _Unsupported(t.__name__)


def _from_json(v: Any) -> Any:
    if v is None or type(v) in (bool, int, str, float):
        return v
    if type(v) is list:
        return [_from_json(x) for x in v]
    if type(v) is not dict or not isinstance(v.get("$"), str):
        raise _Damaged("JSON object without a kit tag")
    tag = v["$"]
    if tag == "float" and v["v"] in ("nan", "inf", "-inf"):
        return float(v["v"])
    if tag == "tuple":
        return tuple(_from_json(x) for x in v["items"])
    if tag == "dict":
        return {_from_json(k): _from_json(x) for k, x in v["items"]}
    if tag == "date":
        return dt.date.fromisoformat(v["iso"])
    if tag == "datetime":
        return dt.datetime.fromisoformat(v["iso"])
    if tag == "timedelta":
        return dt.timedelta(days=v["d"], seconds=v["s"], microseconds=v["us"])
    if tag == "decimal":
        return decimal.Decimal(v["v"])
    return _from_json_library(tag, v)


def _from_json_library(tag: str, v: dict[str, Any]) -> Any:
    import numpy as np
    import pandas as pd

    from .kpis import Undefined

    if tag == "undefined":
        return Undefined(str(v["reason"]))
    if tag == "numpy":
        dtype = np.dtype(str(v["dtype"]))
        if dtype.kind not in _NUMPY_KINDS:
            raise _Damaged(f"numpy type {dtype.str}")
        return np.frombuffer(bytes.fromhex(v["hex"]), dtype=dtype)[0]
    if tag == "timestamp":
        ts = pd.Timestamp(v["iso"]).as_unit(v["unit"])
        return ts if v["tz"] is None else ts.tz_convert(v["tz"])
    if tag == "pd_timedelta":
        return pd.Timedelta(v["iso"]).as_unit(v["unit"])
    if tag == "nat":
        return pd.NaT
    if tag == "na":
        return pd.NA
    if tag == "arrow":
        return _frame_from_arrow(base64.b64decode(v["b64"], validate=True))
    raise _Damaged(f"unknown tag {tag[:20]!r}")


def _same(a: Any, b: Any) -> bool:
    """``a`` and ``b`` are the same value of the same type (exactly: units, time zones, reasons, attrs)."""
    import numpy as np
    import pandas as pd

    if type(a) is not type(b):
        return False
    if a is None or a is pd.NaT or a is pd.NA:
        return a is b
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if isinstance(a, float):  # also Undefined
        same = (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
        return same and getattr(a, "reason", None) == getattr(b, "reason", None)
    if isinstance(a, pd.DataFrame | pd.Series):
        return _same_frame(a, b)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            _same(k1, k2) and _same(v1, v2) for (k1, v1), (k2, v2) in zip(a.items(), b.items(), strict=True)
        )
    if isinstance(a, decimal.Decimal):
        return a.as_tuple() == b.as_tuple()
    if isinstance(a, dt.datetime):  # also pandas Timestamps
        return (
            a == b
            and type(a.tzinfo) is type(b.tzinfo)
            and str(a.tzinfo) == str(b.tzinfo)
            and getattr(a, "unit", None) == getattr(b, "unit", None)
        )
    if isinstance(a, pd.Timedelta):
        return a == b and a.unit == b.unit
    return bool(a == b)


def _same_frame(a: Any, b: Any) -> bool:
    import pandas as pd

    check: Callable[..., None] = (
        pd.testing.assert_series_equal if isinstance(a, pd.Series) else pd.testing.assert_frame_equal
    )
    try:
        strict = {} if isinstance(a, pd.Series) else {"check_column_type": True}
        check(a, b, check_exact=True, check_index_type=True, check_freq=True, check_flags=True, **strict)
    except AssertionError:
        return False
    if isinstance(a, pd.Series) and not _same(a.name, b.name):
        return False
    columns = [a] if isinstance(a, pd.Series) else [a.iloc[:, i] for i in range(a.shape[1])]
    others = [b] if isinstance(b, pd.Series) else [b.iloc[:, i] for i in range(b.shape[1])]
    # Objects (dates, decimals) compare equal across types; their types must match too.
    for x, y in [*zip(columns, others, strict=True), (a.index, b.index)]:
        if x.dtype == object and [type(v) for v in x] != [type(v) for v in y]:
            return False
    return _same(dict(a.attrs), dict(b.attrs))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


# -------------------------------------------------------------------------------------- results


def _namespace_dir(root: Path, namespace: str) -> Path:
    name = namespace if _KIT_DIR.fullmatch(namespace) else _key_hash("namespace", namespace)
    return root / "results" / name


def entry_path(namespace: str, key: Any) -> Path:
    """Where the result of ``key`` for the data ``namespace`` (a data key) is kept."""
    h = _key_hash(RESULTS_FORMAT, code_hash(), engine_versions(), key)
    return _namespace_dir(cache_dir(), namespace) / f"{h}.result"


def get(namespace: str | None, key: Any) -> Any:
    """The cached result of ``key`` for the data ``namespace``, or :data:`MISSING`.

    A damaged entry is discarded with a :class:`CacheWarning` (and :data:`MISSING` returned).
    Reading marks the namespace as used (once per process), so pruning keeps it.
    """
    if namespace is None or key is None or not enabled():
        return MISSING
    return _load(entry_path(namespace, key))


def _load(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return MISSING
    except OSError as exc:
        _discard(path, f"unreadable: {exc.strerror or exc}")
        return MISSING
    try:
        value = decode(data, name=path.name)
    except ValueError as exc:
        _discard(path, str(exc))
        return MISSING
    _touch(path.parent, once=True)
    return value


def put(namespace: str | None, key: Any, value: Any) -> bool:
    """Keep ``value`` as the result of ``key`` for the data ``namespace``; True when stored.

    Stored: pandas DataFrame and Series (index, names, dtypes and ``attrs`` kept), numpy scalars,
    ``None``, ``bool``, ``int``, ``float`` (and :class:`~kpi_helpers.kpis.Undefined` with its
    reason), ``str``, ``datetime.date``/``datetime``/``timedelta``, ``pandas.Timestamp``/
    ``Timedelta``, ``decimal.Decimal``, and lists, tuples and dicts of these. Any other value, or
    one that would not read back exactly, is not stored (it is computed every time); nor is a value
    when the folder cannot be written (a full or read-only disk only costs the next run the
    computation).
    """
    if namespace is None or key is None or not enabled():
        return False
    path = entry_path(namespace, key)
    try:
        data = encode(value, name=path.name)
    except TypeError:
        return False
    try:
        _write_private(path, data)
    except OSError:
        return False
    return True


@contextmanager
def locked(namespace: str, key: Any) -> Iterator[None]:
    """Hold the cross-process lock of ``key`` for the data ``namespace`` (``flock``; freed if the process dies)."""
    with _flock(entry_path(namespace, key).with_suffix(".lock")):
        yield


_LOCAL = threading.local()


def memoize(namespace: str | None, key: Any, compute: Callable[[], T]) -> T:
    """``compute()``, computed once per ``key`` for the data ``namespace``, across processes.

    A process computing a key holds its lock, so parallel report kernels wait for each other's
    result instead of computing it again. A computation nested in another never waits for a second
    lock (it computes and stores), so two processes can never wait on each other. ``namespace``
    None, ``key`` None or ``KPI_NO_CACHE=1``: computed every time.
    """
    if namespace is None or key is None or not enabled():
        return compute()
    found = get(namespace, key)
    if found is not MISSING:
        return found
    if getattr(_LOCAL, "computing", False):
        value = compute()
        put(namespace, key, value)
        return value
    with locked(namespace, key):
        found = get(namespace, key)  # another process may have finished it while we waited
        if found is not MISSING:
            return found
        _LOCAL.computing = True
        try:
            value = compute()
        finally:
            _LOCAL.computing = False
        put(namespace, key, value)
    return value


# --------------------------------------------------------------------------------------- stamps


@dataclass(frozen=True)
class _StampContent:
    plain: dict[str, set[str]]
    typed_size: int | None
    typed_digest: str | None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stamp:
    """The validation verdict of one set of inputs: ``validated/<key>``, and ``<key>.duckdb``
    with their typed tables (CSV sources).

    ``key`` (the *data key*) also names the inputs' results folder (:func:`memoize`'s namespace).
    """

    key: str
    folder: Path

    @property
    def path(self) -> Path:
        return self.folder / self.key

    @property
    def typed_path(self) -> Path:
        return self.folder / f"{self.key}.duckdb"

    def exists(self) -> bool:
        """True when an intact stamp says these inputs passed validation."""
        return self._load() is not None

    def read(self) -> dict[str, set[str]] | None:
        """The text columns validation found needing no typing, or None without an intact stamp.

        A damaged stamp (or one whose typed tables are gone or truncated) is discarded with its
        typed tables, with a :class:`CacheWarning`.
        """
        found = self._load()
        return None if found is None else found.plain

    def warnings(self) -> list[str]:
        """What validation warned about these inputs (exact duplicates, stages out of order)."""
        found = self._load()
        return [] if found is None else list(found.warnings)

    def _load(self) -> _StampContent | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.discard(f"unreadable: {exc.strerror or exc}")
            return None
        try:
            found = _parse_stamp(raw, self.key)
            if found.typed_size is not None:
                size = self.typed_path.stat().st_size if self.typed_path.exists() else None
                if size is None:
                    raise _Damaged("its typed tables are missing")
                if size != found.typed_size:
                    raise _Damaged(f"typed tables of {size} bytes, expected {found.typed_size}")
        except _Damaged as exc:
            self.discard(str(exc))
            return None
        _touch(self.path)
        if found.typed_size is not None:
            _touch(self.typed_path)
        _touch(_namespace_dir(self.folder.parent, self.key), once=True)
        return found

    def discard(self, why: str) -> None:
        """Remove the stamp and its typed tables, with a one-line :class:`CacheWarning`."""
        _discard(self.path, why, self.typed_path)

    def attach_typed(self, con: Any, alias: str, tables: Collection[str]) -> bool:
        """ATTACH the typed tables read-only to the DuckDB backend ``con`` as ``alias``.

        False (and nothing attached) without an intact stamp with typed tables; a file that does
        not attach, or lacks one of ``tables``, is damaged: discarded with its stamp.
        """
        found = self._load()
        if found is None or found.typed_size is None:
            return False
        try:
            digest = _file_digest(self.typed_path)
        except OSError as exc:
            digest = f"unreadable: {exc.strerror or exc}"
        if digest != found.typed_digest:
            # DuckDB checks its blocks only when it reads them: a query halfway through a report
            # would fail, in every later run too. Read the file once here instead.
            self.discard("checksum mismatch of the typed tables: altered")
            return False
        try:
            con.raw_sql(f"ATTACH {literal(str(self.typed_path))} AS {ident(alias)} (READ_ONLY)")
        except Exception as exc:  # DuckDB's own error for a file that is not a database
            self.discard(f"the typed tables do not open: {_first_line(exc)}")
            return False
        try:
            rows = con.raw_sql(
                f"SELECT table_name FROM duckdb_tables() WHERE database_name = {literal(alias)}"
            ).fetchall()
            missing = sorted(set(tables) - {str(r[0]) for r in rows})
        except Exception as exc:
            missing = [_first_line(exc)]
        if missing:
            with suppress(Exception):
                con.raw_sql(f"DETACH {ident(alias)}")
            self.discard(f"the typed tables lack {', '.join(missing)}")
            return False
        return True

    def write(
        self,
        plain: Mapping[str, Collection[str]],
        con: Any = None,
        tables: Collection[str] = (),
        *,
        warnings: Collection[str] = (),
    ) -> None:
        """Mark these inputs validated (with the text columns that need no typing and validation's
        warnings); with ``con``, also save ``tables`` of that DuckDB backend as their typed tables.

        Under the stamp's lock, and skipped when another process wrote an intact stamp meanwhile.
        Files are written under temporary names and renamed, so readers never see half a file; a
        read-only or full disk only costs the next open its parse and validation.
        """
        if not enabled():
            return
        with locked(self.key, ("validation stamp",)):
            if self._load() is not None:
                return
            try:
                _private_dir(self.folder)
                size, digest = self._write_typed(con, tables) if con is not None else (None, None)
                body = {
                    "plain": {t: sorted(cols) for t, cols in sorted(plain.items())},
                    "typed_size": size,
                    "typed_digest": digest,
                    "warnings": list(warnings),
                }
                _write_private(self.path, _stamp_bytes(self.key, body))
            except Exception:  # see the docstring: a cache that cannot be written is no error
                pass

    def _write_typed(self, con: Any, tables: Collection[str]) -> tuple[int, str]:
        tmp = fileio.temp_name(self.typed_path)
        try:
            con.raw_sql(f"ATTACH {literal(str(tmp))} AS kpi_out")
            try:
                for name in tables:
                    con.raw_sql(f"CREATE TABLE kpi_out.main.{ident(name)} AS SELECT * FROM {ident(name)}")
            finally:
                con.raw_sql("DETACH kpi_out")
            os.chmod(tmp, 0o600)
            size, digest = tmp.stat().st_size, _file_digest(tmp)
            os.replace(tmp, self.typed_path)
            return size, digest
        finally:
            for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
                with suppress(OSError):
                    leftover.unlink()


def _stamp_bytes(key: str, body: dict[str, Any]) -> bytes:
    doc = {"format": STAMP_FORMAT, "key": key, **body}
    doc["digest"] = _stamp_digest(doc)
    return jsonio.dumps(doc, sort_keys=True, indent=1).encode()


def _stamp_digest(doc: Mapping[str, Any]) -> str:
    return hashlib.blake2b(jsonio.dumps(doc, sort_keys=True, compact=True).encode(), digest_size=16).hexdigest()


_STAMP_KEYS = {"format", "key", "plain", "typed_size", "typed_digest", "warnings", "digest"}


def _parse_stamp(raw: bytes, key: str) -> _StampContent:
    try:
        doc = json.loads(raw, parse_constant=_reject_constant) if raw else None
    except ValueError:
        raise _Damaged("not JSON") from None
    if not isinstance(doc, dict) or set(doc) != {
        "format",
        "key",
        "plain",
        "typed_size",
        "typed_digest",
        "warnings",
        "digest",
    }:
        raise _Damaged("not a kit validation stamp" if raw else "empty file")
    digest = doc.pop("digest")
    if doc["format"] != STAMP_FORMAT or doc["key"] != key:
        raise _Damaged("another format or key")
    if digest != _stamp_digest(doc):
        raise _Damaged("checksum mismatch: truncated or altered")
    plain, size, typed, warned = doc["plain"], doc["typed_size"], doc["typed_digest"], doc["warnings"]
    ok_plain = isinstance(plain, dict) and all(
        isinstance(cols, list) and all(isinstance(c, str) for c in cols) for cols in plain.values()
    )
    ok_typed = (size is None and typed is None) or (type(size) is int and size > 0 and isinstance(typed, str))
    ok_warned = isinstance(warned, list) and all(isinstance(w, str) for w in warned)
    if not ok_plain or not ok_typed or not ok_warned:
        raise _Damaged("malformed content")
    return _StampContent({str(t): set(cols) for t, cols in plain.items()}, size, typed, tuple(warned))


def _file_digest(path: Path) -> str:
    """CRC-32 of the file: it detects damage (not tampering: the folder is the user's alone) at
    about 1 GB/s, several times the speed of a cryptographic hash."""
    crc = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            crc = zlib.crc32(chunk, crc)
    return f"crc32:{crc:08x}"


def validation_stamp(files: Mapping[str, Path], key: Any) -> Stamp | None:
    """The stamp of these input ``files`` (table -> file or folder of Parquet files) under ``key``.

    Its name hashes every input file's bytes (not its time stamp), ``key`` (whatever else shapes
    the verdict and the typed tables: the mapping, the contract), the kit's code and the engines'
    versions. None when the cache is off, or when a file cannot be read (the reader then reports it).
    """
    if not enabled():
        return None
    root = cache_dir()
    # SHA-256: with the CPU's SHA instructions (most x86-64 and ARM64) about twice BLAKE2b's speed
    # here, and every open of a report's notebooks reads every input byte through it.
    h = hashlib.sha256(repr((STAMP_FORMAT, code_hash(), engine_versions(), key)).encode())
    try:
        for name in sorted(files):
            path = files[name]
            for p in sorted(path.glob("*.parquet")) if path.is_dir() else [path]:
                h.update(f"{name}:{p.name}:".encode())
                with open(p, "rb") as fh:
                    for chunk in iter(lambda fh=fh: fh.read(1 << 22), b""):  # type: ignore[misc]  # mypy#15459: a lambda binding a loop variable by default
                        h.update(chunk)
    except OSError:
        return None
    return Stamp(h.hexdigest()[:40], root / "validated")


# --------------------------------------------------------------------------------- housekeeping


@dataclass(frozen=True)
class CacheUsage:
    """Files of the kit in the cache ``folder``: how many, and their size in bytes."""

    folder: Path
    entries: int = 0
    bytes: int = 0


def _kit_files(root: Path) -> Iterator[tuple[Path, Path]]:
    """``(entry, file)`` for every file the kit wrote; ``entry`` is the stamp file or results folder."""
    for sub in _SUBDIRS:
        try:
            children = sorted((root / sub).iterdir())
        except OSError:
            continue
        for child in children:
            if sub == "results" and _KIT_DIR.fullmatch(child.name) and child.is_dir() and not child.is_symlink():
                with suppress(OSError):
                    for f in sorted(child.iterdir()):
                        if _KIT_FILE.fullmatch(f.name) and f.is_file() and not f.is_symlink():
                            yield child, f
            elif sub == "validated" and _KIT_FILE.fullmatch(child.name) and child.is_file() and not child.is_symlink():
                yield child, child


def _remove(root: Path, files: list[Path]) -> CacheUsage:
    n = size = 0
    for f in files:
        with suppress(OSError):
            b = f.stat().st_size
            f.unlink()
            n, size = n + 1, size + b
    # Folders the kit made, once empty (a folder holding anything else stays).
    for folder in sorted({f.parent for f in files}, reverse=True):
        if folder.parent.name == "results":
            with suppress(OSError):
                folder.rmdir()
    return CacheUsage(root, n, size)


def info() -> CacheUsage:
    """The cache folder and the count and total size of the kit's files in it."""
    root = cache_dir(create=False)
    n = size = 0
    for _, f in _kit_files(root):
        with suppress(OSError):
            size += f.stat().st_size
            n += 1
    return CacheUsage(root, n, size)


def clear() -> CacheUsage:
    """Remove every file the kit wrote in the cache folder (and nothing else); returns what went.

    Only names the kit makes are touched (``validated/<key>[.duckdb]``, ``results/<key>/<hash>.*``
    and their temporary files); emptied kit folders go too, anything else stays.
    """
    root = cache_dir(create=False)
    removed = _remove(root, [f for _, f in _kit_files(root)])
    for sub in _SUBDIRS:
        with suppress(OSError):
            (root / sub).rmdir()
    return removed


def prune(*, keep: str | None = None, max_age_days: float = CACHE_DAYS) -> CacheUsage:
    """Remove the entries of inputs not seen for ``max_age_days`` (by modification time: writing
    and reading an entry refresh it); the entries of data key ``keep`` stay. Returns what went.

    At worst a pruned entry costs its data one validation and one computation of each result.
    """
    root = cache_dir(create=False)
    cutoff = time.time() - max_age_days * 86400
    kept = {keep, _namespace_dir(root, keep).name} if keep else set()
    old: dict[Path, bool] = {}
    stale = []
    for entry, f in _kit_files(root):
        if entry.name.split(".")[0] in kept:
            continue
        if entry not in old:
            try:
                old[entry] = entry.stat().st_mtime < cutoff
            except OSError:
                old[entry] = False
        if old[entry]:
            stale.append(f)
    return _remove(root, stale)
