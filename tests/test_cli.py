"""CLI: subcommands, info output, one-line errors with exit status 2."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from ctmodels.cli import main
from synth import chest_phantom, dose_report, write_series


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("info", "segment", "train-lesion"):
        assert cmd in out


def test_info_lists_series_and_selection(tmp_path, capsys):
    hu = chest_phantom((4, 16, 16))
    write_series(tmp_path / "a", hu, kernel="B30f", manufacturer="SIEMENS", series_number=5)
    write_series(tmp_path / "b", hu, kernel="B70f", manufacturer="SIEMENS", series_number=6)
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 series" in out and "B30f -> soft" in out and "B70f -> lung" in out
    assert "selected for lesion" in out and "lung kernel" in out
    assert main(["info", str(tmp_path), "--json", "--purpose", "quality"]) == 0
    d = json.loads(capsys.readouterr().out)
    chosen = [s for s in d["series"] if s["series_uid"] == d["selected"]][0]
    assert chosen["kernel"] == "B70f"
    # no patient identifiers in what info prints
    assert "PID-12345" not in json.dumps(d) and "Doe" not in json.dumps(d)


def test_info_says_which_series_hold_no_ct_slices(tmp_path, capsys):
    """A dose report (a secondary capture filed under CT) and raw data (no image) are listed as what they are, and
    not selected; "NonexNone" was printed for the size of a series without an image."""
    import pydicom

    study = "1.2.826.0.1.3680043.8.498.1"
    write_series(tmp_path / "s" / "soft", chest_phantom((4, 16, 16)), kernel="STANDARD", series_number=3,
                 study_uid=study)
    dose_report(tmp_path / "s" / "report" / "IM1", study)
    raw = pydicom.dcmread(dose_report(tmp_path / "s" / "raw" / "IM1", study))
    del raw.Rows, raw.Columns, raw.PixelData, raw.SOPClassUID
    raw.file_meta.MediaStorageSOPClassUID = "1.3.12.2.1107.5.9.1"  # a scanner maker's private non-image storage
    raw.SeriesNumber, raw.SeriesDescription = 998, "raw"
    raw.save_as(tmp_path / "s" / "raw" / "IM1")
    assert main(["info", str(tmp_path / "s")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("   [1] #998 CT 1 slices no image ? mm kernel=- -> unknown (no ConvolutionKernel "
                               "tag) - raw - not CT slices: an object without an image (no Rows/Columns"), lines
    assert lines[3].endswith(" - Dose Report - not CT slices: a secondary capture (a screenshot or a report, such as "
                             "a CT's dose report)"), lines
    assert lines[5].startswith(" * [3] #3 CT 4 slices 16x16") and lines[-1].startswith("selected for lesion: [3] "
                                                                                        "only soft-tissue kernel")
    assert lines[-1].endswith("; 2 series without CT slices (a dose report, raw data) set aside")


def test_series_option_reads_the_series_info_lists(tmp_path, capsys):
    """`info` prints each SeriesInstanceUID; `segment --series` and `check-breath-hold --series` use that series
    instead of the chosen one, and say so; a folder of two studies is refused until a series is named."""
    from ctmodels.phantoms import chest_phantom as chest

    sp = (2.0, 0.8, 0.8)
    hu = chest(sp, extent_mm=80, seed=9)
    write_series(tmp_path / "s" / "a", hu, spacing=sp, kernel="B30f", manufacturer="SIEMENS", series_number=5)
    write_series(tmp_path / "s" / "b", hu, spacing=sp, kernel="B70f", manufacturer="SIEMENS", series_number=6)
    assert main(["info", str(tmp_path / "s")]) == 0
    lines = capsys.readouterr().out.splitlines()
    uids = [ln.split()[-1] for ln in lines if ln.strip().startswith("series ")]
    soft = [lines[i + 1].split()[-1] for i, ln in enumerate(lines) if "kernel=B30f" in ln][0]  # the line below it
    assert len(set(uids)) == 2 and soft in uids
    assert main(["segment", str(tmp_path / "s"), "--out", str(tmp_path / "o1"), "-q"]) == 0  # -q: --quiet
    assert capsys.readouterr().out == ""
    assert main(["segment", str(tmp_path / "s"), "--out", str(tmp_path / "o2"), "--series", soft]) == 0
    out = capsys.readouterr().out
    assert "s: series used: the series asked for; soft kernel" in out
    import csv

    for folder, number, kernel in (("o1", "6", "B70f"), ("o2", "5", "B30f")):  # which series each row graded
        (row,) = csv.DictReader(open(tmp_path / folder / "results.csv"))
        assert (row["series"], row["kernel"]) == (number, kernel)
    assert main(["check-breath-hold", str(tmp_path / "s"), "--series", soft]) == 0
    assert "series: the series asked for; soft kernel" in capsys.readouterr().out
    # without --series the check refuses the soft series and takes the lung one
    assert main(["check-breath-hold", str(tmp_path / "s")]) == 0
    assert "series: lung kernel" in capsys.readouterr().out
    # --series with two inputs, and a series that is not there: one line, exit 2
    assert main(["segment", str(tmp_path / "s"), str(tmp_path / "s"), "--out", str(tmp_path / "o3"),
                 "--series", soft]) == 2
    assert capsys.readouterr().err.startswith("error: --series names a series of one study; got 2 inputs")
    assert main(["segment", str(tmp_path / "s"), "--out", str(tmp_path / "o3"), "--series", "1.2.3"]) == 2
    assert "series 1.2.3 not found (2 series present)" in capsys.readouterr().err


def test_check_breath_hold_gives_the_slices_positions_for_finding_them_in_a_viewer(tmp_path, capsys):
    """The slices measured and the carina are also given by their S coordinate (mm on the head-foot axis), as
    viewers give an axial slice's location: here a DICOM series from -300 mm up in 2 mm steps, and the same
    slices stored feet-pointing (the slice normal to the feet), which must not turn the sign."""
    import json

    import numpy as np

    from ctmodels.phantoms import chest_phantom as chest

    sp = (2.0, 0.8, 0.8)
    hu = chest(sp, extent_mm=80, seed=9)
    top = -300.0 + 2.0 * (len(hu) - 1)
    write_series(tmp_path / "s", hu, spacing=sp, origin=(-100.0, -120.0, -300.0))
    write_series(tmp_path / "f", hu[::-1, ::-1].copy(), spacing=sp, orientation=(1, 0, 0, 0, -1, 0),
                 origin=(-100.0, 120.0, top))
    for name in ("s", "f"):
        assert main(["check-breath-hold", str(tmp_path / name), "--json"]) == 0
        d = json.loads(capsys.readouterr().out)
        assert d["slice_positions_mm"] == [round(-300.0 + 2.0 * z, 2) for z in d["slices_used"]], name
        assert d["carina_position_mm"] == -300.0 + 2.0 * d["carina_z"]
    assert main(["check-breath-hold", str(tmp_path / "s")]) == 0
    lo, hi = min(d["slices_used"]), max(d["slices_used"])
    assert (f"(z {lo}..{hi}, slice positions {-300 + 2 * lo:.1f}..{-300 + 2 * hi:.1f} mm), carina at z "
            f"{d['carina_z']} ({-300 + 2 * d['carina_z']:.1f} mm)") in capsys.readouterr().out
    assert d["warnings"] == []
    # how the study was read is in the JSON too, not only in the log: here a slice filled in
    write_series(tmp_path / "gap", hu, spacing=sp, skip=(5,))
    assert main(["check-breath-hold", str(tmp_path / "gap"), "--json"]) == 0
    said = json.loads(capsys.readouterr().out)["warnings"]
    assert len(said) == 1 and said[0].startswith("1 missing slice(s) in 1 gap(s)"), said
    # a .npy volume has no position: z alone
    np.save(tmp_path / "v.npy", hu)
    assert main(["check-breath-hold", str(tmp_path / "v.npy"), "--json"]) == 0
    assert "slice_positions_mm" not in json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("make", ["missing", "empty_dir", "txt", "mr", "badzip"])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, make):
    from pydicom.data import get_testdata_file

    target = {
        "missing": tmp_path / "nope.dcm",
        "empty_dir": tmp_path,
        "txt": tmp_path / "notes.txt",
        "mr": get_testdata_file("MR_small.dcm"),
        "badzip": tmp_path / "b.zip",
    }[make]
    if make == "txt":
        target.write_text("hello")
    if make == "badzip":
        target.write_bytes(b"not a zip")
    rc = main(["info", str(target)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert str(target).split("/")[-1] in err


@pytest.mark.parametrize("name, command", [("CT", "segment"), ("e", "info"), ("DICOM", "check-breath-hold")])
def test_an_input_whose_name_is_a_word_of_the_error_is_still_named(tmp_path, capsys, monkeypatch, name, command):
    """The file was named before the error only where its name was not already somewhere in the message, so an
    empty folder called CT said "error: no DICOM files found, expected a folder or zip of a CT DICOM series" with
    no name at all (CT was in the message), and so did a file called e (in "expected")."""
    monkeypatch.chdir(tmp_path)
    if name == "e":
        (tmp_path / name).write_bytes(b"garbage")
    else:
        (tmp_path / name).mkdir()
    args = [command, name] + (["--out", "out"] if command == "segment" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {name}: ") and err.count("\n") == 1


def test_an_output_folder_that_is_a_file_is_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    """--out, --failed-dir or --report-dir naming a file (or a path under one): one line naming it, exit 2, and
    nothing moved or trained. Before: 'FileExistsError: [Errno 17] File exists', from triage after its lock was
    taken. An OSError met later says its own words, not its Python class."""
    import numpy as np

    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "a.npy", chest_phantom((4, 32, 32)))
    (tmp_path / "file").write_text("mine")
    for argv in (["segment", str(tmp_path / "in" / "a.npy"), "--out", str(tmp_path / "file")],
                 ["triage", str(tmp_path / "in"), "--failed-dir", str(tmp_path / "file")],
                 ["triage", str(tmp_path / "in"), "--failed-dir", str(tmp_path / "f"),
                  "--report-dir", str(tmp_path / "file" / "sub")],
                 ["train-quality", "--out", str(tmp_path / "file")],
                 ["train-lesion", "--data", str(tmp_path / "in"), "--out", str(tmp_path / "file" / "run")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is a file" in err, err
        assert "Errno" not in err and "expected an output folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "in"] and (tmp_path / "file").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["a.npy"]

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied", str(tmp_path / "in" / "a.npy"))

    monkeypatch.setattr("ctmodels.io._read_ct", denied)
    assert main(["segment", str(tmp_path / "in" / "a.npy"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'in' / 'a.npy'}: Permission denied\n"


def test_python_dash_m_and_console_script(tmp_path):
    r = subprocess.run([sys.executable, "-m", "ctmodels", "info", str(tmp_path / "x.png")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "x.png" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "ctmodels", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "segment" in r.stdout


def test_a_malformed_header_value_is_one_line_not_pydicom_warnings(tmp_path):
    """pydicom reports a value that breaks its rules (badVR.dcm holds the IS value '1A') as a log record and as a
    Python warning printed with a line of its source: three lines before ctmodels' own error. One line is left;
    pydicom's own record comes back with -v."""
    from pydicom.data import get_testdata_file

    bad = get_testdata_file("badVR.dcm")
    for cmd in (["info", bad], ["segment", bad, "--out", str(tmp_path / "out")]):
        r = subprocess.run([sys.executable, "-m", "ctmodels", *cmd], capture_output=True, text=True, timeout=300)
        assert r.returncode == 2
        assert r.stderr.splitlines() == [f"error: {bad}: corrupt DICOM header (ValueError), expected a CT image"]
    r = subprocess.run([sys.executable, "-m", "ctmodels", "-v", "info", bad], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and "WARNING pydicom: Invalid value for VR IS" in r.stderr
    assert "UserWarning" not in r.stderr and "warn_and_log" not in r.stderr


def test_an_image_over_pillow_s_limit_is_one_line_not_its_warning_too(tmp_path):
    """Pillow warns (DecompressionBombWarning, two lines with a line of its source) on opening an image over 89 M
    pixels, which ctmodels refuses over 4096x4096 before decoding it anyway."""
    from PIL import Image

    Image.new("L", (10000, 10000)).save(tmp_path / "giant.png")
    giant = str(tmp_path / "giant.png")
    for cmd in (["info", giant], ["segment", giant, "--out", str(tmp_path / "out")]):
        r = subprocess.run([sys.executable, "-m", "ctmodels", *cmd], capture_output=True, text=True, timeout=300)
        assert r.returncode == 2
        assert r.stderr.splitlines() == [f"error: {giant}: image is 10000x10000, larger than the 4096x4096 limit"]


def test_segment_a_slice_without_lung_gives_no_grade(tmp_path, capsys):
    """A black image: no lung, so no grade and no P(extensive), said once as a warning and in results.csv."""
    import csv

    import numpy as np
    from PIL import Image

    Image.fromarray(np.zeros((256, 256), np.uint8)).save(tmp_path / "black.png")
    assert main(["segment", str(tmp_path / "black.png"), "--out", str(tmp_path / "out")]) == 0
    cap = capsys.readouterr()
    assert cap.out.strip() == "black.png: no lung found, no grade"
    assert cap.err.count("no lung found") == 1 and "Traceback" not in cap.err
    with open(tmp_path / "out" / "results.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert (row["grade"], row["p_extensive"], row["extent_class"]) == ("n/a", "", "n/a")
    assert row["involved_pct"] == "0.0" and row["warnings"].startswith("no lung found")


def test_segment_a_head_ct_slice_gives_no_grade(tmp_path, capsys):
    """A real head CT slice (pydicom's 693_J2KI.dcm): the model labelled 6 pixels of it GGO and none other lung, and
    the slice was graded CT-4, 100 % involved, P(extensive) 0.40. A grade resting on fewer than MIN_LUNG_PIXELS
    lung pixels is not given."""
    import csv

    import numpy as np
    from PIL import Image
    from pydicom.data import get_testdata_file

    head = get_testdata_file("693_J2KI.dcm")
    assert main(["segment", head, "--out", str(tmp_path / "out")]) == 0
    cap = capsys.readouterr()
    assert cap.out.strip() in ("693_J2KI.dcm: too little lung found, no grade", "693_J2KI.dcm: no lung found, no grade")
    with open(tmp_path / "out" / "results.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert (row["grade"], row["p_extensive"], row["extent_class"]) == ("n/a", "", "n/a")
    assert "lung found" in row["warnings"] and "CT-" not in cap.out
    from ctmodels.severity import MIN_LUNG_PIXELS

    labels = np.asarray(Image.open(tmp_path / "out" / "693_J2KI.mask.png"))
    assert 0 <= (labels > 0).sum() < MIN_LUNG_PIXELS


def test_an_input_the_model_cannot_take_is_named_and_the_others_are_still_segmented(tmp_path, capsys):
    """A 1x1 array and a NIfTI 5 pixels wide read, but the model takes slices of 8x8 or more: its error named no
    file, and it ended the run, so the inputs after it were not segmented."""
    import csv

    import nibabel as nib
    import numpy as np

    np.save(tmp_path / "one.npy", np.full((1, 1, 1), -1000, np.int16))
    nib.save(nib.Nifti1Image(np.full((64, 5, 30), -1000, np.int16), np.eye(4)), tmp_path / "thin.nii.gz")
    np.save(tmp_path / "chest.npy", chest_phantom((2, 64, 64)))
    names = ("one.npy", "thin.nii.gz", "chest.npy")
    assert main(["segment", *(str(tmp_path / n) for n in names), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: {tmp_path / 'one.npy'}: image (1, 1) is too small to segment (minimum 8x8)",
        f"error: {tmp_path / 'thin.nii.gz'}: image (5, 64) is too small to segment (minimum 8x8)"]
    with open(tmp_path / "out" / "results.csv", newline="") as f:
        assert [r["stem"] for r in csv.DictReader(f)] == ["chest"]
    assert sorted(q.name for q in (tmp_path / "out").iterdir()) == [
        "chest.mask.nii.gz", "chest.mask.png", "chest.overlay.png", "chest.slices.csv", "results.csv"]


def test_an_input_given_twice_is_segmented_once(tmp_path, capsys):
    """`segment *.npy a.npy` named a.npy twice: it was segmented twice, the second time as stem a_ with a second set
    of outputs and a second row in results.csv."""
    import csv

    import numpy as np

    np.save(tmp_path / "a.npy", chest_phantom((2, 64, 64)))
    np.save(tmp_path / "b.npy", chest_phantom((2, 64, 64), seed=1))
    a, b = str(tmp_path / "a.npy"), str(tmp_path / "b.npy")
    assert main(["segment", a, b, str(tmp_path / "." / "a.npy"), "--out", str(tmp_path / "out")]) == 0
    cap = capsys.readouterr()
    assert "1 input(s) given more than once, segmented once" in cap.err
    assert [line.split(":")[0] for line in cap.out.splitlines()] == ["a.npy", "b.npy"]
    with open(tmp_path / "out" / "results.csv", newline="") as f:
        assert [(r["stem"], r["input"]) for r in csv.DictReader(f)] == [("a", a), ("b", b)]
    assert not list((tmp_path / "out").glob("a_*"))


def test_two_runs_into_one_folder_at_once_keep_each_other_s_outputs_and_rows(tmp_path, capsys, monkeypatch):
    """Two segment jobs into one --out at once (xargs -P, say) each read results.csv when they started and wrote it
    whole: the one to finish last dropped the other's rows, and two inputs both called ct.npy both wrote ct.*, one
    over the other. Here a second run starts and finishes while the first is segmenting its input. Now each
    input's stem, outputs and row are chosen and written under the folder's lock (not held while segmenting),
    against the table as it is then."""
    import csv

    import numpy as np
    from PIL import Image

    import ctmodels.pipeline as pipeline

    for name, seed in (("a", 1), ("b", 2)):
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "ct.npy", chest_phantom((3, 64, 64), seed=seed))
    a, b, out = str(tmp_path / "a" / "ct.npy"), str(tmp_path / "b" / "ct.npy"), str(tmp_path / "out")
    real, calls = pipeline.segment_study, []

    def meanwhile(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # the first run's input: the other run does all its work now
            assert main(["segment", b, "--out", out, "--quiet"]) == 0
            np.save(tmp_path / "b_mask.npy", np.array(Image.open(tmp_path / "out" / "ct.mask.png")))
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "segment_study", meanwhile)
    assert main(["segment", a, "--out", out, "--quiet"]) == 0
    with open(tmp_path / "out" / "results.csv", newline="") as f:
        assert sorted((r["input"], r["stem"]) for r in csv.DictReader(f)) == [(a, "ct_"), (b, "ct")]
    assert np.array_equal(np.array(Image.open(tmp_path / "out" / "ct.mask.png")), np.load(tmp_path / "b_mask.npy"))
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"results.csv"} | {
        f"{stem}{sfx}" for stem in ("ct", "ct_") for sfx in (".mask.png", ".overlay.png", ".mask.nii.gz",
                                                             ".slices.csv")}


def test_segment_runs_into_one_folder_keep_each_other_s_results(tmp_path, capsys, monkeypatch):
    """results.csv is kept across runs into one --out folder. Before, each run overwrote it with its own rows, and
    an input with the name of an earlier run's input (two studies both called a.png) overwrote its masks. Now an
    earlier run's rows stay, a re-run of the same input replaces its row, and another input of the same name gets
    a stem of its own. No output is written over an input, and a results.csv that is not a segment table is not
    touched."""
    import csv

    import numpy as np
    from PIL import Image

    from ctmodels.examples import lesion_volume
    from ctmodels.preprocessing import window_hu

    def rows(folder):
        return [(r["stem"], r["input"]) for r in csv.DictReader(open(folder / "results.csv", encoding="utf-8"))]

    img = window_hu(lesion_volume(n_slices=1).voxels[0], -600, 1500)
    for sub, shift in (("one", 0), ("two", 40)):
        (tmp_path / sub).mkdir()
        Image.fromarray(np.roll(img, shift, axis=1)).save(tmp_path / sub / "a.png")
    one, two, out = tmp_path / "one" / "a.png", tmp_path / "two" / "a.png", tmp_path / "out"
    assert main(["segment", str(one), "--out", str(out), "--quiet"]) == 0
    first = (out / "a.mask.png").read_bytes()
    assert main(["segment", str(two), "--out", str(out), "--quiet"]) == 0
    assert rows(out) == [("a", str(one)), ("a_", str(two))] and (out / "a.mask.png").read_bytes() == first
    assert (out / "a_.mask.png").read_bytes() != first
    assert main(["segment", str(one), "--out", str(out), "--quiet"]) == 0  # the same input again: its row, replaced
    assert rows(out) == [("a_", str(two)), ("a", str(one))]
    # an input named as another input's output, in the --out folder: not written over
    (tmp_path / "one" / "b.png").write_bytes(one.read_bytes())
    (tmp_path / "one" / "b.overlay.png").write_bytes(one.read_bytes())
    given = (tmp_path / "one" / "b.overlay.png").read_bytes()
    assert main(["segment", str(tmp_path / "one" / "b.overlay.png"), str(tmp_path / "one" / "b.png"),
                 "--out", str(tmp_path / "one"), "--quiet"]) == 0
    assert (tmp_path / "one" / "b.overlay.png").read_bytes() == given and (tmp_path / "one" / "b_.overlay.png").exists()
    # the same input named by relative paths from two folders: one input, its row replaced (before: a stem a__)
    for folder, name in ((tmp_path / "one", "a.png"), (tmp_path, "one/a.png")):
        monkeypatch.chdir(folder)
        assert main(["segment", name, "--out", str(out), "--quiet"]) == 0
        assert rows(out) == [("a_", str(two)), ("a", str(one))] and (out / "a.mask.png").read_bytes() == first
    # someone else's results.csv
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "results.csv").write_text("case,score\n1,2\n")
    capsys.readouterr()
    assert main(["segment", str(one), "--out", str(tmp_path / "theirs")]) == 2
    err = capsys.readouterr().err
    assert "results.csv: is not a ctmodels segment results table" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / "theirs").iterdir()) == ["results.csv"]
    assert (tmp_path / "theirs" / "results.csv").read_text() == "case,score\n1,2\n"


