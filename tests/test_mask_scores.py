"""ctmodels score: mean per-slice Dice of segment's masks against reference label images."""

import json

import numpy as np
import pytest
from PIL import Image

from ctmodels.cli import main
from ctmodels.errors import InvalidInputError
from ctmodels.mask_scores import score, score_folders


def _save(folder, name, arr, mode=None):
    folder.mkdir(exist_ok=True)
    Image.fromarray(arr.astype(np.uint8), mode).save(folder / name)


def _pair(tmp_path):
    """Two slices with Dice worked out by hand. Slice a: GGO 10x10 predicted as 10x5 of it (GGO Dice 2*50/150),
    consolidation 4x4 found exactly, other lung (3) around it. Slice b: no lesion, a 2x2 false GGO."""
    pred_a, ref_a = np.full((20, 30), 3), np.zeros((20, 30))
    ref_a[0:10, 0:10], pred_a[0:10, 0:5] = 1, 1
    ref_a[15:19, 20:24], pred_a[15:19, 20:24] = 2, 2
    pred_b, ref_b = np.zeros((16, 16)), np.zeros((16, 16))
    pred_b[0:2, 0:2] = 1
    for name, p, r in (("a", pred_a, ref_a), ("b", pred_b, ref_b)):
        _save(tmp_path / "pred", f"{name}.mask.png", p)
        _save(tmp_path / "pred", f"{name}.overlay.png", np.stack([p * 60] * 3, -1))  # not a mask: left alone
        _save(tmp_path / "ref", f"{name}.png", r)
    return {"a": {"infection": 2 * 66 / (66 + 116), "ggo": 2 * 50 / 150, "consolidation": 1.0},
            "b": {"infection": 0.0, "ggo": 0.0, "consolidation": 1.0}}


def test_classes_are_scored_per_slice_and_averaged_over_slices(tmp_path):
    want = _pair(tmp_path)
    _save(tmp_path / "ref", "c.png", np.zeros((8, 8)))  # a reference without a prediction
    res = score_folders(tmp_path / "pred", tmp_path / "ref")
    assert res.kind == "classes" and [r["slice"] for r in res.rows] == ["a", "b"]
    for r in res.rows:
        for c in ("infection", "ggo", "consolidation"):
            assert r[c] == pytest.approx(want[r["slice"]][c]), (r["slice"], c)
    means = res.means()
    assert means["slices"] == 2
    assert means["ggo_dice"] == pytest.approx((2 * 50 / 150 + 0.0) / 2)
    assert res.unmatched_references == ["c"] and res.unmatched_predictions == []


def test_binary_infection_references_score_infection_only(tmp_path):
    want = _pair(tmp_path)
    for name in ("a", "b"):  # the same lesions as one class, stored 0/255
        ref = np.asarray(Image.open(tmp_path / "ref" / f"{name}.png"))
        _save(tmp_path / "ref", f"{name}.png", np.where((ref == 1) | (ref == 2), 255, 0))
    res = score_folders(tmp_path / "pred", tmp_path / "ref")
    assert res.kind == "infection" and list(res.means()) == ["infection_dice", "slices"]
    assert res.means()["infection_dice"] == pytest.approx((want["a"]["infection"] + want["b"]["infection"]) / 2)
    assert all(set(r) == {"slice", "infection"} for r in res.rows)
    with pytest.raises(InvalidInputError, match="a.png: values 0 and 255: expected labels 0-3"):
        score_folders(tmp_path / "pred", tmp_path / "ref", reference="classes")


