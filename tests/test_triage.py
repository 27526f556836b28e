"""Batch triage: sorting, reports, dry run, conflicts, and crash safety (SIGKILL + re-run)."""

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ctmodels import io
from ctmodels import quality as Q
from ctmodels import triage as T
from ctmodels.cli import main
from ctmodels.phantoms import chest_phantom
from ctmodels.errors import InvalidInputError
from ctmodels.triage import discover_studies, run_triage, triage_archive, write_report
from synth import itk_image, write_series

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
    assert rep.skipped == ["1 file(s) that are not studies (notes.txt): expected subfolders, zips or volume files"]
    after = {**_tree(studies), **_tree(failed), **_tree(passed)}
    assert after == before
    files = write_report(rep, failed.parent / "report")
    rows = list(csv.DictReader(open(files["csv"])))
    assert len(rows) == 5 and all(r["key"].startswith("S-") for r in rows)
    # where the measured slices lie on the head-foot axis (S, mm), to find them in a viewer: the DICOM series
    # starts at -300 mm, the NIfTI (write_volume_nifti) at 0
    by = {r["study"]: r for r in rows}
    for name, origin, where in (("pass_b", -300.0, passed / "pass_b"), ("pass_a.nii.gz", 0.0, passed / "pass_a.nii.gz")):
        used = checker.predict(io.read_ct(where, purpose="quality")).slices_used
        assert by[name]["slices_mm"] == f"{origin + 2.5 * min(used):.1f}..{origin + 2.5 * max(used):.1f}"
    assert by["broken_e.zip"]["slices_mm"] == ""
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
    # the report is the whole batch's: one row per study, none left unfinished, though the first run wrote its
    # rows and the second checked only what was left (before, it held only the second run's rows)
    rows = list(csv.DictReader(open(failed / "report.csv", encoding="utf-8")))
    assert sorted(r["study"] for r in rows) == ["abdomen_d.nii.gz", "broken_e.zip", "fail_c.nii.gz",
                                                "pass_a.nii.gz", "pass_b"]
    by = {r["study"]: r for r in rows}
    assert by["fail_c.nii.gz"]["verdict"] == "fail" and by["fail_c.nii.gz"]["action"].startswith("moved")
    assert by["pass_a.nii.gz"]["action"].startswith("moved") and by["pass_b"]["action"].startswith("moved")
    assert by["fail_c.nii.gz"]["destination"] == str(failed / "fail_c.nii.gz")
    assert out["report_counts"] == {"pass": 2, "fail": 1, "undetermined": 2}


