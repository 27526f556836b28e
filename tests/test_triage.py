"""Batch triage: sorting, reports, dry run, conflicts, and crash safety (SIGKILL + re-run)."""

import csv
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ctmodels import io
from ctmodels import quality as Q
from ctmodels.cli import main
from ctmodels.phantoms import chest_phantom
from ctmodels.triage import discover_studies, run_triage, write_report
from synth import write_series

SP = (2.5, 0.8, 0.8)


def _tree(root: Path):
    """{relative path: sha256} of every file below root."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def studies_src(tmp_path_factory):
    """A folder of 5 studies: 2 pass, 1 fail, 1 abdomen-only, 1 broken zip (+ a stray text file)."""
    root = tmp_path_factory.mktemp("src")
    a = chest_phantom(SP, extent_mm=75, seed=21)
    b = chest_phantom((2.5, 1.6, 1.6), extent_mm=75, seed=22, trachea_mm=16)
    io.write_volume_nifti(a, SP, root / "pass_a.nii.gz")
    write_series(root / "pass_b", b, spacing=(2.5, 1.6, 1.6), kernel="B70f",
                 manufacturer="SIEMENS")
    c = chest_phantom(SP, extent_mm=75, seed=23)
    io.write_volume_nifti(Q.simulate_expiration(c, SP, 0.5).astype(np.int16), SP, root / "fail_c.nii.gz")
    io.write_volume_nifti(chest_phantom(SP, extent_mm=60, abdomen=True), SP, root / "abdomen_d.nii.gz")
    (root / "broken_e.zip").write_bytes(b"PK\x03\x04 not really")
    (root / "notes.txt").write_text("not a study")
    return root


@pytest.fixture
def studies(studies_src, tmp_path):
    import shutil

    dst = tmp_path / "in"
    shutil.copytree(studies_src, dst)
    return dst


@pytest.fixture(scope="module")
def checker():
    return Q.BreathHoldChecker.from_pretrained()


def test_discover_studies(studies):
    names = [p.name for p in discover_studies(studies)]
    assert names == ["abdomen_d.nii.gz", "broken_e.zip", "fail_c.nii.gz", "pass_a.nii.gz", "pass_b"]


def test_triage_moves_verified_studies_and_reports(studies, tmp_path, checker):
    before = _tree(studies)
    failed, passed = tmp_path / "failed", tmp_path / "passed"
    rep = run_triage(studies, failed, passed, move=True, checker=checker)
    verdicts = {r.study: r.verdict for r in rep.rows}
    assert verdicts == {"pass_a.nii.gz": "pass", "pass_b": "pass", "fail_c.nii.gz": "fail",
                        "abdomen_d.nii.gz": "undetermined", "broken_e.zip": "undetermined"}
    # moved with identical bytes, undetermined left in place, nothing lost
    assert _tree(failed) == {"fail_c.nii.gz": before["fail_c.nii.gz"]}
    assert set(_tree(passed)) == {"pass_a.nii.gz"} | {k for k in before if k.startswith("pass_b/")}
    assert sorted(p.name for p in studies.iterdir()) == ["abdomen_d.nii.gz", "broken_e.zip", "notes.txt"]
    after = {**_tree(studies), **_tree(failed), **_tree(passed)}
    assert after == before
    files = write_report(rep, failed.parent / "report")
    rows = list(csv.DictReader(open(files["csv"])))
    assert len(rows) == 5 and all(r["key"].startswith("S-") for r in rows)
    assert "PID-12345" not in files["csv"].read_text() and "Doe" not in files["csv"].read_text()
    assert files["html"].stat().st_size > 1000 and files["png"].read_bytes()[:4] == b"\x89PNG"
    # re-running is safe: nothing left to move, nothing changes
    rep2 = run_triage(studies, failed, passed, move=True, checker=checker)
    assert {r.verdict for r in rep2.rows} == {"undetermined"}
    assert {**_tree(studies), **_tree(failed), **_tree(passed)} == before


def test_dry_run_touches_nothing(studies, tmp_path, checker):
    before = _tree(studies)
    rep = run_triage(studies, tmp_path / "failed", None, dry_run=True, checker=checker)
    assert _tree(studies) == before and not (tmp_path / "failed").exists()
    assert [r.action for r in rep.rows if r.verdict == "fail"] == ["would move"]


def test_copy_mode_and_existing_target_is_not_overwritten(studies, tmp_path, checker):
    failed = tmp_path / "failed"
    failed.mkdir()
    (failed / "fail_c.nii.gz").write_bytes(b"someone else's file")
    rep = run_triage(studies, failed, None, move=True, checker=checker)
    row = [r for r in rep.rows if r.study == "fail_c.nii.gz"][0]
    assert row.verdict == "fail" and row.action.startswith("left in place") and "not overwritten" in row.action
    assert (failed / "fail_c.nii.gz").read_bytes() == b"someone else's file"
    assert (studies / "fail_c.nii.gz").exists()
    (failed / "fail_c.nii.gz").unlink()
    before = _tree(studies)
    run_triage(studies, failed, None, move=False, checker=checker)  # --copy
    assert _tree(studies) == before and (failed / "fail_c.nii.gz").exists()


KILLER = textwrap.dedent("""
    import os, signal, sys
    n = int(os.environ["KILL_AT_RENAME"])
    real = os.rename
    count = [0]
    def rename(a, b, *k, **kw):
        count[0] += 1
        if count[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(a, b, *k, **kw)
    os.rename = rename
    from ctmodels.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.parametrize("kill_at", [1, 2, 3, 4])
def test_killed_run_then_rerun_loses_and_duplicates_nothing(studies, tmp_path, kill_at):
    """SIGKILL at the n-th rename: after the copy is verified (1), after the source went to trash (2),
    in the next study (3, 4). The re-run must leave every study in exactly one place, bytes intact."""
    before = _tree(studies)
    failed, passed = tmp_path / "failed", tmp_path / "passed"
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    args = ["triage", str(studies), "--failed-dir", str(failed), "--passed-dir", str(passed), "--json"]
    env = {**os.environ, "KILL_AT_RENAME": str(kill_at)}
    r = subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == -9  # it was killed
    r2 = subprocess.run([sys.executable, "-m", "ctmodels", *args], capture_output=True, text=True, timeout=300)
    assert r2.returncode == 0, r2.stderr
    out = json.loads(r2.stdout)
    everywhere = {}
    for root in (studies, failed, passed):
        for k, v in _tree(root).items():
            if k in ("report.csv", "chart.html", "chart.png"):
                continue
            assert k not in everywhere, f"{k} is in two places"
            everywhere[k] = v
    assert everywhere == before
    assert not [p for p in failed.iterdir() if p.name.startswith(".ctmodels-")]
    assert not [p for p in studies.iterdir() if p.name.startswith(".ctmodels-")]
    assert out["counts"]["undetermined"] == 2


def test_cli_check_breath_hold_json_and_figure(studies, tmp_path, capsys):
    fig = tmp_path / "t.png"
    assert main(["check-breath-hold", str(studies / "fail_c.nii.gz"), "--json", "--save-figure", str(fig)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["verdict"] == "fail" and d["probability_fail"] > 0.5 and len(d["slices_used"]) >= 2
    assert set(d["features"]) >= {"area_mm2", "circularity", "ap_ratio", "solidity", "posterior_bowing"}
    assert fig.read_bytes()[:4] == b"\x89PNG"
    assert main(["check-breath-hold", str(studies / "pass_b")]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "lung kernel" in out
    assert main(["check-breath-hold", str(studies / "abdomen_d.nii.gz"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "undetermined"


def test_cli_triage_errors(tmp_path, capsys):
    assert main(["triage", str(tmp_path / "none"), "--failed-dir", str(tmp_path / "f")]) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["triage", str(tmp_path / "empty"), "--failed-dir", str(tmp_path / "f")]) == 2
    assert "no studies found" in capsys.readouterr().err
