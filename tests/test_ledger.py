"""CSV tables kept across runs (ctmodels/ledger.py): what an earlier run left, read back; written atomically."""

import os
import re

import pytest

from ctmodels import ledger
from ctmodels.atomic import PARTIAL
from ctmodels.errors import InvalidInputError


def _read(path):
    return ledger.earlier_rows(path, ("input", "stem"), "a ctmodels segment results table", "another --out folder",
                               InvalidInputError)


def test_rows_round_trip_with_the_columns_of_every_row(tmp_path):
    table = tmp_path / "results.csv"
    assert _read(table) == []
    ledger.write_rows(table, [{"input": "a.png", "stem": "a"}, {"input": "b.png", "stem": "b", "note": "é, \"x\""}],
                      ["input", "stem"])
    assert _read(table) == [{"input": "a.png", "stem": "a", "note": ""},
                            {"input": "b.png", "stem": "b", "note": "é, \"x\""}]
    assert not [p for p in tmp_path.iterdir() if p.name != "results.csv"]


def test_a_table_saved_again_by_a_spreadsheet_with_a_bom_is_read(tmp_path):
    """Excel's "CSV UTF-8" adds a byte-order mark; before, the first column then did not match and the table was
    refused as not ours."""
    (tmp_path / "results.csv").write_bytes("\ufeffinput,stem\na.png,a\n".encode("utf-8"))
    assert _read(tmp_path / "results.csv") == [{"input": "a.png", "stem": "a"}]


@pytest.mark.parametrize("content, says", [
    (b"case,score\n1,2\n", "is not a ctmodels segment results table (no input, stem columns)"),
    (b"\x8d\xff\x00 not text", "could not be read"),
    (b"input,stem\n" + b"x" * 200_000 + b",a\n", "could not be read"),
    (None, "is not a file"),
])
def test_what_is_not_such_a_table_is_an_error_and_left_as_it_is(tmp_path, content, says):
    table = tmp_path / "results.csv"
    if content is None:
        table.mkdir()
    else:
        table.write_bytes(content)
    with pytest.raises(InvalidInputError, match=re.escape(says)) as e:
        _read(table)
    assert str(table) in str(e.value) and "\n" not in str(e.value)
    assert table.is_dir() if content is None else table.read_bytes() == content


def test_a_write_that_fails_leaves_the_earlier_table_whole(tmp_path, monkeypatch):
    table = tmp_path / "results.csv"
    ledger.write_rows(table, [{"input": "a.png", "stem": "a"}], ["input", "stem"])
    before = table.read_bytes()

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError):
        ledger.write_rows(table, [{"input": "b.png", "stem": "b"}], ["input", "stem"])
    assert table.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]
    # one a killed write left is removed by the next read
    (tmp_path / f"{PARTIAL}results.csv-0123abcd").write_text("input,st")
    assert _read(table) == [{"input": "a.png", "stem": "a"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


def test_rows_added_one_at_a_time_and_a_row_cut_short_by_a_kill(tmp_path):
    table = tmp_path / "report.csv"
    columns = ledger.write_rows(table, [{"input": "a.png", "stem": "a"}], ["input", "stem"])
    ledger.append_row(table, {"input": "b, \"c\".png", "stem": "b", "other": "not a column"}, columns)
    assert _read(table) == [{"input": "a.png", "stem": "a"}, {"input": 'b, "c".png', "stem": "b"}]
    before = table.read_bytes()
    for cut in ('d.png,"d', "d.png"):  # the kill came in the middle of this row
        table.write_bytes(before + cut.encode())
        assert _read(table) == [{"input": "a.png", "stem": "a"}, {"input": 'b, "c".png', "stem": "b"}], cut
    table.write_bytes(before + b"d.png,d")  # a whole row an editor saved without a line end is kept
    assert _read(table)[-1] == {"input": "d.png", "stem": "d"}
