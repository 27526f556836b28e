"""Evaluation tier: real CT data in ../shared/data (skipped when absent)."""

import numpy as np
import pytest

from conftest import shared
from ctmodels import io

pytestmark = pytest.mark.evaluation


def test_ct64_dicom_series_equals_nrrd_voxel_for_voxel():
    d = io.read_ct(shared("chest_ct64", "ct-64Dicom"))
    n = io.read_ct(shared("chest_ct64", "ct-64.nrrd"))
    assert d.shape == (79, 64, 64) and d.voxels.dtype == np.int16
    assert np.array_equal(d.voxels, n.voxels)
    assert d.spacing == pytest.approx(n.spacing, abs=1e-3)
    assert d.spacing == pytest.approx((3.987, 4.1719, 4.1719), abs=1e-3)
    # HU range as documented in PROVENANCE.txt
    assert d.voxels.min() == -1007 and d.voxels.max() == 1095
    # canonical z runs feet -> head: the airway label (trachea) sits in the upper slices
    lm = io.read_labels(shared("chest_ct64", "lm-64.nrrd")).voxels
    z_airway = np.flatnonzero((lm == 512).any(axis=(1, 2)))
    assert z_airway.min() >= 30 and z_airway.max() == 78


@pytest.mark.parametrize("folder,name", [("chest_cta_crop", "ct_cropped.nii.gz"), ("chest_ct64", "ct-64.nrrd")])
def test_real_scans_written_by_itk_as_metaimage_read_as_their_originals(tmp_path, folder, name):
    """ITK (SimpleITK) reads each real scan and writes it as .mhd + compressed .zraw, with the fields it adds from
    the source's header: the MetaImage reads to the original's voxels, grid and position in the world."""
    import SimpleITK as sitk

    src = shared(folder, name)
    sitk.WriteImage(sitk.ReadImage(str(src)), str(tmp_path / "scan.mhd"), True)
    a, b = io.read_ct(src), io.read_ct(tmp_path / "scan.mhd")
    assert np.array_equal(a.voxels, b.voxels) and a.spacing == pytest.approx(b.spacing)
    assert np.allclose(a.meta.layout.affine, b.meta.layout.affine, atol=1e-3)


def test_cta_crop_nifti_spacing_and_orientation():
    v = io.read_ct(shared("chest_cta_crop", "ct_cropped.nii.gz"))
    assert v.spacing == pytest.approx((1.5, 1.5, 1.5))
    assert v.shape == (164, 126, 120)
    # the trachea (air inside the body) is in the top slices, i.e. at high z (superior)
    top = v.voxels[150]
    assert (top < -900).sum() > 50


def test_simple_dicom_ge_standard_kernel():
    series = io.list_series(shared("chest_ct64", "simple_dicom"))
    assert len(series) == 1 and series[0].kernel == "STANDARD" and series[0].kernel_class == "soft"
    v = io.read_ct(shared("chest_ct64", "simple_dicom"))
    assert v.shape == (2, 512, 512) and v.voxels.min() == -3024


# ------------------------------------------------------------------ display windows (ctmodels/display_window.py)
LUNG_WINDOWS = [(-600, 1500), (-550, 1600), (-500, 2000), (-600, 1200), (-500, 1000), (-650, 1000), (-500, 1400)]
OTHER_WINDOWS = [(40, 400), (50, 350), (50, 500), (400, 1800), (500, 2000)]  # soft tissue, bone


def _windowed(hu, center, width, jpeg=False):
    import io as bytes_io

    from PIL import Image

    u8 = (np.clip((hu.astype(np.float64) - (center - width / 2)) / width, 0, 1) * 255).round().astype(np.uint8)
    if not jpeg:
        return u8
    out = []
    for s in u8:
        buf = bytes_io.BytesIO()
        Image.fromarray(s).save(buf, "JPEG", quality=75)
        out.append(np.asarray(Image.open(buf)))
    return np.stack(out)