def test_the_report_keeps_every_run_of_a_batch(studies, tmp_path, checker, capsys):
    """report.csv is the batch's ledger. Before, each run overwrote it with its own rows, so that a re-run (after
    new studies came in, or after a killed run) lost the verdicts of the studies sorted before, and the chart
    counted only the last run."""
    failed, passed = tmp_path / "failed", tmp_path / "passed"
    args = ["triage", str(studies), "--failed-dir", str(failed), "--passed-dir", str(passed)]
    assert main(args) == 0
    first = list(csv.DictReader(open(failed / "report.csv", encoding="utf-8")))
    assert len(first) == 5 and not [p for p in failed.iterdir() if p.name.startswith(".ctmodels-")]
    io.write_volume_nifti(chest_phantom(SP, extent_mm=75, seed=24), SP, studies / "pass_f.nii.gz")
    capsys.readouterr()
    assert main(args + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["counts"] == {"pass": 1, "fail": 0, "undetermined": 2} and out["earlier_rows"] == 5
    rows = list(csv.DictReader(open(failed / "report.csv", encoding="utf-8")))
    # the two undetermined studies were checked again: their new rows replace the old ones
    assert sorted(r["study"] for r in rows) == ["abdomen_d.nii.gz", "broken_e.zip", "fail_c.nii.gz",
                                                "pass_a.nii.gz", "pass_b", "pass_f.nii.gz"]
    assert {r["study"]: r for r in rows}["fail_c.nii.gz"] == {r["study"]: r for r in first}["fail_c.nii.gz"]
    assert out["report_counts"] == {"pass": 3, "fail": 1, "undetermined": 2}
    assert "3 (50%)" in (failed / "chart.html").read_text()  # the chart counts the whole batch
    assert main(args) == 0
    assert "6 studies in all, 3 passed, 1 failed, 2 undetermined" in capsys.readouterr().out
    # a move a killed run had begun and the re-run's recovery finished (the source was in the trash): its row,
    # written as unfinished, says so
    moved = [dict(r, action="unfinished: moving") if r["study"] == "pass_f.nii.gz" else r for r in rows]
    with open(failed / "report.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(moved)
    (studies / ".ctmodels-trash-pass_f.nii.gz").write_bytes((passed / "pass_f.nii.gz").read_bytes())
    assert main(args + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "finished removing pass_f.nii.gz" in out["notes"][0]
    rows = {r["study"]: r for r in csv.DictReader(open(failed / "report.csv", encoding="utf-8"))}
    assert len(rows) == 6 and rows["pass_f.nii.gz"]["action"] == "moved (finished by a later run)"


def test_cli_sorts_undetermined_studies_out_when_asked(studies, tmp_path, capsys):
    """--undetermined-dir moves the studies that could not be judged (verified, as any other) for a person to look
    at; without it they stay and are checked again by the next run."""
    before = _tree(studies)
    look = tmp_path / "look"
    args = ["triage", str(studies), "--failed-dir", str(tmp_path / "failed"), "--undetermined-dir", str(look)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in look.iterdir()) == ["abdomen_d.nii.gz", "broken_e.zip"]
    assert _tree(look) == {k: v for k, v in before.items() if k in ("abdomen_d.nii.gz", "broken_e.zip")}
    assert "undetermined (moved): broken_e.zip: " in out
    assert sorted(p.name for p in studies.iterdir()) == ["notes.txt", "pass_a.nii.gz", "pass_b"]
    # a report folder inside the input folder is not a study: not checked, not moved while it is written
    report = studies / "reports"
    assert main(args + ["--report-dir", str(report)]) == 0
    assert sorted(p.name for p in look.iterdir()) == ["abdomen_d.nii.gz", "broken_e.zip"]
    capsys.readouterr()
    assert main(args + ["--report-dir", str(report), "--json"]) == 0
    assert [r["study"] for r in json.loads(capsys.readouterr().out)["studies"]] == ["pass_a.nii.gz", "pass_b"]
    assert (report / "report.csv").exists() and sorted(p.name for p in look.iterdir()) == ["abdomen_d.nii.gz",
                                                                                           "broken_e.zip"]


def test_a_study_that_conflicts_with_one_sorted_before_keeps_both_rows_once(studies, tmp_path, checker):
    """Another study of the name of one sorted before (same file name, other content) is left in place, and its
    row stands beside the sorted one's. Each re-run replaces its own row: the report does not grow a row per run."""
    failed, report = tmp_path / "failed", tmp_path / "r"
    run_triage(studies, failed, None, checker=checker, report_dir=report)
    c = chest_phantom(SP, extent_mm=75, seed=25)
    io.write_volume_nifti(Q.simulate_expiration(c, SP, 0.5).astype(np.int16), SP, studies / "fail_c.nii.gz")
    for _ in range(2):
        rep = run_triage(studies, failed, None, checker=checker, report_dir=report)
        assert [r.action for r in rep.rows if r.study == "fail_c.nii.gz"][0].startswith("left in place")
        rows = [r for r in csv.DictReader(open(report / "report.csv", encoding="utf-8"))
                if r["study"] == "fail_c.nii.gz"]
        assert [(r["action"].split(":")[0], r["destination"]) for r in rows] == [
            ("moved", str(failed / "fail_c.nii.gz")), ("left in place", "")]


def test_report_rows_merge_as_their_studies_were_placed():
    """merge_rows reads the report in the order its rows were written, across runs and killed runs."""
    from ctmodels.triage import merge_rows

    def row(action, dest="", study="x.nii.gz"):
        return {"key": "S-1", "study": study, "action": action, "destination": dest}

    def merged(*rows):
        return [(r["action"], r["destination"]) for r in merge_rows(list(rows))]

    # left in place, then checked again and moved: one row, the last
    assert merged(row("left in place"), row("unfinished: moving", "f/x"), row("moved", "f/x")) == [("moved", "f/x")]
    # killed while moving: the unfinished row stands (a re-run marks it or replaces it)
    assert merged(row("left in place"), row("unfinished: moving", "f/x")) == [("unfinished: moving", "f/x")]
    # another study of that name conflicts with the one moved before: both rows, once each, however many runs
    conflict = [row("unfinished: moving", "f/x"), row("left in place: f/x exists with different content")]
    assert merged(row("moved", "f/x"), *conflict, *conflict) == [
        ("moved", "f/x"), ("left in place: f/x exists with different content", "")]
    # copied again to the same place (--copy): one row; to another place (its verdict changed): both copies' rows
    assert merged(row("copied", "f/x"), row("unfinished: copying", "f/x"), row("already in place", "f/x")) == [
        ("already in place", "f/x")]
    assert merged(row("copied", "f/x"), row("unfinished: copying", "p/x"), row("copied", "p/x")) == [
        ("copied", "f/x"), ("copied", "p/x")]
    # a study of that name in another input folder is another study; a row of a report from before folders were
    # recorded is of any folder
    one, two = ({**row("left in place"), "folder": f} for f in ("/in/one", "/in/two"))
    assert [r["folder"] for r in merge_rows([one, two, dict(one)])] == ["/in/two", "/in/one"]
    assert [r.get("folder") for r in merge_rows([row("left in place"), one])] == ["/in/one"]
    # other studies are untouched, and a study's row comes where it was last written
    assert [r["study"] for r in merge_rows([row("left in place"), row("moved", "f/y", "y"), row("moved", "f/x")])] \
        == ["y", "x.nii.gz"]


def test_a_second_run_on_a_folder_being_sorted_stops_before_touching_it(studies, tmp_path, capsys):
    """Two runs on one folder at once (a scheduled run that overlaps the last) raced for the same studies and
    report. Now a run holds the folder's lock: the second stops with one line, having touched nothing. The lock
    goes when the run ends (or dies: see the SIGKILL test), and a dry run takes none."""
    from ctmodels.triage import LOCK, folder_lock

    before = _tree(studies)
    failed = tmp_path / "failed"
    args = ["triage", str(studies), "--failed-dir", str(failed)]
    with folder_lock(studies):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "another triage run is sorting this folder" in err
        assert len(err.strip().splitlines()) == 1 and not failed.exists()
        assert main(args + ["--dry-run"]) == 0
    assert _tree(studies) == before  # the lock file went with the lock
    assert main(args) == 0 and (failed / "fail_c.nii.gz").exists() and not (studies / LOCK).exists()
    (studies / LOCK).write_bytes(b"")  # left by a run that was killed: not a lock
    assert main(args) == 0 and not (studies / LOCK).exists()


def test_runs_over_two_folders_into_one_report_take_turns(studies_src, tmp_path, capsys):
    """Two runs over two inboxes into one failed folder (two scanners' inboxes, say) each read report.csv when they
    started and wrote it whole at the end, so the run that ended last dropped the other's rows. Now a run waits
    for the report folder's lock (saying so) and writes its report once the other has finished: here the second
    run, in its own process, waits while this test holds the lock, and finishes with the first run's rows kept."""
    import shutil
    import time

    from ctmodels.triage import REPORT_LOCK, report_lock

    one, two, failed = tmp_path / "one", tmp_path / "two", tmp_path / "failed"
    for inbox, name in ((one, "fail_c.nii.gz"), (two, "pass_a.nii.gz")):
        inbox.mkdir()
        shutil.copy(studies_src / name, inbox / name)
    assert main(["triage", str(one), "--failed-dir", str(failed)]) == 0
    capsys.readouterr()
    with report_lock(failed):
        run = subprocess.Popen([sys.executable, "-m", "ctmodels", "triage", str(two), "--failed-dir", str(failed)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        said, start = "", time.monotonic()
        while "waiting for it to finish" not in said and time.monotonic() - start < 120 and run.poll() is None:
            said += run.stderr.readline()
        assert "another triage run is writing its report here; waiting for it to finish" in said
        time.sleep(1)
        assert run.poll() is None  # still waiting: it has written nothing
        with open(failed / "report.csv", newline="") as f:
            assert [r["study"] for r in csv.DictReader(f)] == ["fail_c.nii.gz"]
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    with open(failed / "report.csv", newline="") as f:
        assert sorted(r["study"] for r in csv.DictReader(f)) == ["fail_c.nii.gz", "pass_a.nii.gz"]
    assert not (failed / REPORT_LOCK).exists()


def test_studies_of_one_name_in_two_folders_keep_a_row_each(studies_src, tmp_path, checker):
    """Two inboxes sorted into one failed folder, each with a volume file named case.nii.gz (no UID to tell them
    apart): the second run's row replaced the first's, and the report counted 1 study of the 2 checked. Each row
    now says which input folder it was checked in; a re-run of a folder replaces that folder's row only."""
    import shutil

    one, two, failed = tmp_path / "one", tmp_path / "two", tmp_path / "failed"
    for inbox, name in ((one, "pass_a.nii.gz"), (two, "fail_c.nii.gz"), (two, "pass_a.nii.gz")):
        inbox.mkdir(exist_ok=True)
        shutil.copy(studies_src / name, inbox / ("case.nii.gz" if name == "pass_a.nii.gz" else name))
    (two / "case.nii.gz").write_bytes(io.write_volume_nifti(chest_phantom(SP, extent_mm=75, seed=5), SP,
                                                            tmp_path / "other.nii.gz").read_bytes())
    for inbox in (one, two, one):
        rep = run_triage(inbox, failed, None, checker=checker, report_dir=failed)
    rows = list(csv.DictReader(open(failed / "report.csv", encoding="utf-8")))
    assert sorted((r["study"], r["folder"]) for r in rows) == [
        ("case.nii.gz", str(one)), ("case.nii.gz", str(two)), ("fail_c.nii.gz", str(two))]
    assert rep.report_counts() == {"pass": 2, "fail": 1, "undetermined": 0}
    assert len({r["key"] for r in rows if r["study"] == "case.nii.gz"}) == 1  # only the folder tells them apart
    # a report written before folders were recorded: its row of the study is replaced, not kept beside the new one
    legacy = [{k: v for k, v in r.items() if k != "folder"} for r in rows if r["folder"] == str(one)]
    (failed / "report.csv").write_text(",".join(legacy[0]) + "\n" + ",".join(
        f'"{v}"' for v in legacy[0].values()) + "\n", encoding="utf-8")
    run_triage(one, failed, None, checker=checker, report_dir=failed)
    rows = list(csv.DictReader(open(failed / "report.csv", encoding="utf-8")))
    assert [(r["study"], r["folder"]) for r in rows] == [("case.nii.gz", str(one))]


def test_a_report_csv_that_is_not_a_triage_report_stops_the_run(studies, tmp_path, checker, capsys):
    failed = tmp_path / "failed"
    failed.mkdir()
    theirs = "patient,score\nA,3\n"
    (failed / "report.csv").write_text(theirs)
    before = _tree(studies)
    assert main(["triage", str(studies), "--failed-dir", str(failed)]) == 2
    err = capsys.readouterr().err
    assert "report.csv: is not a ctmodels triage report" in err and "not overwritten" in err
    assert len(err.strip().splitlines()) == 1
    assert (failed / "report.csv").read_text() == theirs and _tree(studies) == before
    assert sorted(p.name for p in failed.iterdir()) == ["report.csv"]
    # copied twice (--copy): one row per study, not two
    report = tmp_path / "r"
    for _ in range(2):
        run_triage(studies, failed, None, move=False, checker=checker, report_dir=report)
    assert len(list(csv.DictReader(open(report / "report.csv", encoding="utf-8")))) == 5


@pytest.mark.parametrize("where, said", [
    ("fig.txt", "expected a figure file name ending in .png"),
    ("study", "expected a figure file name ending in .png"),  # the study itself, a .nii.gz
    ("in_study", "is the study or lies inside it"),
    ("missing/fig.png", "no such folder"),
    ("a_folder.png", "is a folder, expected a figure file name"),
])
def test_a_figure_path_that_cannot_be_written_is_one_line_before_any_work(studies, tmp_path, capsys, monkeypatch,
                                                                         where, said):
    """--save-figure with a name that is not an image's (fig.txt, or the study's own file) was 'internal error:
    ValueError: unknown file extension' after the check had run; a missing folder an OSError after it; a name
    inside the study folder added a file to the study. Each is one line now, before the study is read."""
    import ctmodels.quality as quality

    study = studies / "pass_b"
    (tmp_path / "a_folder.png").mkdir()
    fig = {"study": studies / "fail_c.nii.gz", "in_study": study / "fig.png"}.get(where, tmp_path / where)
    target = studies / "fail_c.nii.gz" if where == "study" else study
    before = _tree(studies)
    monkeypatch.setattr(quality.BreathHoldChecker, "predict", lambda *a, **k: pytest.fail("the study was checked"))
    assert main(["check-breath-hold", str(target), "--save-figure", str(fig)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {fig}: ") and said in err and err.count("\n") == 1
    assert _tree(studies) == before


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
    assert capsys.readouterr().err == (f"error: {tmp_path / 'none'}: no such folder, expected a folder with one study "
                                       "per subfolder or file\n")  # it said "not a folder", as for a file
    (tmp_path / "a.npy").write_bytes(b"")
    assert main(["triage", str(tmp_path / "a.npy"), "--failed-dir", str(tmp_path / "f")]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'a.npy'}: not a folder, expected a folder with one study "
                                       "per subfolder or file\n")
    assert main(["score", str(tmp_path / "none"), str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'none'}: no such folder, expected a folder of masks or a "
                                       "zip of one\n")
    (tmp_path / "empty").mkdir()
    assert main(["triage", str(tmp_path / "empty"), "--failed-dir", str(tmp_path / "f")]) == 2
    assert "no studies found" in capsys.readouterr().err


def test_loose_slices_of_a_series_are_not_studies(tmp_path, checker, capsys):
    """A study's slices passed as the folder of studies: one clear error, not a verdict per slice. Beside
    studies they are reported and left alone; a DICOM file of its own series is still a study."""
    import shutil

    from pydicom.data import get_testdata_file

    vol = chest_phantom(SP, extent_mm=75, seed=21)
    flat = tmp_path / "flat"
    n = len(write_series(flat, vol, spacing=SP, kernel="B70f", manufacturer="SIEMENS"))
    with pytest.raises(InvalidInputError, match=f"holds {n} loose DICOM slices, expected a folder with one study per subfolder"):
        run_triage(flat, tmp_path / "f", checker=checker)
    assert main(["triage", str(flat), "--failed-dir", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(flat) in err and "one study per subfolder" in err
    assert not (tmp_path / "f").exists()
    bare = tmp_path / "pacs"  # a PACS export: the same slices without a suffix, and a DICOMDIR
    shutil.copytree(flat, bare)
    for i, f in enumerate(sorted(bare.iterdir())):
        f.rename(bare / f"IM{i:06d}")
    shutil.copy(get_testdata_file("DICOMDIR"), bare / "DICOMDIR")
    with pytest.raises(InvalidInputError, match=f"holds {n} loose DICOM slices"):
        run_triage(bare, tmp_path / "f", checker=checker)
    shutil.copy(get_testdata_file("CT_small.dcm"), flat / "single.dcm")
    io.write_volume_nifti(vol, SP, flat / "pass_a.nii.gz")
    (flat / "readme.txt").write_text("x")
    before = _tree(flat)
    rep = run_triage(flat, tmp_path / "f", checker=checker)
    assert [(r.study, r.verdict) for r in rep.rows] == [("pass_a.nii.gz", "pass"), ("single.dcm", "undetermined")]
    assert len(rep.skipped) == 2 and rep.skipped[0].startswith(f"{n} loose DICOM file(s) (")
    assert "slices of a series" in rep.skipped[0] and "(readme.txt)" in rep.skipped[1]
    assert _tree(flat) == before
    assert main(["triage", str(flat), "--failed-dir", str(tmp_path / "f"), "--dry-run"]) == 0
    assert capsys.readouterr().out.count("not checked: ") == 2


def test_series_subfolders_of_one_study_are_one_study(tmp_path, checker, capsys):
    """A PACS export lays a study out as one subfolder per series (here the lung and the soft-tissue
    kernel). Given as the folder of studies: one clear error, not a verdict per series; beside other
    studies: listed as not checked and left alone; one level up: one study, moved whole."""
    vol = chest_phantom(SP, extent_mm=75, seed=21)
    study = tmp_path / "ward" / "study"
    for sub, kernel, number in (("lung", "B70f", 3), ("soft", "B30f", 2)):
        write_series(study / sub, vol, spacing=SP, kernel=kernel, manufacturer="SIEMENS", series_number=number,
                     study_uid="1.2.826.0.1.3680043.8.498.77")
    with pytest.raises(InvalidInputError, match="holds 2 subfolders of series of one study"):
        run_triage(study, tmp_path / "f", checker=checker)
    rep = run_triage(study.parent, tmp_path / "f", tmp_path / "p", checker=checker)
    assert [(r.study, r.verdict) for r in rep.rows] == [("study", "pass")] and rep.skipped == []
    assert sorted(q.name for q in (tmp_path / "p" / "study").iterdir()) == ["lung", "soft"]  # moved whole
    io.write_volume_nifti(vol, SP, tmp_path / "p" / "study" / "other.nii.gz")
    rep = run_triage(tmp_path / "p" / "study", tmp_path / "f", checker=checker)
    assert [r.study for r in rep.rows] == ["other.nii.gz"]
    assert rep.skipped == ["2 subfolders (lung, soft) hold series of one study (the same StudyInstanceUID): put "
                           "them in one folder to check them as one study"]
    zp = tmp_path / "export.zip"
    with zipfile.ZipFile(zp, "w") as zf:
        for f in sorted((tmp_path / "p" / "study").rglob("*.dcm")):
            zf.write(f, str(f.relative_to(tmp_path / "p" / "study")))
    rep, _ = triage_archive(zp, tmp_path / "work", checker)
    assert [(r.study, r.verdict) for r in rep.rows] == [("export", "pass")]


@pytest.mark.parametrize("layout", ["folder", "flat"])
def test_a_zip_of_one_series_is_one_study_under_the_users_names(tmp_path, checker, layout):
    """The app's batch mode given one study's zip (its slices in a folder, or flat): one study, not one per
    slice, and the report and the sorted zip use the names in the upload, not the extraction's safe names."""
    files = write_series(tmp_path / "s", chest_phantom(SP, extent_mm=75, seed=21), spacing=SP, kernel="B70f",
                         manufacturer="SIEMENS", names="instance")
    zp = tmp_path / "upload.zip"
    with zipfile.ZipFile(zp, "w") as zf:
        for f in files:
            zf.write(f, ("case 7/" if layout == "folder" else "") + f.name)
        zf.writestr("__MACOSX/._IM0000.dcm", b"macOS metadata")
    rep, archive = triage_archive(zp, tmp_path / "work", checker, name="My scan")
    study = "case_7" if layout == "folder" else "My_scan"
    assert [(r.study, r.verdict) for r in rep.rows] == [(study, "pass")] and rep.skipped == []
    names = [n for n in zipfile.ZipFile(archive).namelist() if n.endswith(".dcm") and "MACOSX" not in n]
    assert sorted(names) == sorted(f"passed/{study}/{f.name}" for f in files)


def test_the_sorted_zip_gives_back_every_file_of_the_upload(tmp_path, checker):
    """Studies sorted by verdict, and whatever was not a study under not_checked/ as it was in the zip:
    every uploaded file comes back byte for byte (macOS's __MACOSX metadata aside)."""
    vols = {"a": chest_phantom(SP, extent_mm=75, seed=21),
            "b": Q.simulate_expiration(chest_phantom(SP, extent_mm=75, seed=23), SP, 0.5).astype(np.int16)}
    zp, sent = tmp_path / "batch.zip", []
    with zipfile.ZipFile(zp, "w") as zf:
        for name, vol in vols.items():
            zf.write(io.write_volume_nifti(vol, SP, tmp_path / f"{name}.nii.gz"), f"ward 3/{name}.nii.gz")
        zf.writestr("ward 3/notes.txt", "not a study")
        zf.writestr("readme.txt", "read me")
        zf.writestr("__MACOSX/ward 3/._a.nii.gz", "macOS metadata")
        zf.writestr("ward 3/c.nii.gz", "not a NIfTI file")
        sent = [zf.read(i) for i in zf.infolist() if not i.filename.startswith("__MACOSX")]
    rep, archive = triage_archive(zp, tmp_path / "work", checker)
    assert {r.study: r.verdict for r in rep.rows} == {"a.nii.gz": "pass", "b.nii.gz": "fail",
                                                      "c.nii.gz": "undetermined"}
    assert len(rep.skipped) == 2 and "(readme.txt)" in rep.skipped[0] and "(notes.txt)" in rep.skipped[1]
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        back = [zf.read(n) for n in names if not n.startswith(("report.csv", "chart."))]
        report = list(csv.DictReader(zf.read("report.csv").decode().splitlines()))
    assert sorted(back) == sorted(sent)
    assert {"passed/a.nii.gz", "failed/b.nii.gz", "not_checked/readme.txt", "not_checked/ward_3/notes.txt"} <= set(names)
    # the report names where each study lies in the zip, not in the server's working folder
    assert {r["study"]: r["destination"] for r in report} == {"a.nii.gz": "passed/a.nii.gz",
                                                             "b.nii.gz": "failed/b.nii.gz",
                                                             "c.nii.gz": "undetermined/c.nii.gz"}
    assert str(tmp_path) not in json.dumps(report) and {r["action"] for r in report} == {"moved"}
    assert report[-1]["reason"].startswith("ward_3/c.nii.gz: not a readable NIfTI file")  # named as in the zip


def test_report_is_pseudonymous_unless_patient_ids_are_opted_in(studies, tmp_path, checker, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    rep = run_triage(studies, tmp_path / "failed", None, move=False, checker=checker)
    plain = write_report(rep, tmp_path / "r1")["csv"].read_text()
    assert "PID-12345" not in plain and "Doe" not in plain and "patient_id" not in plain
    rep = run_triage(studies, tmp_path / "failed2", None, move=False, checker=checker, include_patient_ids=True)
    rows = {r["study"]: r for r in csv.DictReader(open(write_report(rep, tmp_path / "r2")["csv"]))}
    assert rows["pass_b"]["patient_id"] == "PID-12345" and rows["pass_b"]["patient_name"] == "Doe^Jane"
    assert rows["pass_a.nii.gz"]["patient_id"] == ""  # NIfTI carries no identity
    assert "PID-12345" not in caplog.text and "Doe" not in caplog.text  # logs never do
    assert main(["triage", str(studies), "--failed-dir", str(tmp_path / "f3"), "--copy", "--json",
                 "--include-patient-ids"]) == 0


def test_a_study_with_a_header_value_that_does_not_decode_is_still_triaged(studies, tmp_path, checker):
    """The first file of a DICOM study has a StudyInstanceUID and a PatientName whose VR is corrupt (pydicom raises
    NotImplementedError when they are first used). Before, `triage` stopped with an internal error; now the
    study is judged as before, and the opted-in identity comes from the next file."""
    from test_bad_inputs import _undecodable_value

    first = sorted((studies / "pass_b").iterdir())[0]
    _undecodable_value(first, b"\x20\x00\x0d\x00UI")
    _undecodable_value(first, b"\x10\x00\x10\x00PN")
    rep = run_triage(studies, tmp_path / "failed", None, move=False, checker=checker, include_patient_ids=True)
    row = {r.study: r for r in rep.rows}["pass_b"]
    assert row.verdict == "pass"
    rows = {r["study"]: r for r in csv.DictReader(open(write_report(rep, tmp_path / "r")["csv"]))}
    assert rows["pass_b"]["patient_name"] == "Doe^Jane"


def test_read_only_source_keeps_the_source_and_the_verified_copy(studies, tmp_path, checker, monkeypatch):
    """A source that cannot be renamed (read-only share; chmod does not stop root, so it is injected)."""
    import ctmodels.triage as T

    real = os.rename

    def rename(a, b, *k, **kw):
        if Path(a).parent == studies:
            raise PermissionError(13, "Read-only file system", str(a))
        return real(a, b, *k, **kw)

    before = _tree(studies)
    monkeypatch.setattr(T.os, "rename", rename)
    failed = tmp_path / "failed"
    rep = run_triage(studies, failed, None, move=True, checker=checker)
    row = [r for r in rep.rows if r.study == "fail_c.nii.gz"][0]
    assert row.action.startswith("copied; source kept") and "Read-only" in row.action
    assert _tree(studies) == before
    assert _tree(failed)["fail_c.nii.gz"] == before["fail_c.nii.gz"]
    rep = run_triage(studies, failed, None, move=True, checker=checker)  # safe to re-run
    assert _tree(studies) == before and [p.name for p in failed.iterdir()] == ["fail_c.nii.gz"]


def test_full_disk_leaves_no_partial_copy_and_loses_nothing(studies, tmp_path, checker, monkeypatch):
    """The disk fills up halfway through a copy (injected ENOSPC); then space is freed and it is re-run."""
    import errno
    import shutil


    def full(fsrc, fdst, length=0):
        fdst.write(fsrc.read(1000))
        raise OSError(errno.ENOSPC, "No space left on device")

    before = _tree(studies)
    failed, passed = tmp_path / "failed", tmp_path / "passed"
    monkeypatch.setattr(shutil, "copyfileobj", full)
    monkeypatch.setattr(shutil, "_fastcopy_sendfile", lambda *a, **k: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device")), raising=False)
    rep = run_triage(studies, failed, passed, move=True, checker=checker)
    placed = [r for r in rep.rows if r.verdict in ("pass", "fail")]
    assert placed and all(r.action.startswith("left in place") and "No space left" in r.action for r in placed)
    assert _tree(studies) == before
    for t in (failed, passed):
        assert not t.exists() or not list(t.iterdir())  # no partial copies
    monkeypatch.undo()
    rep = run_triage(studies, failed, passed, move=True, checker=checker)
    assert {r.study for r in rep.rows if r.action == "moved"} == {r.study for r in placed}
    together = {**_tree(studies), **_tree(failed), **_tree(passed)}
    assert together == before


@pytest.mark.slow
def test_triage_of_200_studies_keeps_memory_flat(tmp_path):
    """Peak resident memory must not grow with the number of studies (sampled per study, in a child)."""
    src = tmp_path / "in"
    src.mkdir()
    small = (5.0, 2.0, 2.0)
    for i in range(200):
        vol = chest_phantom(small, extent_mm=60, fov_mm=200, seed=100 + i)
        io.write_volume_nifti(vol, small, src / f"s{i:03d}.nii.gz")
    child = textwrap.dedent("""
        import json, sys
        from ctmodels.triage import run_triage
        rss = []
        def progress(i, n, name):
            with open("/proc/self/statm") as f:
                rss.append(int(f.read().split()[1]) * 4096 / 2**20)
        rep = run_triage(sys.argv[1], sys.argv[2], sys.argv[3], move=True, progress=progress)
        print(json.dumps({"rss": rss, "counts": rep.counts()}))
    """)
    r = subprocess.run([sys.executable, "-c", child, str(src), str(tmp_path / "failed"), str(tmp_path / "passed")],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(r.stdout.strip().splitlines()[-1])
    rss = d["rss"]
    assert sum(d["counts"].values()) == 200 and len(rss) == 201
    # after warm-up (study 20), memory stays within a few MB however many studies follow
    growth = max(rss[20:]) - rss[20]
    print(f"RSS at study 20: {rss[20]:.0f} MB, max after: {max(rss[20:]):.0f} MB")
    assert growth < 25, f"resident memory grew by {growth:.1f} MB over 180 studies"
    placed = [p for d in ("passed", "failed") if (tmp_path / d).is_dir() for p in (tmp_path / d).iterdir()]
    assert len(placed) + len(list(src.iterdir())) == 200
    assert d["counts"]["pass"] >= 150, d["counts"]  # real checks ran, not 200 early errors


def test_an_air_trapping_protocol_study_is_judged_on_its_inspiration_series(tmp_path, checker):
    """A study with an inspiration series and an expiratory one (more slices): the batch passes it on the
    inspiration series, and report.csv says which series it measured and what it set aside (no UID)."""
    sp = (2.5, 0.7, 0.7)
    hu = chest_phantom(sp, extent_mm=80, seed=3)
    study = tmp_path / "in" / "ild"
    write_series(study / "insp", hu[4:], spacing=sp, series_number=2, description="Insp 1.0 LUNG")
    write_series(study / "exp", Q.simulate_expiration(hu, sp, 0.5).astype(np.int16), spacing=sp, series_number=5,
                 description="Exp 1.0 LUNG", series_uid="1.2.826.0.1.3680043.8.498.96")
    rep = run_triage(tmp_path / "in", tmp_path / "failed", tmp_path / "passed", move=False, checker=checker)
    assert [(r.study, r.verdict) for r in rep.rows] == [("ild", "pass")]
    row = next(csv.DictReader(open(write_report(rep, tmp_path / "report")["csv"])))
    assert row["series"].startswith("#2: lung kernel") and row["series"].endswith(
        "; 1 expiratory series (by description) set aside"), row["series"]
    assert "1.2.826" not in row["series"]


def test_links_among_the_studies_are_listed_not_followed(studies, tmp_path, checker, capsys):
    """A link to a study (or to a file) inside the folder of studies was passed over without a word, so a study
    a user had linked into the inbox was neither checked nor said to be skipped. Links are still not followed
    (what they point to lies outside the folder, and moving it would reach out of it), but they are listed as not
    checked; a folder of nothing but links says so rather than 'no studies found' alone."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    io.write_volume_nifti(chest_phantom(SP, extent_mm=75, seed=24), SP, outside / "linked_f.nii.gz")
    (studies / "linked_f.nii.gz").symlink_to(outside / "linked_f.nii.gz")
    (studies / "linked_dir").symlink_to(outside, target_is_directory=True)
    before = _tree(outside)
    rep = run_triage(studies, tmp_path / "failed", checker=checker)
    assert not any(r.study.startswith("linked") for r in rep.rows) and len(rep.rows) == 5
    links = [n for n in rep.skipped if "link(s)" in n]
    assert links == ["2 link(s) (linked_dir, linked_f.nii.gz): links are not followed, so that nothing outside the "
                     "folder is moved; put the study itself in the folder to check it"]
    assert _tree(outside) == before and (studies / "linked_dir").is_symlink()
    only = tmp_path / "only_links"
    only.mkdir()
    (only / "a").symlink_to(outside, target_is_directory=True)
    assert main(["triage", str(only), "--failed-dir", str(tmp_path / "f2"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {only}: no studies found (expected subfolders, zips or volume files; 1 link(s), " \
                          "which are not followed)"


def test_a_header_whose_voxels_lie_in_another_file_is_a_study_only_in_a_subfolder_with_them(studies, tmp_path,
                                                                                              checker):
    """An .nhdr or .mhd header loose in the folder of studies was taken for a study and would have been moved
    without its data file. Such headers are listed as not checked; in a subfolder with their data, or as an .mha
    (its data attached), they are checked and sorted, every file with them."""
    import SimpleITK as sitk

    exp = Q.simulate_expiration(chest_phantom(SP, extent_mm=75, seed=25), SP, 0.5).astype(np.int16)
    img = itk_image(exp, SP)  # identity directions: the canonical layout
    sitk.WriteImage(img, str(studies / "loose_g.mhd"))
    (studies / "pair_h").mkdir()
    sitk.WriteImage(img, str(studies / "pair_h" / "scan.mhd"))
    sitk.WriteImage(img, str(studies / "attached_i.mha"), True)
    before = _tree(studies)
    rep = run_triage(studies, tmp_path / "failed", checker=checker)
    verdicts = {r.study: r.verdict for r in rep.rows}
    assert verdicts["pair_h"] == verdicts["attached_i.mha"] == "fail" and "loose_g.mhd" not in verdicts
    assert "1 header file(s) (loose_g.mhd) whose voxels lie in another file: put each with its data file in a " \
           "subfolder of its own to check it as a study" in rep.skipped
    moved = _tree(tmp_path / "failed")
    assert {k: v for k, v in moved.items() if k.startswith("pair_h/")} == {
        k: v for k, v in before.items() if k.startswith("pair_h/")} and not (studies / "pair_h").exists()
    assert (studies / "loose_g.mhd").exists() and (studies / "loose_g.raw").exists()


@pytest.mark.parametrize("same", ["--passed-dir", "--undetermined-dir"])
def test_two_verdicts_sorted_into_one_folder_are_refused(studies, tmp_path, capsys, same):
    """--passed-dir (or --undetermined-dir) the same folder as --failed-dir put passed and failed studies together,
    which is no sorting at all. One line now, before anything is checked or moved."""
    before = _tree(studies)
    failed = tmp_path / "sorted"
    assert main(["triage", str(studies), "--failed-dir", str(failed), same, str(tmp_path / "." / "sorted")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"{same} is the --failed-dir folder" in err and err.count("\n") == 1
    assert _tree(studies) == before and not failed.exists()


class _StillWritten:
    """A checker during whose check an export goes on writing into two studies: a new file in a DICOM folder, and
    a volume file written again (same bytes, new modification time)."""

    def __init__(self, checker, studies):
        self.checker, self.studies = checker, studies

    def predict(self, vol, **kw):
        if vol.meta.format == "dicom" and not (self.studies / "pass_b" / "late.dcm").exists():
            (self.studies / "pass_b" / "late.dcm").write_bytes(b"arrived after the check began")
        c = self.studies / "fail_c.nii.gz"
        data, st = c.read_bytes(), c.stat()
        c.write_bytes(data)
        os.utime(c, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        return self.checker.predict(vol, **kw)


def test_a_study_still_being_written_is_not_moved(studies, tmp_path, checker):
    """A scheduled run over an inbox that a PACS exports into could judge a study on the files there when it was
    read and then move it, with what arrived meanwhile, or delete a file written into between the copy's check and
    the source's removal. A study that changed after it was read is left in place with its verdict and a reason; a
    later run moves it, all of it."""
    before = _tree(studies)
    failed, passed = tmp_path / "failed", tmp_path / "passed"
    rep = run_triage(studies, failed, passed, move=True, checker=_StillWritten(checker, studies))
    rows = {r.study: r for r in rep.rows}
    assert rows["pass_b"].verdict == "pass" and rows["fail_c.nii.gz"].verdict == "fail"
    for name in ("pass_b", "fail_c.nii.gz"):
        assert rows[name].action == f"left in place: {studies / name}: {T.CHANGED}" and rows[name].destination == ""
    assert rows["pass_a.nii.gz"].action == "moved" and _tree(failed) == {}
    assert set(_tree(passed)) == {"pass_a.nii.gz"}
    rep = run_triage(studies, failed, passed, move=True, checker=checker)  # the export has finished
    assert {r.study: r.action for r in rep.rows if r.verdict != "undetermined"} == {"pass_b": "moved",
                                                                                   "fail_c.nii.gz": "moved"}
    together = {**_tree(studies), **_tree(failed), **_tree(passed)}
    late = hashlib.sha256(b"arrived after the check began").hexdigest()
    assert together == {**before, "pass_b/late.dcm": late}


@pytest.mark.parametrize("when", ["copied", "moved"])
def test_a_study_written_into_while_it_is_moved_is_put_back_whole(studies, tmp_path, monkeypatch, when):
    """A file written into the study while it is copied (after the copy was compared with it), or between the
    last check and the rename that takes the source away: the source is kept (put back), with the new file, and
    this run's copy is removed; nothing is lost and nothing half-copied stays in the target."""
    src, dest = studies / "pass_b", tmp_path / "passed"
    checked = T.fingerprint(src)
    before = _tree(studies)
    real_same, real_rename = T.same_content, os.rename

    def write_late():
        (src / "late.dcm").write_bytes(b"late")

    def same_content(a, b):
        ok = real_same(a, b)
        write_late()
        return ok

    def rename(a, b, *k, **kw):
        if Path(a) == src:
            write_late()
        return real_rename(a, b, *k, **kw)

    if when == "copied":
        monkeypatch.setattr(T, "same_content", same_content)
    else:
        monkeypatch.setattr(T.os, "rename", rename)
    with pytest.raises(T.TriageError, match=f"changed while it was {when}"):
        T.place(src, dest, True, checked)
    assert _tree(studies) == {**before, "pass_b/late.dcm": hashlib.sha256(b"late").hexdigest()}
    assert not dest.exists() or not list(dest.iterdir())
    assert not [p for p in studies.iterdir() if p.name.startswith(T.TRASH)]


def test_a_study_still_arriving_is_left_for_a_later_run_with_settle(studies, tmp_path, capsys):
    """--settle SECONDS: a study with a file changed less than that long ago is still arriving (an export into the
    inbox) and is listed as not checked, untouched and with no row; the others are sorted; once it has been stable
    that long a later run sorts it. A settle time that is not a number of seconds is argparse's usage line."""
    import time

    old = time.time() - 3600
    for p in studies.rglob("*"):
        os.utime(p, (old, old))
    os.utime(studies / "fail_c.nii.gz", None)  # written just now
    before = _tree(studies)
    failed = tmp_path / "failed"
    assert main(["triage", str(studies), "--failed-dir", str(failed), "--settle", "600"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^not checked: fail_c\.nii\.gz: still arriving \(a file changed \d+ s ago, under the 600 s "
                     r"settle time\); checked by a later run$", out, re.M)
    rows = list(csv.DictReader(open(failed / "report.csv")))
    assert "fail_c.nii.gz" not in {r["study"] for r in rows} and len(rows) == 4
    assert _tree(studies) == before and not (failed / "fail_c.nii.gz").exists()
    os.utime(studies / "fail_c.nii.gz", (old, old))
    assert main(["triage", str(studies), "--failed-dir", str(failed), "--settle", "600"]) == 0
    assert (failed / "fail_c.nii.gz").exists() and not (studies / "fail_c.nii.gz").exists()
    capsys.readouterr()
    for bad in ("-1", "soon", "inf"):
        with pytest.raises(SystemExit) as stop:
            main(["triage", str(studies), "--failed-dir", str(failed), "--settle", bad])
        assert stop.value.code == 2 and "expected a number of seconds, 0 or more" in capsys.readouterr().err


def test_the_report_says_how_each_study_was_read(tmp_path, checker):
    """report.csv said which series was measured but not how it was read: a study whose series lacked slices
    (filled in by interpolation) or was stored coronal looked like any other. A `warnings` column says so now
    (empty where there is nothing to say); a report an earlier version wrote without it is added to."""
    sp = (2.5, 0.8, 0.8)
    hu = chest_phantom(sp, extent_mm=80, seed=4)
    write_series(tmp_path / "in" / "gap", hu, spacing=sp, skip=(9,), study_uid="1.2.826.0.1.3680043.8.498.71")
    write_series(tmp_path / "in" / "whole", hu, spacing=sp, study_uid="1.2.826.0.1.3680043.8.498.72")
    report = tmp_path / "report" / "report.csv"
    report.parent.mkdir()
    report.write_text("key,study,folder,verdict,probability_fail,reason,slices_mm,series,action,destination\n"
                      "S-0,old,/x,pass,0.1,earlier,,,copied,/y/old\n")
    run_triage(tmp_path / "in", tmp_path / "failed", tmp_path / "passed", move=False, checker=checker,
               report_dir=report.parent)
    rows = {r["study"]: r for r in csv.DictReader(open(report))}
    assert set(rows) == {"old", "gap", "whole"} and rows["old"]["warnings"] == ""
    assert rows["gap"]["warnings"].startswith("1 missing slice(s) in 1 gap(s) of the series, filled by linear "
                                              "interpolation"), rows["gap"]
    assert rows["whole"]["warnings"] == "" and rows["gap"]["verdict"] == rows["whole"]["verdict"] == "pass"


def test_a_file_replaced_with_one_of_the_same_size_and_time_is_a_change(studies, tmp_path):
    """The fingerprint was sizes and modification times: a file replaced by another of the same size within the
    file system's time resolution (an export writing a temporary file and renaming it over the old one) looked
    unchanged, and the study was moved with content that was not the content checked. Its inode tells it now; the
    same study renamed (as place renames it) keeps its fingerprint."""
    src = studies / "pass_b"
    checked = T.fingerprint(src)
    victim = sorted(src.iterdir())[0]
    st = victim.stat()
    other = src / "rewritten.tmp"
    other.write_bytes(victim.read_bytes()[::-1])  # the same size, other bytes
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, victim)
    assert victim.stat().st_size == st.st_size and victim.stat().st_mtime_ns == st.st_mtime_ns
    with pytest.raises(T.TriageError, match="changed while it was checked"):
        T.place(src, tmp_path / "passed", True, checked)
    assert not (tmp_path / "passed" / "pass_b").exists() and victim.exists()
    checked = T.fingerprint(src)
    os.rename(src, studies / "renamed")
    assert T.fingerprint(studies / "renamed") == checked
