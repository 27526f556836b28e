"""CLI: subcommands, info output, one-line errors with exit status 2."""

import json
import subprocess
import sys

import pytest

from ctmodels.cli import main
from synth import chest_phantom, write_series


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


def test_python_dash_m_and_console_script(tmp_path):
    r = subprocess.run([sys.executable, "-m", "ctmodels", "info", str(tmp_path / "x.png")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "x.png" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "ctmodels", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "segment" in r.stdout


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


def test_segment_keeps_hu_labels_inside_the_body_unless_told_not_to(tmp_path):
    """The synthetic example as NIfTI: the bundled model labels air around the phantom as lung, and
    the body mask makes it background in the written mask; --no-body-mask keeps the model's labels (with
    --no-air-anchor, which would take most of them away too)."""
    import numpy as np

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
        mask = ctio.read_ct(out / "ex.mask.nii.gz").voxels
        outside_labels.append(int((mask[outside] > 0).sum()))
    # the labelled pieces outside the body hold no lung air either: the anchor alone takes most of them
    assert outside_labels[0] == 0 and outside_labels[1] < outside_labels[2] / 2 and outside_labels[2] > 1000