def _real_chests():
    cta = io.read_ct(shared("chest_cta_crop", "ct_cropped.nii.gz")).voxels
    ct64 = io.read_ct(shared("chest_ct64", "ct-64.nrrd")).voxels
    return {"chest_cta_crop": cta, "ct-64 (4x)": np.stack([np.kron(s, np.ones((4, 4))) for s in ct64])}


def _pieces_outside(mask, body):
    """Pixels of ``mask`` in its pieces (touching by an edge or a corner) that lie mostly outside ``body``."""
    from scipy import ndimage

    lab, n = ndimage.label(mask, np.ones((3, 3)))
    if n == 0:
        return 0
    inside = ndimage.mean(body, lab, np.arange(1, n + 1))
    return int(np.isin(lab, np.flatnonzero(inside < 0.5) + 1).sum())


def second_share(body):
    """The second largest piece of a 2D body mask as a share of the largest (0 for one piece)."""
    from scipy import ndimage

    lab, n = ndimage.label(body)
    sizes = np.sort(np.bincount(lab.ravel())[1:])
    return sizes[-2] / sizes[-1] if n > 1 else 0.0


def test_display_body_holds_every_training_slice_s_reference_and_real_lungs_in_lung_windows():
    """ctmodels/body.py's docstring: the body found in a display slice's grey levels leaves none of the training
    slices' reference lung (lung-infection set) or lesion (SemiSeg) outside, nor any lung air of two real chest
    CTs in seven lung windows (also as JPEG), overlaps their HU body by at least 0.96, and its level stands for
    -500 to -680 HU there. Each is one body: a second piece (an arm) is under 0.2 of the largest, where
    body.body_pieces counts another patient from 0.5; and no training slice's patient is small enough to be read
    in body.zoom_box's box."""
    from PIL import Image

    from ctmodels.body import body_mask, display_tissue_level, zoom_box
    from ctmodels.lung_air import lung_air

    pairs = [(f, shared("covid_ct_lung_infection_slices", "lungs", f.name))
             for f in sorted(shared("covid_ct_lung_infection_slices", "ct").iterdir())]
    masks = {m.stem: m for m in shared("covid_semiseg_train", "masks").iterdir()}
    pairs += [(f, masks[f.stem]) for f in sorted(shared("covid_semiseg_train", "images").iterdir())]
    assert len(pairs) == 1664
    for img, ref in pairs:
        ref = np.asarray(Image.open(ref).convert("L")) > 0
        body = body_mask(np.asarray(Image.open(img).convert("L")), True)
        assert ref.any() and _pieces_outside(ref, body) == 0
        assert second_share(body) < 0.2, img  # body.body_pieces: one patient (an arm at most 0.18 of it)
        assert zoom_box(body) == (slice(None), slice(None)), img  # spans at least 0.84: never read in a box
    for name, hu in _real_chests().items():
        air, want = lung_air(hu), body_mask(hu)
        for center, width in LUNG_WINDOWS:
            for jpeg in (False, True):
                u8 = _windowed(hu, center, width, jpeg)
                got = body_mask(u8, display=True)
                assert max(second_share(g) for g in got) < 0.2, (name, center, width, jpeg)
                assert sum(_pieces_outside(air[i], got[i]) for i in range(len(u8))) == 0, (name, center, width)
                iou = [(g & w).sum() / (g | w).sum() for g, w in zip(got, want) if w.any()]
                assert min(iou) >= 0.96, (name, center, width, jpeg)
                levels = [display_tissue_level(s) / 255 * width + center - width / 2 for s in u8]
                assert -690 < min(levels) and max(levels) < -490, (name, center, width, jpeg)


