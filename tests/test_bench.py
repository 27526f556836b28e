"""The benchmark runs end to end on a tiny size (targets live in the benchmark, not here)."""

import json

import pytest

from ctmodels.cli import main

pytestmark = pytest.mark.slow


def test_bench_tiny_prints_table_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--tiny", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "lesion slices/s" in text and "speedup" in text and "breath-hold verdict" in text
    d = json.loads(out.read_text())
    assert d["info"]["tiny"] is True
    for row in d["rows"]:
        assert row["fast"] > 0
    study = [r for r in d["rows"] if "study" in r["task"] and "breath" not in r["task"]][0]
    assert study["naive"] > 0 and study["peak_gb"] > 0
