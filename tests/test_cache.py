"""The on-disk cache: keys that include the kit's code, no pickle, a private folder, damage recovery."""

from __future__ import annotations

import datetime as dt
import decimal
import doctest
import math
import multiprocessing
import os
import pickle  # only to write a poisoned entry; the cache itself never loads pickle
import re
import shutil
import stat
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kpi_helpers import cache
from kpi_helpers.cache import CacheWarning
from kpi_helpers.cli import main
from kpi_helpers.exceptions import CacheError, Problem, SchemaError
from kpi_helpers.kpis import Undefined
from kpi_helpers.source import DataSource

TINY = Path(__file__).parent / "fixtures" / "tiny"
NS = "ab" * 20  # a data key: 40 hex digits


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder (not yet created), the cache on."""
    path = tmp_path / "cache"
    monkeypatch.setenv("KPI_CACHE_DIR", str(path))
    monkeypatch.delenv("KPI_NO_CACHE", raising=False)
    cache._TOUCHED.clear()
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    dst = tmp_path / "data"
    shutil.copytree(TINY, dst)
    return dst


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _counter() -> tuple[list[int], object]:
    runs: list[int] = []

    def compute() -> int:
        runs.append(1)
        return len(runs)

    return runs, compute


# ------------------------------------------------------------------------------ the codec


VALUES = [
    ("none", None),
    ("true", True),
    ("int", 7),
    ("huge-int", 2**80),
    ("float", 0.1),
    ("minus-zero", -0.0),
    ("nan", math.nan),
    ("inf", -math.inf),
    ("undefined", Undefined("no leads in the period")),
    ("str", "Paid search <b>"),
    ("np-int64", np.int64(-3)),
    ("np-float32", np.float32(1.5)),
    ("np-float64-nan", np.float64("nan")),
    ("np-bool", np.bool_(True)),
    ("np-datetime64", np.datetime64("2025-03-31T12:00:00", "us")),
    ("date", dt.date(2025, 3, 31)),
    ("datetime", dt.datetime(2025, 3, 31, 23, 59, 59, 999999)),
    ("datetime-utc", dt.datetime(2025, 3, 31, 12, tzinfo=dt.UTC)),
    ("timedelta", dt.timedelta(days=2, microseconds=5)),
    ("timestamp-us", pd.Timestamp("2025-03-31 10:00").as_unit("us")),
    ("timestamp-ns-tz", pd.Timestamp("2025-03-31 10:00:00.000000001", tz="Europe/Berlin")),
    ("nat", pd.NaT),
    ("pd-timedelta", pd.Timedelta(seconds=90).as_unit("s")),
    ("decimal", decimal.Decimal("12500.00")),
    ("tuple", ("2026Q1", dt.date(2026, 1, 1), ("position_based", "linear"))),
    ("list", [1, 2.0, "3", None]),
    ("dict-tuple-keys", {("a", 1): [Undefined("why")], "b": {"c": np.int64(1)}}),
    ("empty", ((), [], {})),
]


@pytest.mark.parametrize("value", [v for _, v in VALUES], ids=[i for i, _ in VALUES])
def test_values_come_back_exactly(value):
    back = cache.decode(cache.encode(value, name="x.result"), name="x.result")
    assert _identical(value, back)


def test_undefined_keeps_its_reason_inside_containers():
    back = cache.decode(cache.encode({"cpl": Undefined("no leads")}))
    assert type(back["cpl"]) is Undefined and back["cpl"].reason == "no leads"


def test_frames_keep_index_names_dtypes_and_attrs():
    frame = pd.DataFrame(
        {
            "channel": pd.array(["Paid", None, "Email"], dtype="str"),
            "label": pd.array(["a", None, "c"], dtype="string"),
            "leads": pd.array([1, None, 3], dtype="Int64"),
            "day": pd.to_datetime(["2025-01-01", "2025-01-02", None]).as_unit("us"),
            "at": pd.to_datetime(["2025-01-01 10:00"] * 3).tz_localize("UTC"),
            "closed": [dt.date(2025, 1, 1), None, dt.date(2025, 3, 31)],
            "cost": [1.5, math.nan, -0.0],
        },
        index=pd.Index(["x", "y", "z"], name="campaign"),
    ).rename_axis(columns="metric")
    frame.attrs = {"model": "linear", "nan_reason": "no spend"}
    series = pd.Series([0.5, math.nan], index=pd.Index(["Paid", "Email"], name="channel"), name="cpl")
    series.attrs["nan_reason"] = "no leads for Email"
    for value in (frame, series, {"by_channel": series, "table": frame}):
        back = cache.decode(cache.encode(value))
        assert _identical(value, back)
    assert cache.decode(cache.encode(series)).attrs == {"nan_reason": "no leads for Email"}


def _with_attrs(frame: pd.DataFrame, **attrs: object) -> pd.DataFrame:
    frame.attrs.update(attrs)
    return frame


UNSUPPORTED = [
    ("object", object()),
    ("set", {1, 2}),
    ("array", np.arange(3)),
    ("str-subclass", np.str_("x")),
    ("mixed-object-column", pd.DataFrame({"a": [1, "x"]})),
    ("no-columns", pd.DataFrame()),  # comes back with another class of column index: not exact
    ("nested-set", {"a": frozenset()}),
    ("attrs-array", _with_attrs(pd.DataFrame({"a": [1]}), x=np.arange(2))),
]


@pytest.mark.parametrize("value", [v for _, v in UNSUPPORTED], ids=[i for i, _ in UNSUPPORTED])
def test_other_values_are_computed_every_time_without_error(folder, value, recwarn):
    with pytest.raises(TypeError, match="not stored in the cache"):
        cache.encode(value)
    assert cache.put(NS, ("k",), value) is False
    runs = []
    for _ in range(2):
        assert cache.memoize(NS, ("k",), lambda: runs.append(1) or value) is value
    assert len(runs) == 2
    assert not [w for w in recwarn if issubclass(w.category, CacheWarning)]


# -- property tests

_DTYPES = {
    "int64": (st.integers(-(2**63), 2**63 - 1), "int64"),
    "float64": (st.floats(allow_nan=True, allow_infinity=True), "float64"),
    "bool": (st.booleans(), "bool"),
    "str": (st.none() | st.text(max_size=6), "str"),
    "string": (st.none() | st.text(max_size=6), "string"),
    "Int64": (st.none() | st.integers(-(2**63), 2**63 - 1), "Int64"),
    "datetime": (
        st.none() | st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1)),
        "datetime64[us]",
    ),
    "datetime-utc": (st.datetimes(dt.datetime(1970, 1, 1), dt.datetime(2100, 1, 1)), "datetime64[us, UTC]"),
    "date-object": (st.none() | st.dates(), object),
    "category": (st.sampled_from(["Paid", "Email", "Organic"]), "category"),
}


def _column(kind: str, values: list) -> pd.Series:
    if kind.startswith("datetime"):
        out = pd.Series(pd.to_datetime(values))
        out = out.dt.as_unit("us")
        return out.dt.tz_localize("UTC") if kind.endswith("utc") else out
    return pd.Series(values, dtype=_DTYPES[kind][1])


_ATTR_VALUES = st.none() | st.text(max_size=10) | st.floats(allow_nan=True) | st.integers()


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(0, 6))
    names = draw(st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=5, unique=True))
    data = {}
    for name in names:
        kind = draw(st.sampled_from(sorted(_DTYPES)))
        data[name] = _column(kind, draw(st.lists(_DTYPES[kind][0], min_size=n, max_size=n)))
    frame = pd.DataFrame(data, index=pd.RangeIndex(n))
    index = draw(st.sampled_from(["range", "text", "dates"]))
    if index == "text":
        frame.index = pd.Index(draw(st.lists(st.text(max_size=4), min_size=n, max_size=n)), dtype="str", name="key")
    elif index == "dates":
        frame.index = pd.date_range("2025-01-01", periods=n, freq="D", unit="us", name="day")
    frame.attrs = draw(st.dictionaries(st.text(max_size=8), _ATTR_VALUES, max_size=3))
    if draw(st.booleans()):
        frame.attrs["nan_reason"] = draw(st.text(max_size=20))
    return frame


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.dates()
    | st.datetimes()
    | st.datetimes(timezones=st.just(dt.UTC))
    | st.decimals(allow_nan=True, places=None)
    | st.text(max_size=8).map(Undefined)
    | st.integers(-(2**63), 2**63 - 1).map(np.int64)
    | st.floats(width=32, allow_nan=False).map(np.float32)
    | st.datetimes(dt.datetime(1700, 1, 1), dt.datetime(2200, 1, 1)).map(pd.Timestamp)
)
_KEYS = st.text(max_size=4) | st.integers() | st.tuples(st.text(max_size=3), st.integers())
_NESTED = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.lists(inner, max_size=4).map(tuple) | st.dictionaries(_KEYS, inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_frames_round_trip(frame):
    back = cache.decode(cache.encode(frame, name="f"), name="f")
    pd.testing.assert_frame_equal(back, frame, check_exact=True, check_index_type=True, check_column_type=True)
    assert list(back.dtypes) == list(frame.dtypes)
    assert _identical(back.attrs, frame.attrs)
    column = frame.columns[0] if len(frame.columns) else None
    if column is not None:
        series = frame[column].rename(column)
        series.attrs = {"nan_reason": "because"}
        back = cache.decode(cache.encode(series))
        pd.testing.assert_series_equal(back, series, check_exact=True, check_index_type=True)
        assert back.attrs == {"nan_reason": "because"}


@settings(max_examples=150, deadline=None)
@given(_NESTED)
def test_nested_values_round_trip(value):
    assert _identical(cache.decode(cache.encode(value)), value)


def _identical(a, b) -> bool:
    """Same type and value, recursively: NaN equals NaN, reasons and attrs count (independent of the kit's check)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, pd.DataFrame | pd.Series):
        check = pd.testing.assert_frame_equal if isinstance(a, pd.DataFrame) else pd.testing.assert_series_equal
        check(a, b, check_exact=True, check_index_type=True)
        return _identical(a.attrs, b.attrs) and (isinstance(a, pd.DataFrame) or a.name == b.name)
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b) and getattr(a, "reason", None) == getattr(b, "reason", None)
        return a == b and str(a) == str(b)  # -0.0 stays -0.0
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_identical(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(map(repr, a)) == list(map(repr, b)) and all(_identical(a[k], b[k]) for k in a)
    if isinstance(a, decimal.Decimal):
        return a.as_tuple() == b.as_tuple()
    if a is pd.NaT:
        return b is pd.NaT
    if isinstance(a, pd.Timestamp):
        return a == b and a.unit == b.unit and str(a.tz) == str(b.tz)
    if isinstance(a, dt.datetime):
        return a == b and a.tzinfo == b.tzinfo
    return a == b


def test_module_doctests():
    assert doctest.testmod(cache).failed == 0


# ------------------------------------------------------------------ poisoned and damaged results


class _Poison:
    """Unpickling this creates ``marker``: proof that loading ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _poisons(path: Path, marker: Path) -> dict[str, bytes]:
    payload = pickle.dumps(_Poison(marker))
    return {
        "bare-pickle": payload,
        "header-wrong-checksum": b"kpi-kit-cache 2 json 00000000000000000000000000000000\n" + payload,
        # A checksum is no signature (anyone can compute it): what passes it must still be data only.
        "json-with-valid-checksum": cache._wrap(b"json", payload, path.name),
        "arrow-with-valid-checksum": cache._wrap(b"arrow", payload, path.name),
    }


POISONS = ["bare-pickle", "header-wrong-checksum", "json-with-valid-checksum", "arrow-with-valid-checksum"]


@pytest.mark.parametrize("kind", POISONS)
def test_a_poisoned_entry_is_never_run_and_is_recomputed(folder, tmp_path, kind):
    marker = tmp_path / "pwned"
    path = cache.entry_path(NS, ("sql", "SELECT 1"))
    path.parent.mkdir(parents=True)
    path.write_bytes(_poisons(path, marker)[kind])
    runs, compute = _counter()
    with pytest.warns(CacheWarning, match=r"damaged .*computed again"):
        assert cache.memoize(NS, ("sql", "SELECT 1"), compute) == 1
    assert not marker.exists() and runs == [1]
    assert cache.memoize(NS, ("sql", "SELECT 1"), compute) == 1 and runs == [1]  # the recomputed value is kept


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _flip(data: bytes) -> bytes:
    i = len(data) - 3
    return data[:i] + bytes([data[i] ^ 1]) + data[i + 1 :]


DAMAGE = [
    ("empty", lambda d: b"", "empty file"),
    ("truncated", _truncate, "checksum mismatch|not a kit cache entry"),
    ("garbage", lambda d: os.urandom(len(d)), "not a kit cache entry"),
    ("one-bit", _flip, "checksum mismatch"),
    ("older-format", lambda d: d.replace(b"kpi-kit-cache 2", b"kpi-kit-cache 1", 1), "format 1, expected 2"),
]


@pytest.mark.parametrize(("damage", "why"), [(f, w) for _, f, w in DAMAGE], ids=[i for i, _, _ in DAMAGE])
@pytest.mark.parametrize("value", [pd.DataFrame({"leads": [1, 2]}), 5500.0], ids=["frame", "scalar"])
def test_a_damaged_result_is_discarded_and_recomputed(folder, damage, why, value):
    assert cache.put(NS, ("k",), value)
    path = cache.entry_path(NS, ("k",))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.warns(CacheWarning, match=why):
        assert cache.get(NS, ("k",)) is cache.MISSING
    assert not path.exists()
    _, compute = _counter()
    assert cache.memoize(NS, ("k",), compute) == 1 and cache.get(NS, ("k",)) == 1


def test_an_entry_copied_under_another_key_is_damaged(folder):
    cache.put(NS, ("a",), 1.0)
    shutil.copy(cache.entry_path(NS, ("a",)), cache.entry_path(NS, ("b",)))
    with pytest.warns(CacheWarning, match="checksum"):
        assert cache.get(NS, ("b",)) is cache.MISSING


# ----------------------------------------------------------------------- the kit's code in keys


def test_a_result_cached_by_other_code_is_never_served(folder, monkeypatch):
    cache.put(NS, ("sql", "SELECT sum(amount)"), 5500.0)
    monkeypatch.setattr(cache, "code_hash", lambda: "0" * 40)
    runs, compute = _counter()
    assert cache.memoize(NS, ("sql", "SELECT sum(amount)"), compute) == 1 and runs == [1]


def test_other_code_gets_other_data_keys_and_validates_again(folder, tiny, monkeypatch):
    first = DataSource.open(tiny)
    assert first.fetch(first.table("spend").amount.sum()) == 5500.0

    def rejecting(*args, **kwargs):
        raise SchemaError(str(tiny), [Problem("spend.csv", "amount", "a stricter rule", 1)])

    # The new validator rejects these bytes; the stamp of the old code must not hide that.
    monkeypatch.setattr(DataSource, "_validate_and_type", classmethod(rejecting))
    assert DataSource.open(tiny).cache_key == first.cache_key  # same code: the verdict is reused
    monkeypatch.setattr(cache, "code_hash", lambda: "0" * 40)
    with pytest.raises(SchemaError, match="a stricter rule"):
        DataSource.open(tiny)
    monkeypatch.undo()
    monkeypatch.setenv("KPI_CACHE_DIR", str(folder))
    monkeypatch.setattr(cache, "code_hash", lambda: "0" * 40)
    other = DataSource.open(tiny)
    assert other.cache_key != first.cache_key
    assert sorted(p.name for p in (folder / "results").iterdir()) == sorted([first.cache_key, other.cache_key])


def test_code_hash_covers_every_file_but_compiled_ones(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "presets").mkdir(parents=True)
    (pkg / "templates" / "page").mkdir(parents=True)
    (pkg / "__pycache__").mkdir()
    (pkg / "kpis.py").write_text("RATE = 1\n")
    (pkg / "presets" / "ga4.yml").write_text("a: 1\n")
    (pkg / "templates" / "page" / "index.html.j2").write_text("<p>{{ x }}</p>\n")
    base = cache.tree_hash(pkg)
    assert len(base) == 40 and cache.tree_hash(pkg) == base
    (pkg / "__pycache__" / "kpis.cpython-311.pyc").write_bytes(b"\0")
    (pkg / ".kpis.py.swp").write_bytes(b"\0")
    assert cache.tree_hash(pkg) == base
    for edit in ("kpis.py", "presets/ga4.yml", "templates/page/index.html.j2"):
        p = pkg / edit
        text = p.read_text()
        p.write_text(text + " ")
        assert cache.tree_hash(pkg) != base, edit
        p.write_text(text)
    (pkg / "kpis.py").rename(pkg / "kpis2.py")
    assert cache.tree_hash(pkg) != base


def test_code_hash_is_the_package_and_cached():
    from kpi_helpers import __file__ as init

    assert cache.code_hash() == cache.tree_hash(Path(init).parent)
    assert cache.code_hash.cache_info().currsize == 1


# --------------------------------------------------------------------------------- the folder


def test_folder_and_entries_are_private(folder, tiny):
    src = DataSource.open(tiny)
    src.fetch(src.table("leads").count())
    assert _mode(folder) == 0o700
    dirs = [p for p in folder.rglob("*") if p.is_dir()]
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert {p.name for p in dirs} == {"validated", "results", src.cache_key}
    assert {p.suffix for p in files} == {"", ".duckdb", ".result", ".lock"}
    assert {_mode(p) for p in dirs} == {0o700} and {_mode(p) for p in files} == {0o600}


def test_an_older_kits_open_folders_are_made_private(folder):
    (folder / "results").mkdir(parents=True, mode=0o755)
    os.chmod(folder, 0o755)
    cache.put(NS, ("k",), 1)
    assert _mode(folder / "results") == 0o700 and _mode(folder / "results" / NS) == 0o700


@pytest.mark.parametrize(("mode", "who"), [(0o777, "group and others"), (0o770, "group"), (0o703, "others")])
def test_a_folder_others_can_write_is_refused(folder, tiny, mode, who, capsys):
    folder.mkdir()
    os.chmod(folder, mode)
    where = re.escape(str(folder))
    with pytest.raises(CacheError, match=rf"`{where}` is writable by {who} .*`chmod 700 {where}`.*KPI_NO_CACHE=1"):
        cache.cache_dir()
    with pytest.raises(CacheError):
        DataSource.open(tiny)
    assert main(["validate", "--data", str(tiny)]) == 2
    err = capsys.readouterr().err
    assert "chmod 700" in err and "Traceback" not in err
    assert list(folder.iterdir()) == []  # nothing was written


def test_a_folder_of_another_user_is_refused(folder, monkeypatch):
    folder.mkdir(mode=0o700)
    monkeypatch.setattr(cache.os, "geteuid", lambda: os.stat(folder).st_uid + 1)
    with pytest.raises(CacheError, match=r"belongs to another user .*`KPI_CACHE_DIR`.*`KPI_NO_CACHE=1`"):
        cache.memoize(NS, ("k",), lambda: 1)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown needs root")
def test_a_folder_chowned_to_nobody_is_refused(folder):
    folder.mkdir(mode=0o700)
    os.chown(folder, 65534, 65534)
    with pytest.raises(CacheError, match="uid 65534"):
        cache.validation_stamp({}, ())


def test_a_file_in_place_of_the_folder_is_refused(folder):
    folder.write_text("not a folder")
    with pytest.raises(CacheError, match="is not a folder"):
        cache.cache_dir()


@pytest.mark.parametrize(
    ("value", "on"), [("1", False), ("yes", False), ("0", True), ("false", True), ("", True)], ids=str
)
def test_no_cache_values(monkeypatch, value, on):
    monkeypatch.setenv("KPI_NO_CACHE", value)
    assert cache.enabled() is on


def test_no_cache_turns_everything_off(folder, tiny, monkeypatch):
    monkeypatch.setenv("KPI_NO_CACHE", "1")
    _, compute = _counter()
    assert [cache.memoize(NS, ("k",), compute) for _ in range(2)] == [1, 2]
    assert cache.validation_stamp({"leads": tiny / "leads.csv"}, ()) is None
    assert cache.put(NS, ("k",), 1) is False and cache.get(NS, ("k",)) is cache.MISSING
    DataSource.open(tiny)
    assert not folder.exists()


def test_an_unreadable_input_gives_no_stamp(folder, tiny, monkeypatch):
    """The reader reports the file (with the others) instead of the cache raising."""

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cache, "open", refuse, raising=False)
    assert cache.validation_stamp({"leads": tiny / "leads.csv"}, ()) is None


# ----------------------------------------------------------------- damaged stamps and typed tables


def _stamp(key: str) -> cache.Stamp:
    return cache.Stamp(key, cache.cache_dir() / "validated")


@pytest.fixture
def typed_stamp(folder: Path) -> cache.Stamp:
    """A stamp with typed tables `leads` and `spend`, written from a small DuckDB backend."""
    import ibis

    con = ibis.duckdb.connect()
    con.raw_sql("CREATE TABLE leads AS SELECT range AS lead_id FROM range(1000)")
    con.raw_sql("CREATE TABLE spend AS SELECT 1.5 AS amount")
    stamp = _stamp("cd" * 20)
    stamp.write({"leads": {"lead_id"}}, con, ["leads", "spend"])
    assert stamp.read() == {"leads": {"lead_id"}} and stamp.typed_path.stat().st_size > 1000
    return stamp


STAMP_DAMAGE = [
    ("empty", lambda d: b"", "empty file"),
    ("truncated", _truncate, "not JSON"),
    ("garbage", lambda d: os.urandom(64), "not JSON"),
    ("older-kit", lambda d: b'{"plain": {}}', "not a kit validation stamp"),
    ("altered", lambda d: d.replace(b'"lead_id"', b'"lead_ix"', 1), "checksum mismatch"),
    ("other-key", lambda d: d.replace(b"cdcd", b"abab", 1), "checksum mismatch|another format or key"),
]


@pytest.mark.parametrize(("damage", "why"), [(f, w) for _, f, w in STAMP_DAMAGE], ids=[i for i, _, _ in STAMP_DAMAGE])
def test_a_damaged_stamp_is_discarded_with_its_typed_tables(typed_stamp, damage, why):
    typed_stamp.path.write_bytes(damage(typed_stamp.path.read_bytes()))
    with pytest.warns(CacheWarning, match=why):
        assert typed_stamp.read() is None
    assert not typed_stamp.path.exists() and not typed_stamp.typed_path.exists()
    assert typed_stamp.read() is None  # gone: no second warning


def _table_only(path: Path) -> None:
    import duckdb

    other = path.with_name("other.duckdb")
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE leads AS SELECT 1 AS lead_id")
    con.close()
    os.replace(other, path)


def _flip_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


TYPED_DAMAGE = [
    ("zero-bytes", lambda p: p.write_bytes(b""), False, "typed tables of 0 bytes"),
    ("truncated", lambda p: p.write_bytes(_truncate(p.read_bytes())), False, "typed tables of"),
    ("missing", lambda p: p.unlink(), False, "typed tables are missing"),
    ("one-bit", _flip_middle, False, "checksum mismatch of the typed tables"),
    ("garbage", lambda p: p.write_bytes(os.urandom(p.stat().st_size)), False, "checksum mismatch of the typed"),
    # Restamped (size and checksum of the damaged file): what DuckDB itself makes of the file.
    ("garbage-restamped", lambda p: p.write_bytes(os.urandom(p.stat().st_size)), True, "do not open"),
    ("zero-filled-restamped", lambda p: p.write_bytes(bytes(p.stat().st_size)), True, "do not open"),
    ("one-table-only-restamped", _table_only, True, "lack spend"),
]


@pytest.mark.parametrize(("damage", "restamp", "why"), [d[1:] for d in TYPED_DAMAGE], ids=[d[0] for d in TYPED_DAMAGE])
def test_damaged_typed_tables_are_discarded_and_nothing_stays_attached(typed_stamp, damage, restamp, why):
    import ibis

    damage(typed_stamp.typed_path)
    if restamp:
        path = typed_stamp.typed_path
        body = {"plain": {"leads": ["lead_id"]}, "typed_size": path.stat().st_size, "warnings": []}
        body["typed_digest"] = cache._file_digest(path)
        typed_stamp.path.write_bytes(cache._stamp_bytes(typed_stamp.key, body))
    con = ibis.duckdb.connect()
    with pytest.warns(CacheWarning, match=why):
        assert not typed_stamp.attach_typed(con, "kpi_cache", ["leads", "spend"])
    attached = {r[0] for r in con.raw_sql("SELECT database_name FROM duckdb_databases()").fetchall()}
    assert "kpi_cache" not in attached
    assert not typed_stamp.path.exists() and not typed_stamp.typed_path.exists()


def test_intact_typed_tables_attach(typed_stamp):
    import ibis

    con = ibis.duckdb.connect()
    assert typed_stamp.attach_typed(con, "kpi_cache", ["leads", "spend"])
    assert con.sql("SELECT count(*) AS n FROM kpi_cache.main.leads").execute()["n"].iloc[0] == 1000


# End to end: the data source recomputes what was damaged, and the next open uses the cache again.
OPEN_DAMAGE = [
    ("stamp-garbage", lambda s: s.path.write_bytes(os.urandom(64)), "not JSON"),
    ("duckdb-zero-bytes", lambda s: s.typed_path.write_bytes(b""), "typed tables of 0 bytes"),
    ("duckdb-truncated", lambda s: s.typed_path.write_bytes(_truncate(s.typed_path.read_bytes())), "typed tables"),
]


@pytest.mark.parametrize(("damage", "why"), [d[1:] for d in OPEN_DAMAGE], ids=[d[0] for d in OPEN_DAMAGE])
def test_open_recomputes_a_damaged_stamp_or_typed_tables(folder, tiny, damage, why):
    first = DataSource.open(tiny)
    stamp = _stamp(first.cache_key)
    verdict, size = stamp.read(), stamp.typed_path.stat().st_size
    damage(stamp)
    with pytest.warns(CacheWarning, match=why):
        again = DataSource.open(tiny)
    assert again.cache_key == first.cache_key
    assert again.fetch(again.table("leads").count()) == 5
    assert again.fetch(again.table("spend").amount.sum()) == 5500.0
    assert stamp.read() == verdict and stamp.typed_path.stat().st_size == size  # validated and typed anew


# --------------------------------------------------------------------------------- concurrency


def _compute_in_child(folder: str, log: str) -> None:
    os.environ["KPI_CACHE_DIR"] = folder

    def slow() -> float:
        with open(log, "a") as fh:
            fh.write("computed\n")
        time.sleep(0.3)
        return 42.0

    assert cache.memoize(NS, ("slow",), slow) == 42.0


def test_parallel_processes_compute_a_result_once(folder, tmp_path):
    log = tmp_path / "log"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_compute_in_child, args=(str(folder), str(log))) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert log.read_text() == "computed\n"
    assert not list(folder.rglob("*.tmp"))  # written under a temporary name, then renamed


def test_a_nested_computation_never_waits_for_a_second_lock(folder):
    def outer() -> list:
        return [cache.memoize(NS, ("inner",), lambda: 1), 2]

    assert cache.memoize(NS, ("outer",), outer) == [1, 2]
    assert cache.get(NS, ("inner",)) == 1 and cache.get(NS, ("outer",)) == [1, 2]


# ------------------------------------------------------------------------- pruning and clearing


def _age(path: Path, days: float) -> None:
    t = time.time() - days * 86400
    os.utime(path, (t, t))


def _fill(key: str) -> cache.Stamp:
    cache.put(key, ("k",), 1.0)
    stamp = cache.Stamp(key, cache.cache_dir() / "validated")
    stamp.write({"leads": {"lead_id"}})
    return stamp


def test_prune_removes_entries_not_seen_for_30_days(folder):
    old, fresh, kept = _fill("1" * 40), _fill("2" * 40), _fill("3" * 40)
    for stamp in (old, kept):
        _age(stamp.path, 31)
        _age(folder / "results" / stamp.key, 31)
    _age(fresh.path, 29)
    removed = cache.prune(keep=kept.key)
    assert removed.entries == 3 and removed.bytes > 0  # the stamp, the result, the stamp's lock
    assert not old.path.exists() and not (folder / "results" / old.key).exists()
    assert fresh.exists() and kept.exists() and cache.get(kept.key, ("k",)) == 1.0


def test_reading_an_entry_counts_as_seeing_it(folder):
    stamp = _fill("1" * 40)
    _age(stamp.path, 31)
    _age(folder / "results" / stamp.key, 31)
    cache._TOUCHED.clear()
    assert stamp.read() == {"leads": {"lead_id"}}  # a later open reads the stamp and its results
    assert cache.get(stamp.key, ("k",)) == 1.0
    assert cache.prune().entries == 0
    assert stamp.exists() and cache.get(stamp.key, ("k",)) == 1.0


def test_clear_removes_only_the_kits_files(folder, tiny):
    src = DataSource.open(tiny)
    src.fingerprint  # noqa: B018
    (folder / "notes.txt").write_text("mine")
    (folder / "validated" / "README").write_text("mine")
    (folder / "results" / src.cache_key / "mine.csv").write_text("mine")
    (folder / "results" / "other").mkdir()
    (folder / "results" / ("de" * 20)).mkdir()
    (folder / "results" / ("de" * 20) / "x.txt").write_text("mine")
    (folder / "results" / src.cache_key / ("ab" * 20 + ".pkl")).write_bytes(b"old kit")  # an older kit's entry
    before = cache.info()
    assert before.folder == folder and before.entries >= 4
    removed = cache.clear()
    assert (removed.entries, removed.bytes) == (before.entries, before.bytes)
    left = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    assert left == sorted(
        [
            "notes.txt",
            "validated",
            "validated/README",
            "results",
            "results/other",
            f"results/{'de' * 20}",
            f"results/{'de' * 20}/x.txt",
            f"results/{src.cache_key}",
            f"results/{src.cache_key}/mine.csv",
        ]
    )
    assert cache.info().entries == 0 and cache.clear().entries == 0


def test_clear_of_a_missing_folder_creates_nothing(folder):
    assert cache.clear() == cache.CacheUsage(folder, 0, 0)
    assert cache.info() == cache.CacheUsage(folder, 0, 0)
    assert not folder.exists()