def test_segment_takes_a_folder_of_image_slices_as_its_slices(tmp_path, capsys):
    """An image data set's folder of slices (as COVID-SemiSeg's images/): each slice is an input, with its mask at
    its own size and its row. Before: refused as a study with no DICOM. A folder that also holds a DICOM series is
    still one study: its series is read."""
    import csv

    import numpy as np
    from PIL import Image

    from ctmodels.examples import lesion_volume
    from ctmodels.preprocessing import window_hu

    img = window_hu(lesion_volume(n_slices=1).voxels[0], -600, 1500)
    (tmp_path / "images").mkdir()
    Image.fromarray(img).save(tmp_path / "images" / "a.png")
    Image.fromarray(img[:, ::-1][20:]).save(tmp_path / "images" / "b.jpg")
    assert main(["segment", str(tmp_path / "images"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "out" / "results.csv", encoding="utf-8")))
    assert [r["stem"] for r in rows] == ["a", "b"] and all(r["grade"].startswith("CT-") for r in rows)
    for stem, shape in (("a", img.shape), ("b", img[20:].shape)):
        assert np.asarray(Image.open(tmp_path / "out" / f"{stem}.mask.png")).shape == shape
    # run again with the outputs written among the slices: they are not taken for slices
    for twice in range(2):
        assert main(["segment", str(tmp_path / "images"), "--out", str(tmp_path / "images")]) == 0
        assert ("4 mask or overlay image(s) written by segment left out" in capsys.readouterr().err) == (twice == 1)
    rows = list(csv.DictReader(open(tmp_path / "images" / "results.csv", encoding="utf-8")))
    assert [r["stem"] for r in rows] == ["a", "b"]
    write_series(tmp_path / "study", chest_phantom((4, 32, 32)))
    Image.fromarray(img).save(tmp_path / "study" / "preview.png")
    assert main(["segment", str(tmp_path / "study"), "--out", str(tmp_path / "out2"), "--quiet"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "out2" / "results.csv", encoding="utf-8")))
    assert [(r["stem"], r["slices"]) for r in rows] == [("study", "4")]


