"""Column mappings: read a tool's export as a contract table without editing the file.

A mapping is a YAML file (or the name of a bundled preset: ``ga4``, ``hubspot``, ``salesforce``)::

    tables:
      web_sessions:                          # contract table
        file: traffic_acquisition*.csv       # export file in the data folder (glob allowed)
        read: {comment: "#"}                 # DuckDB read_csv options (skip lines, delimiter, ...)
        columns:                             # contract column: export column (or a list of
          channel: Session default channel group   # alternative names, the first present wins)
          sessions: Sessions
        formats: {date: "%Y%m%d"}            # strptime format of a date/time column in the export
        values:                              # value renames; "*" catches every other value
          channel: {Organic Video: Organic Search}
        defaults: {device: "(not set)"}      # constant for a column the export lacks (null: empty)
        expressions:                         # DuckDB SQL over the export's columns (quoted names)
          session_duration_s: '"Average engagement time per session" * "Sessions"'
        filter: '"Sessions" IS NOT NULL'     # keep only rows where this holds (drop footers)

Several mappings may be given (one per tool); they are merged table by table. Columns the
mapping does not name are read under their contract name; columns the contract does not know
(personal data such as names and e-mails among them) are never read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .exceptions import MappingError
from .schema import CONTRACT, Table

PRESETS = {
    "ga4": "ga4_traffic_acquisition.yml",
    "hubspot": "hubspot_contacts.yml",
    "salesforce": "salesforce_opportunities.yml",
}
_KEYS = {"file", "read", "columns", "formats", "values", "defaults", "expressions", "filter", "description"}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: Any) -> str:
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


@dataclass
class TableMapping:
    file: str | None = None
    read: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, list[str]] = field(default_factory=dict)
    formats: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    expressions: dict[str, str] = field(default_factory=dict)
    filter: str | None = None
    origin: str = ""

    def describe(self, column: str) -> str:
        if column in self.columns:
            names = " or ".join(repr(n) for n in self.columns[column])
            return f"mapped from export column {names} by {self.origin}"
        return "not named in the mapping"

    def select_exprs(self, table: Table, header: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
        """SQL expression per contract column over the export's ``header``; and the missing ones."""
        exact = set(header)
        folded = {h.strip().casefold(): h for h in header}

        def find(name: str) -> str | None:
            return name if name in exact else folded.get(name.strip().casefold())

        exprs: list[tuple[str, str]] = []
        missing: list[str] = []
        for col in table.columns:
            c = col.name
            if c in self.expressions:
                e = f"({self.expressions[c]})"
            elif c in self.columns:
                found = next((f for f in map(find, self.columns[c]) if f is not None), None)
                if found is None:
                    if c in self.defaults or col.optional:
                        e = _lit(self.defaults.get(c))
                    else:
                        missing.append(c)
                        e = "NULL"
                else:
                    e = _ident(found)
            elif find(c) is not None:
                e = _ident(find(c))  # type: ignore[arg-type]
            elif c in self.defaults:
                e = _lit(self.defaults[c])
            elif col.optional:
                e = "NULL"
            else:
                missing.append(c)
                e = "NULL"
            if c in self.formats and e != "NULL":
                # Unparseable text stays as it was so validation can show it.
                e = (
                    f"COALESCE(CAST(try_strptime(CAST({e} AS VARCHAR), {_lit(self.formats[c])}) AS VARCHAR), "
                    f"CAST({e} AS VARCHAR))"
                )
            if c in self.values and e != "NULL":
                pairs = {k: v for k, v in self.values[c].items() if k != "*"}
                other = _lit(self.values[c]["*"]) if "*" in self.values[c] else f"CAST({e} AS VARCHAR)"
                whens = " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in pairs.items())
                e = (
                    f"(CASE TRIM(CAST({e} AS VARCHAR)) {whens} ELSE {other} END)"
                    if whens
                    else f"(CASE WHEN {e} IS NULL THEN NULL ELSE {other} END)"
                )
            exprs.append((c, e))
        return exprs, missing