def test_cli_prints_one_line_and_writes_json_and_csv(tmp_path, capsys):
    _pair(tmp_path)
    assert main(["score", str(tmp_path / "pred"), str(tmp_path / "ref"), "--csv", str(tmp_path / "s.csv")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 slice(s), references classes: mean per-slice Dice infection 0.") and "ggo 0.333" in out
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == "slice,infection,ggo,consolidation"
    assert main(["score", str(tmp_path / "pred"), str(tmp_path / "ref"), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["slices"] == 2 and got["consolidation_dice"] == pytest.approx(1.0) and len(got["per_slice"]) == 2


def test_bad_references_are_one_line_naming_the_file(tmp_path, capsys):
    _pair(tmp_path)
    _save(tmp_path / "ref", "a.png", np.zeros((21, 30)))  # another size
    assert main(["score", str(tmp_path / "pred"), str(tmp_path / "ref")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a.mask.png: 30x20 prediction against a 30x21 reference (a.png)" in err
    _save(tmp_path / "ref", "a.png", np.full((20, 30), 7))  # neither labels 0-3 nor 0/255
    with pytest.raises(InvalidInputError, match="a.png: values 7: expected labels 0-3"):
        score_folders(tmp_path / "pred", tmp_path / "ref")
    blue = np.zeros((20, 30, 3))
    blue[..., 2] = 200
    _save(tmp_path / "ref", "a.png", blue)  # colour, not the label colours
    with pytest.raises(InvalidInputError, match=r"a.png: RGB image with colours \(0, 0, 200\): expected a one-chan"):
        score_folders(tmp_path / "pred", tmp_path / "ref")
    for side in (5000, 14000):  # over the limit; so large that Pillow refuses it as a decompression bomb
        Image.new("L", (side, side)).save(tmp_path / "ref" / "a.png")
        with pytest.raises(InvalidInputError, match="a.png: image is (5000x5000, )?larger than the 4096x4096 limit"):
            score_folders(tmp_path / "pred", tmp_path / "ref")
    with pytest.raises(InvalidInputError, match="no prediction has a reference of the same name"):
        score_folders(tmp_path / "pred", tmp_path / "pred")


def test_references_saved_again_as_rgb_score_as_their_labels(tmp_path):
    """The SemiSeg masks are palette images; the same labels saved as RGB (the palette's colours), or a 0/255 mask
    saved as grey RGB, score as the originals."""
    _pair(tmp_path)
    want = score_folders(tmp_path / "pred", tmp_path / "ref")
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0]
    for name in ("a", "b"):
        im = Image.open(tmp_path / "ref" / f"{name}.png")
        im.putpalette(palette)  # as the SemiSeg masks are stored: mode P, read as their indices
        im.save(tmp_path / "ref" / f"{name}.png")
        im.convert("RGB").save(tmp_path / "ref" / f"{name}.png")
    assert Image.open(tmp_path / "ref" / "a.png").mode == "RGB"
    got = score_folders(tmp_path / "pred", tmp_path / "ref")
    assert got.kind == "classes" and got.rows == want.rows
    for name in ("a", "b"):  # infection masks 0/255, saved as RGB
        ref = np.asarray(Image.open(tmp_path / "ref" / f"{name}.png"))
        _save(tmp_path / "ref", f"{name}.png", np.where(ref.any(-1, keepdims=True), 255, 0).repeat(3, -1))
    got = score_folders(tmp_path / "pred", tmp_path / "ref")
    assert got.kind == "infection" and [r["infection"] for r in got.rows] == [r["infection"] for r in want.rows]


def test_zips_of_masks_or_references_score_as_their_folders(tmp_path, capsys):
    """The app's masks.zip (flat) and a zip of a references folder (one folder inside) score as the folders do;
    an error inside a zip names the zip and the member, and an unsafe zip is refused in one line."""
    import zipfile

    _pair(tmp_path)
    want = score_folders(tmp_path / "pred", tmp_path / "ref")
    with zipfile.ZipFile(tmp_path / "masks.zip", "w") as z:
        for f in sorted((tmp_path / "pred").glob("*.mask.png")):
            z.write(f, f.name)
    with zipfile.ZipFile(tmp_path / "refs.zip", "w") as z:
        for f in sorted((tmp_path / "ref").iterdir()):
            z.write(f, f"GT/{f.name}")
        z.writestr("__MACOSX/GT/._a.png", b"resource fork")
    got = score(tmp_path / "masks.zip", tmp_path / "refs.zip")
    assert got.kind == want.kind and got.rows == want.rows
    _save(tmp_path / "ref", "a.png", np.full((20, 30), 7))
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as z:
        z.write(tmp_path / "ref" / "a.png", "a.png")
    with pytest.raises(InvalidInputError, match=r"bad.zip!a.png: values 7: expected labels 0-3"):
        score(tmp_path / "masks.zip", tmp_path / "bad.zip")
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as z:
        z.writestr("../a.png", b"x")
    assert main(["score", str(tmp_path / "evil.zip"), str(tmp_path / "refs.zip")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "evil.zip" in err and not (tmp_path.parent / "a.png").exists()


def test_a_class_the_reference_lacks_is_scored_by_the_rule_asked_for(tmp_path, capsys):
    """Slice b's reference has no lesion; its prediction has a 2x2 false GGO and no consolidation. ``one`` (the
    card's) scores b's consolidation 1.0; ``zero`` (Inf-Net's tool: no true positive, Dice 0) scores every class of b
    0.0; ``skip`` leaves b out of every class's mean."""
    want = _pair(tmp_path)
    a = want["a"]
    got = {rule: score_folders(tmp_path / "pred", tmp_path / "ref", empty=rule).means()
           for rule in ("one", "zero", "skip")}
    assert got["one"]["consolidation_dice"] == pytest.approx(1.0)
    assert got["zero"]["consolidation_dice"] == pytest.approx(0.5)
    assert got["zero"]["ggo_dice"] == pytest.approx(a["ggo"] / 2) == got["one"]["ggo_dice"]
    assert {c: got["skip"][f"{c}_dice"] for c in a} == pytest.approx(a) and got["skip"]["slices"] == 2
    assert main(["score", str(tmp_path / "pred"), str(tmp_path / "ref"), "--empty", "skip", "--json",
                 ]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["empty"] == "skip" and out["per_slice"][1] == {"slice": "b", "infection": None, "ggo": None,
                                                              "consolidation": None}
    assert main(["score", str(tmp_path / "pred"), str(tmp_path / "ref"), "--empty", "zero",
                 "--csv", str(tmp_path / "z.csv")]) == 0
    assert "(a class the reference lacks: zero)" in capsys.readouterr().out
    assert (tmp_path / "z.csv").read_text().splitlines()[2] == "b,0.0,0.0,0.0"
    _save(tmp_path / "ref", "a.png", np.zeros((20, 30)))  # no slice holds any lesion: nothing to average
    assert np.isnan(score_folders(tmp_path / "pred", tmp_path / "ref", empty="skip").means()["ggo_dice"])
    with pytest.raises(InvalidInputError, match="expected one of one, zero, skip"):
        score_folders(tmp_path / "pred", tmp_path / "ref", empty="half")


def test_one_class_binary_references_score_that_class(tmp_path, capsys):
    """Inf-Net's per-class folders (GT-1 GGO, GT-2 consolidation: 0/255 masks) with --reference ggo or consolidation
    score as that class of the label references does, by every rule for a slice that lacks it."""
    _pair(tmp_path)
    for name in ("a", "b"):
        ref = np.asarray(Image.open(tmp_path / "ref" / f"{name}.png"))
        for k, folder in ((1, "gt1"), (2, "gt2")):
            _save(tmp_path / folder, f"{name}.png", np.where(ref == k, 255, 0))
    for rule in ("one", "zero", "skip"):
        classes = score_folders(tmp_path / "pred", tmp_path / "ref", empty=rule)
        for kind, folder in (("ggo", "gt1"), ("consolidation", "gt2")):
            got = score_folders(tmp_path / "pred", tmp_path / folder, reference=kind, empty=rule)
            assert got.kind == kind and got.classes == (kind,)
            assert [r[kind] for r in got.rows] == [r[kind] for r in classes.rows], (rule, kind)
    assert main(["score", str(tmp_path / "pred"), str(tmp_path / "gt2"), "--reference", "consolidation"]) == 0
    assert "references consolidation: mean per-slice Dice consolidation 1.000" in capsys.readouterr().out
