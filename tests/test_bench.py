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
    bh = [r for r in d["rows"] if r["task"].startswith("breath-hold verdict")][0]
    assert bh["naive"] > 0 and bh["ratio"] > 0
    assert d["targets"] == []  # tiny runs are not judged


def test_targets_are_judged_on_full_runs():
    from ctmodels.bench import check_targets, format_table

    rows = [{"task": "300-slice 512x512 study: read DICOM + segment + grade", "fast": 31.0, "naive": 120.0,
             "unit": "s", "ratio": 120 / 31, "peak_gb": 2.0},
            {"task": "breath-hold verdict, 300-slice study: read DICOM + check", "fast": 4.0, "naive": 9.0,
             "unit": "s", "ratio": 2.25, "peak_gb": 0.5}]
    res = {"info": {"device": "cpu x2", "torch_threads": 2, "tiny": False}, "rows": rows}
    met = {t["target"].split(" (")[0]: t["met"] for t in check_targets(res)}
    assert met == {"study seconds": False, "study peak memory GB": True,
                   "study speedup over the naive path": True, "breath-hold verdict seconds": True}
    assert "NOT MET" in format_table(res)
    gpu = {"info": {"device": "NVIDIA H100", "torch_threads": 2, "tiny": False},
           "rows": [{"task": "lesion slices/s 256x256 batch 256", "fast": 900.0, "naive": 50.0,
                     "unit": "slices/s", "ratio": 18.0}]}
    assert [(t["target"], t["met"]) for t in check_targets(gpu)] == [("GPU lesion slices/s", False)]


def test_gpu_check_script_runs_its_timing_on_the_cpu(tmp_path):
    """bench/gpu_check.py is run on lent GPUs only; its code paths are kept working here."""
    from conftest import bench_script

    gc = bench_script("gpu_check")
    rows = gc.throughput(n=2, batch=2, device="cpu", fp16_only=True)
    assert [(r["what"], r["channels_last"]) for r in rows] == [
        ("predict 512x512 batch 2", True), ("predict 256x256 batch 2", True),
        ("predict 512x512 batch 2", False), ("predict 256x256 batch 2", False)]
    assert all(r["slices_per_s"] > 0 for r in rows)


def test_gpu_anchor_script_runs_its_timing_on_the_cpu():
    """bench/gpu_anchor.py times the host-side masks on lent GPUs; its code paths are kept working here."""
    from conftest import bench_script

    from ctmodels.lesion import LesionSegmenter

    ga = bench_script("gpu_anchor")
    vol = ga.study(slices=4)
    assert vol.shape == (4, 512, 512) and vol.is_hu
    rows = ga.timings(LesionSegmenter.from_pretrained(device="cpu"), vol, repeat=1)
    assert [(r["body_mask"], r["air_anchor"]) for r in rows] == [(False, False), (True, False), (True, True)]
    assert all(r["seconds"] > 0 and 0 <= r["involved_pct"] <= 100 for r in rows)