def _as_str_dict(where: str, key: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MappingError(f"`{where}`, `{key}`: expected a mapping, got {type(value).__name__}")
    return {str(k): v for k, v in value.items()}


def _parse(doc: Any, where: str) -> dict[str, TableMapping]:
    if not isinstance(doc, dict) or not isinstance(doc.get("tables"), dict):
        raise MappingError(f"`{where}`: expected a top-level `tables:` mapping of contract tables")
    out: dict[str, TableMapping] = {}
    for tname, spec in doc["tables"].items():
        if tname not in CONTRACT:
            raise MappingError(f"`{where}`: unknown table `{tname}`; the contract has {', '.join(CONTRACT)}")
        spec = spec or {}
        if not isinstance(spec, dict):
            raise MappingError(f"`{where}`, table `{tname}`: expected a mapping")
        unknown = sorted(set(spec) - _KEYS)
        if unknown:
            raise MappingError(f"`{where}`, table `{tname}`: unknown key(s) {unknown}; known: {sorted(_KEYS)}")
        contract_cols = set(CONTRACT[tname].column_names)
        tm = TableMapping(
            file=spec.get("file"),
            read=_as_str_dict(where, f"{tname}.read", spec.get("read")),
            columns={
                k: [str(x) for x in v] if isinstance(v, list) else [str(v)]
                for k, v in _as_str_dict(where, f"{tname}.columns", spec.get("columns")).items()
            },
            formats={k: str(v) for k, v in _as_str_dict(where, f"{tname}.formats", spec.get("formats")).items()},
            values={
                k: _as_str_dict(where, f"{tname}.values.{k}", v)
                for k, v in _as_str_dict(where, f"{tname}.values", spec.get("values")).items()
            },
            defaults=_as_str_dict(where, f"{tname}.defaults", spec.get("defaults")),
            expressions={
                k: str(v) for k, v in _as_str_dict(where, f"{tname}.expressions", spec.get("expressions")).items()
            },
            filter=spec.get("filter"),
            origin=f"`{where}`",
        )
        for key in ("columns", "formats", "values", "defaults", "expressions"):
            bad = sorted(set(getattr(tm, key)) - contract_cols)
            if bad:
                raise MappingError(
                    f"`{where}`, table `{tname}`, `{key}`: {bad} are not contract columns of `{tname}` "
                    f"(expected some of {sorted(contract_cols)})"
                )
        out[tname] = tm
    return out


def load_mapping(ref: str | Path) -> dict[str, TableMapping]:
    """Read one mapping: a preset name (``ga4``, ``hubspot``, ``salesforce``) or a YAML path."""
    key = str(ref)
    if key in PRESETS:
        text = resources.files("kpi_helpers").joinpath("presets", PRESETS[key]).read_text(encoding="utf-8")
        where = f"preset {key}"
    else:
        path = Path(ref)
        if not path.is_file():
            raise MappingError(f"mapping `{ref}` is neither a file nor a preset ({', '.join(PRESETS)})")
        text = path.read_text(encoding="utf-8-sig")
        where = path.name
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MappingError(f"`{where}` is not valid YAML: {exc}") from None
    return _parse(doc, where)


def load_mappings(refs: str | Path | Iterable[str | Path] | None) -> dict[str, TableMapping]:
    """Merge several mappings; a table mapped twice is an error."""
    if refs is None:
        return {}
    if isinstance(refs, str | Path):
        refs = [refs]
    merged: dict[str, TableMapping] = {}
    for ref in refs:
        for tname, tm in load_mapping(ref).items():
            if tname in merged:
                raise MappingError(f"table `{tname}` is mapped twice ({merged[tname].origin} and {tm.origin})")
            merged[tname] = tm
    return merged


def preset_names() -> Mapping[str, str]:
    return dict(PRESETS)