def test_every_training_slice_reads_as_a_lung_window():
    from PIL import Image

    from ctmodels.display_window import (GREY_TISSUE, MAX_BLACK_SHARE, SOME_BLACK, black_share, check_lung_window,
                                         tissue_grey)

    files = sorted(shared("covid_semiseg_train", "images").iterdir())
    files += sorted(shared("covid_ct_lung_infection_slices", "ct").iterdir())
    assert len(files) == 1664
    images = [np.asarray(Image.open(f).convert("L")) for f in files]
    shares = np.array([black_share(u8) for u8 in images])
    assert max(shares) <= 0.025 < MAX_BLACK_SHARE  # the module's docstring quotes 0.025
    assert max(shares) < SOME_BLACK  # so the mid-grey rule never looks at their tissue ...
    grey = np.array([tissue_grey(u8) for u8 in images])
    assert grey.min() < GREY_TISSUE  # ... which could be mid-grey: the contrast-enhanced slices are dim
    assert 80 < grey.min() and grey[shares > 0.01].min() > 190 and shares[grey < GREY_TISSUE].max() <= 0.006
    for u8 in images:
        check_lung_window(u8)


def test_real_chest_ct_in_lung_windows_passes_and_in_soft_tissue_or_bone_windows_is_refused():
    from ctmodels.display_window import (MAX_BLACK_SHARE, SOME_BLACK, black_share, check_lung_window, tissue_grey,
                                         window_refusal)
    from ctmodels.errors import NotLungWindowError

    for name, hu in _real_chests().items():
        for center, width in LUNG_WINDOWS:
            for jpeg in (False, True):
                u8 = _windowed(hu, center, width, jpeg)
                assert max(black_share(s) for s in u8) <= 0.08, (name, center, width, jpeg)  # docstring: 0.08
                assert not any(window_refusal(s) for s in u8), (name, center, width, jpeg)  # no slice refused
                assert min(tissue_grey(s) for s in u8) >= 180, (name, center, width, jpeg)  # docstring: 180 or more
                check_lung_window(u8)
        for center, width in OTHER_WINDOWS:
            for jpeg in (False, True):
                u8 = _windowed(hu, center, width, jpeg)
                shares = np.array([black_share(s) for s in u8])
                assert np.mean(shares >= MAX_BLACK_SHARE) > 0.70, (name, center, width, jpeg)  # black alone
                refused = np.array([window_refusal(s) is not None for s in u8])  # with the mid-grey tissue too
                assert refused.mean() >= (1.0 if name == "chest_cta_crop" else 0.95), (name, center, width, jpeg)
                assert all(shares[~refused] < SOME_BLACK), (name, center, width, jpeg)  # the last bases: 2-3 %
                with pytest.raises(NotLungWindowError):
                    check_lung_window(u8)


@pytest.mark.parametrize("z, size, why, grade", [
    (62, (512, 512), "is pure black, as the lungs are in such a window", ",CT-0,"),
    (10, (480, 504), "is pure black and its tissue is mid-grey", "")])
