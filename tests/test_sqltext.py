"""Tests of SQL quoting (kpi_helpers.sqltext), with hand-worked examples and a round trip through DuckDB."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpi_helpers.sqltext import ident, literal, literal_list


@pytest.mark.parametrize(
    ("name", "quoted"),
    [("leads", '"leads"'), ('a"b', '"a""b"'), ("Lead source", '"Lead source"'), ("it's", '"it\'s"'), ("", '""')],
    ids=["plain", "double-quote", "space", "single-quote", "empty"],
)
def test_ident(name: str, quoted: str) -> None:
    assert ident(name) == quoted


@pytest.mark.parametrize(
    ("value", "quoted"),
    [("it's", "'it''s'"), ('a"b', "'a\"b'"), ("", "''"), (None, "NULL"), (3, "'3'"), ("''", "''''''")],
    ids=["single-quote", "double-quote", "empty", "none", "number", "two-quotes"],
)
def test_literal(value: object, quoted: str) -> None:
    assert literal(value) == quoted


def test_literal_list() -> None:
    assert literal_list(["/data/", "/it's/"]) == "'/data/', '/it''s/'"
    assert literal_list([]) == ""


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30))
def test_quoted_text_stays_text_in_duckdb(text: str) -> None:
    con = duckdb.connect()
    assert con.execute(f"SELECT {literal(text)} AS {ident(text or 'x')}").fetchone() == (text,)