def test_segment_outputs_written_into_a_study_folder_are_not_taken_for_study_files(tmp_path, capsys):
    """``segment study/ --out study/results``, run again: the masks it wrote there are neither named as volume files
    beside the series (before: a warning) nor read as a study where the study is a volume file (before: "2 volume
    files found"). A folder holding only segment's outputs is one line saying so."""
    import csv

    from ctmodels.io import write_volume_nifti

    hu = chest_phantom((4, 32, 32))
    write_series(tmp_path / "study", hu)
    (tmp_path / "vol").mkdir()
    write_volume_nifti(hu, (2.5, 0.7, 0.7), tmp_path / "vol" / "ct.nii.gz")
    for name in ("study", "vol"):
        for run in range(2):
            assert main(["segment", str(tmp_path / name), "--out", str(tmp_path / name / "results")]) == 0
            err = capsys.readouterr().err
            assert "volume file" not in err, (name, run, err)
        rows = list(csv.DictReader(open(tmp_path / name / "results" / "results.csv", encoding="utf-8")))
        assert [(r["stem"], r["slices"]) for r in rows] == [(name, "4")] and "volume file" not in rows[0]["warnings"]
    assert (tmp_path / "vol" / "results" / "vol.mask.nii.gz").is_file()
    assert main(["segment", str(tmp_path / "vol" / "results"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "results: no DICOM files found, only 4 mask, overlay or table file(s) that " \
        "ctmodels segment wrote; expected a study" in err


def test_segment_keeps_hu_labels_inside_the_body_unless_told_not_to(tmp_path):
    """The synthetic example as NIfTI: the bundled model labels air around the phantom as lung, and
    the body mask makes it background in the written mask; --no-body-mask keeps the model's labels (with
    --no-air-anchor, which takes some of them away too: most with the weights bundled before 2026-11-30, about a
    tenth with those bundled since)."""
    from ctmodels import io as ctio
    from ctmodels.body import body_mask
    from ctmodels.examples import lesion_volume

    v = lesion_volume(n_slices=3)
    nii = ctio.write_volume_nifti(v.voxels, v.spacing, tmp_path / "ex.nii.gz")
    outside = ~body_mask(ctio.read_ct(nii).voxels)
    outside_labels = []
    for i, flags in enumerate(([], ["--no-body-mask"], ["--no-body-mask", "--no-air-anchor"])):
        out = tmp_path / f"run{i}"
        assert main(["segment", str(nii), "--out", str(out), "--quiet"] + flags) == 0
        mask = ctio.read_labels(out / "ex.mask.nii.gz").voxels
        outside_labels.append(int((mask[outside] > 0).sum()))
    # the anchor alone takes some of them (pieces that hold no lung air), never adds any
    assert outside_labels[0] == 0 and outside_labels[1] < outside_labels[2] and outside_labels[2] > 1000



def test_a_study_with_a_deliberate_expiratory_series_is_checked_on_its_inspiration(tmp_path, capsys):
    """Air-trapping protocols add an expiratory series, here with more slices than the inspiration one (which
    made it the choice before): the check measures the inspiration series and passes the study, and names the
    expiratory series it set aside. Asked for by --series, the expiratory series fails."""
    import json

    import numpy as np

    from ctmodels.phantoms import chest_phantom as chest
    from ctmodels.quality import simulate_expiration

    sp = (2.0, 0.8, 0.8)
    hu = chest(sp, extent_mm=80, seed=9)
    exhaled = simulate_expiration(hu, sp, 0.5).astype(np.int16)
    write_series(tmp_path / "s" / "insp", hu[5:], spacing=sp, series_number=2, description="Insp 1.0 LUNG")
    write_series(tmp_path / "s" / "exp", exhaled, spacing=sp, series_number=3, description="Exp 1.0 LUNG",
                 series_uid="1.2.826.0.1.3680043.8.498.99")
    assert main(["check-breath-hold", str(tmp_path / "s"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["verdict"] == "pass", d["reason"]
    assert d["series_reason"].endswith("; 1 expiratory series (by description) set aside"), d["series_reason"]
    main(["check-breath-hold", str(tmp_path / "s"), "--json", "--series", "1.2.826.0.1.3680043.8.498.99"])
    assert json.loads(capsys.readouterr().out)["verdict"] == "fail"


def test_info_and_the_reader_put_a_supine_series_before_a_prone_one_or_a_projection(tmp_path, capsys):
    """A prone series and a MIP series (more slices each) are set aside for the supine slices, as their
    PatientPosition and ImageType say; info lists the prone one with its position."""
    hu = chest_phantom((6, 16, 16))
    write_series(tmp_path / "s" / "supine", hu[1:], patient_position="HFS", series_number=2,
                 tags={"ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"]})
    write_series(tmp_path / "s" / "prone", hu, patient_position="HFP", series_number=3,
                 series_uid="1.2.826.0.1.3680043.8.498.98", orientation=(-1, 0, 0, 0, -1, 0))
    write_series(tmp_path / "s" / "mip", hu, series_number=4, series_uid="1.2.826.0.1.3680043.8.498.97",
                 tags={"ImageType": ["DERIVED", "SECONDARY", "MIP"]})
    assert main(["info", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert " - HFP (not supine)" in out and out.count("(not supine)") == 1
    assert out.rstrip().endswith("; 1 projection or reformat series (MIP, MinIP, MPR, localizer) set aside; 1 prone "
                                 "or decubitus series (by PatientPosition) set aside"), out
    from ctmodels import io as ctio

    vol = ctio.read_ct(tmp_path / "s")
    assert vol.shape[0] == 5 and vol.meta.series_number == 2


def test_info_and_the_reader_put_an_axial_series_before_a_coronal_one(tmp_path, capsys):
    """A study exported with its coronal series (more slices, nothing in its ImageType or description saying it is
    a reformat): the axial series is read, info lists the coronal one with its plane, and the coronal series read
    by name says how it was read."""
    coronal_uid = "1.2.826.0.1.3680043.8.498.96"
    write_series(tmp_path / "s" / "axial", chest_phantom((6, 16, 16)), series_number=2)
    write_series(tmp_path / "s" / "coronal", chest_phantom((20, 16, 16)), series_number=3, series_uid=coronal_uid,
                 spacing=(1.0, 0.7, 0.7), orientation=(1, 0, 0, 0, 0, -1))
    assert main(["info", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert out.count(" - coronal slices") == 1 and "#3 CT 20 slices" in out.split(" - coronal slices")[0]
    assert out.rstrip().endswith("; 1 coronal or sagittal series (by ImageOrientationPatient) set aside"), out
    from ctmodels import io as ctio

    vol = ctio.read_ct(tmp_path / "s")
    assert vol.meta.series_number == 2 and not any("stored" in w for w in vol.meta.warnings)
    coronal = ctio.read_ct(tmp_path / "s", series_uid=coronal_uid)
    assert coronal.shape == (16, 20, 16)
    assert coronal.meta.warnings == ["slices stored coronal: read as the axial slices across them, of 1.00 x 0.70 mm "
                                     "pixels (not square: the models were made for axial CT slices of square "
                                     "pixels, so results are less reliable)"]


def test_info_of_a_folder_of_slice_images_lists_them_as_segment_takes_them(tmp_path, capsys):
    """segment takes a folder of slice images, each as its own input; info refused it ("no DICOM files or
    volumes found ... give each image as its own input"), and of one image said that no series would be selected
    ("no CT series"), though segment segments it."""
    from PIL import Image

    (tmp_path / "slices").mkdir()
    Image.fromarray(np.full((30, 40), 90, np.uint8)).save(tmp_path / "slices" / "a.png")
    Image.fromarray(np.full((50, 20), 90, np.uint8)).save(tmp_path / "slices" / "b.png")
    (tmp_path / "slices" / "c.png").write_bytes(b"not a png")
    exif = Image.Exif()
    exif[0x0112] = 6  # a phone photo's pixels, stored turned: segment reads them as viewers show them, 40x30
    Image.fromarray(np.full((30, 40), 90, np.uint8)).save(tmp_path / "slices" / "d.png", exif=exif.tobytes())
    page = Image.fromarray(np.full((20, 30), 90, np.uint8))
    page.save(tmp_path / "slices" / "e.tif", save_all=True, append_images=[page, page])  # a stack: a slice a page
    assert main(["info", str(tmp_path / "slices")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{tmp_path / 'slices'}: 5 image file(s) (.png, .tif), each its own input"
    assert out[1:6] == ["   [1] a.png 30x40 L", "   [2] b.png 50x20 L", "   [3] c.png not a readable image "
                        "(UnidentifiedImageError)", "   [4] d.png 40x30 L, read turned 90 degrees clockwise (EXIF)",
                        "   [5] e.tif 20x30 L, 3 pages (a slice each)"]
    assert out[6].startswith(f"for lesion: each image, with ctmodels segment {tmp_path / 'slices'} --out DIR: 8-bit")
    assert main(["info", str(tmp_path / "slices"), "--json", "--purpose", "quality"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [i["name"] for i in got["images"]] == ["a.png", "b.png", "c.png", "d.png", "e.tif"]
    assert got["selected"] is None and got["images"][4]["pages"] == 3
    assert got["reason"].startswith("8-bit display image(s) have no Hounsfield units")
    assert main(["info", str(tmp_path / "slices" / "a.png")]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("selected for lesion: [1] 8-bit display image(s), "
                                                               "segmented as they are")


def test_output_into_a_pipe_closed_early_ends_without_a_word(tmp_path):
    """`ctmodels info FOLDER | head -1` printed "error: Broken pipe" once head had its line."""
    from PIL import Image

    for i in range(3000):  # more lines than a pipe holds
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / f"slice_with_a_long_name_{i:05d}.png")
    r = subprocess.run(f"{sys.executable} -m ctmodels info {tmp_path} | head -1", shell=True, capture_output=True,
                       text=True, timeout=300)
    assert r.stdout.startswith(f"{tmp_path}: 3000 image file(s)") and r.stderr == ""


def test_the_voxel_size_of_an_npy_input_can_be_given(tmp_path, capsys):
    """A .npy array gives no voxel size: 1 mm was assumed, with no volumes in mL and a breath-hold reason that says
    so, and nothing let a user give the size they know. --spacing gives it; on an input that gives its own it is
    refused before anything is written."""
    import nibabel as nib

    sp = (2.5, 0.7, 0.7)
    np.save(tmp_path / "chest.npy", chest_phantom((40, 96, 96), spacing=sp))
    assert main(["segment", str(tmp_path / "chest.npy"), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["segment", str(tmp_path / "chest.npy"), "--out", str(tmp_path / "b"), "--quiet",
                 "--spacing", "2.5,0.7,0.7"]) == 0
    rows = {k: list(csv.DictReader(open(tmp_path / k / "results.csv", encoding="utf-8")))[0] for k in "ab"}
    assert rows["a"]["lung_ml"] == "" and rows["a"]["involved_pct"] == rows["b"]["involved_pct"]
    mask = nib.load(tmp_path / "b" / "chest.mask.nii.gz")
    assert np.allclose(mask.header.get_zooms(), (0.7, 0.7, 2.5))
    lung = int((np.asarray(mask.dataobj) > 0).sum())
    assert float(rows["b"]["lung_ml"]) == pytest.approx(lung * 2.5 * 0.7 * 0.7 / 1000, abs=0.06)
    capsys.readouterr()
    assert main(["check-breath-hold", str(tmp_path / "chest.npy")]) == 0
    assert "pixel size not given (1 mm assumed)" in capsys.readouterr().out
    assert main(["check-breath-hold", str(tmp_path / "chest.npy"), "--spacing", "2.5, 0.7, 0.7"]) == 0
    assert "pixel size not given" not in capsys.readouterr().out
    np.save(tmp_path / "x.npy", np.zeros((2, 8, 8), np.int16))
    assert main(["segment", str(tmp_path / "x.npy"), str(tmp_path / "a" / "chest.mask.nii.gz"), "--out",
                 str(tmp_path / "c"), "--spacing", "1,1,1"]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'a' / 'chest.mask.nii.gz'}: --spacing is for .npy inputs, "
                                       "which do not give a voxel size; this input gives its own (or, an image slice, "
                                       "has none): leave --spacing out\n")
    assert not (tmp_path / "c").exists()
    for bad in ("1,1", "0,1,1", "a,b,c", "1,1,1e9"):
        with pytest.raises(SystemExit) as stop:
            main(["check-breath-hold", str(tmp_path / "chest.npy"), "--spacing", bad])
        assert stop.value.code == 2 and "expected three sizes in mm between 0 and 100" in capsys.readouterr().err


def test_a_full_disk_leaves_no_half_written_outputs_and_the_table_as_it_was(tmp_path, capsys, monkeypatch):
    """The disk of --out fills up while an input's overlay is written (injected ENOSPC after part of the file):
    segment wrote the mask and half the overlay, left them with no row in results.csv, went on to the next inputs,
    and said only "error: No space left on device". Now an input's outputs are written together or not at all (an
    earlier run's outputs of that input stay as they were), the run stops with one line naming the folder, the
    file and what was not done, and a re-run once there is room finishes it."""
    import errno

    from PIL import Image

    rng = np.random.default_rng(0)
    names = ["a.png", "b.png", "c.png"]
    for n in names:
        Image.fromarray((rng.random((64, 64)) * 60 + np.arange(64) * 3).astype(np.uint8)).save(tmp_path / n)
    inputs, out = [str(tmp_path / n) for n in names], tmp_path / "out"
    assert main(["segment", inputs[1], "--out", str(out), "--quiet"]) == 0  # b's outputs of an earlier run
    earlier = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")}
    real = Image.Image.save

    def full(self, fp, *args, **kwargs):
        if "overlay" in str(fp) and "a.overlay" not in str(fp):
            with open(fp, "wb") as f:
                f.write(b"\x89PNG half")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", full)
    capsys.readouterr()
    assert main(["segment", *inputs, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("error: ") == 1 and err.splitlines()[-1] == (
        f"error: {out}: could not write b.overlay.png: No space left on device; no output of b.png written "
        "(none half-written), results.csv as it was; 1 more input(s) not segmented")
    now = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {k: v for k, v in now.items() if not k.startswith("a.")} == {**earlier, "results.csv": now["results.csv"]}
    assert [r["stem"] for r in csv.DictReader(open(out / "results.csv"))] == ["b", "a"]
    monkeypatch.undo()
    (out / ".ctmodels-partial-1234abcd-c.mask.png").write_bytes(b"a run killed while writing left this")
    assert main(["segment", *inputs, "--out", str(out), "--quiet"]) == 0
    assert sorted(r["stem"] for r in csv.DictReader(open(out / "results.csv"))) == ["a", "b", "c"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{s}.{k}.png" for s in "abc" for k in ("mask", "overlay")] + ["results.csv"])