def test_a_real_slice_saved_in_a_soft_tissue_window_is_refused_and_in_a_lung_window_graded(tmp_path, capsys, z, size,
                                                                                           why, grade):
    """chest_cta_crop's slice 62 (the heart) in W 400 / L 40 is refused for its black lungs. Its slice 10, at the lung
    bases, is 8 % pure black there (7 % made 4x larger): it passed the black rule alone and was graded CT-4, about
    89 % involved; its tissue is mid-grey, so it is refused too. In W 1500 / L -600 both are graded (slice 62 of these
    clear lungs CT-0; CT-1 with the weights bundled before 2026-11-30)."""
    from PIL import Image

    from ctmodels.cli import main

    hu = io.read_ct(shared("chest_cta_crop", "ct_cropped.nii.gz")).voxels[z]
    for name, (center, width) in {"lung": (-600, 1500), "soft": (40, 400)}.items():
        Image.fromarray(_windowed(hu[None], center, width)[0]).resize(size).save(tmp_path / f"{name}.png")
    code = main(["segment", str(tmp_path / "soft.png"), str(tmp_path / "lung.png"), "--out", str(tmp_path / "o"),
                 "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "soft.png: looks like a soft-tissue or bone window" in err
    assert f"% of the patient's outline {why}" in err
    rows = (tmp_path / "o" / "results.csv").read_text().splitlines()
    assert len(rows) == 2 and "lung.png" in rows[1] and grade in rows[1]
    assert not (tmp_path / "o" / "soft.mask.png").exists()


def test_ctmodels_own_outputs_of_a_real_slice_read_back_as_slices_are_refused(tmp_path, capsys):
    """Run over a folder that holds its last run's outputs, ``segment`` once graded its own overlay of a training
    slice CT-1 (21 % involved; the slice itself CT-2, 31 %) and its mask as "no lung found"."""
    import shutil

    from ctmodels.cli import main

    shutil.copy(shared("covid_ct_lung_infection_slices", "ct", "0300.png"), tmp_path / "s.png")
    assert main(["segment", str(tmp_path / "s.png"), "--out", str(tmp_path), "-q"]) == 0
    first = (tmp_path / "results.csv").read_text().splitlines()[1]
    assert ",CT-2," in first
    capsys.readouterr()
    outputs = [str(tmp_path / n) for n in ("s.mask.png", "s.overlay.png")]
    code = main(["segment", *outputs, str(tmp_path / "s.png"), "--out", str(tmp_path / "again"), "-q"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 2
    assert "s.mask.png: looks like a label map or mask, not a CT slice: 4 grey levels (0, 1, 2, 3)" in err[0]
    assert "s.overlay.png: colour covers" in err[1] and "expected a grey CT slice" in err[1]
    rows = (tmp_path / "again" / "results.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].split(",")[1:] == first.split(",")[1:]  # the slice itself: as before


def test_no_training_slice_or_real_lung_window_slice_has_a_light_frame():
    from PIL import Image

    from ctmodels.preprocessing import frame_box

    whole = (slice(None), slice(None))
    files = sorted(shared("covid_semiseg_train", "images").iterdir())
    files += sorted(shared("covid_ct_lung_infection_slices", "ct").iterdir())
    assert all(frame_box(np.asarray(Image.open(f).convert("L"))) == whole for f in files)
    for name, hu in _real_chests().items():  # W 1000 / L -650 takes the tissue at the crop's edges to 255
        for center, width in LUNG_WINDOWS:
            for jpeg in (False, True):
                assert all(frame_box(s) == whole for s in _windowed(hu, center, width, jpeg)), (name, center, width)


def test_a_real_slice_in_a_white_frame_is_graded_as_the_slice_itself(tmp_path, caplog):
    """A training slice framed in white, as a figure shows it, was graded 49.9 % involved (the slice: 30.8 %)."""
    from PIL import Image

    from ctmodels.cli import main

    s = np.asarray(Image.open(shared("covid_ct_lung_infection_slices", "ct", "0300.png")).convert("L"))
    Image.fromarray(s).save(tmp_path / "slice.png")
    Image.fromarray(np.pad(s, 60, constant_values=255)).save(tmp_path / "figure.png")
    assert main(["segment", str(tmp_path / "slice.png"), str(tmp_path / "figure.png"), "--out",
                 str(tmp_path / "o"), "-q"]) == 0
    import csv

    rows = list(csv.DictReader(open(tmp_path / "o" / "results.csv")))
    assert rows[0]["involved_pct"] == rows[1]["involved_pct"] and rows[0]["grade"] == rows[1]["grade"] == "CT-2"
    assert rows[0]["warnings"] == "" and rows[1]["warnings"].startswith("a light frame round the image")
    assert np.asarray(Image.open(tmp_path / "o" / "figure.mask.png")).shape == (376, 376)
    assert any(r.getMessage().startswith("figure.png: a light frame") for r in caplog.records)  # named in the log
