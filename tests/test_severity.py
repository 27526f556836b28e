"""Involvement, MosMed grades, P(extensive) and the cohort calibration (known answers)."""

import math

import numpy as np
import pytest

from ctmodels import severity as S
from ctmodels.errors import InvalidInputError


@pytest.mark.parametrize("pct,grade", [(0, "CT-0"), (0.05, "CT-0"), (1, "CT-1"), (24.9, "CT-1"), (25, "CT-2"),
                                       (49.9, "CT-2"), (50, "CT-3"), (74.9, "CT-3"), (75, "CT-4"), (100, "CT-4")])
def test_mosmed_grade_boundaries(pct, grade):
    assert S.mosmed_grade(pct) == grade


def test_involvement_is_share_of_lung():
    counts = np.array([[1000, 30, 10, 60], [500, 0, 0, 100]])  # bg, ggo, cons, lung
    inv = S.involvement(counts)
    assert inv["ggo_pct"] == pytest.approx(100 * 30 / 200)
    assert inv["consolidation_pct"] == pytest.approx(100 * 10 / 200)
    assert inv["involved_pct"] == pytest.approx(100 * 40 / 200)
    assert S.involvement(np.array([[10, 0, 0, 0]]))["involved_pct"] == 0.0


def _study(pct, n=30, lung=1000):
    les = lung * pct / 100
    counts = np.tile([5000, les * 0.7, les * 0.3, lung - les], (n, 1))
    return counts, counts.astype(float)


def test_extensive_probability_is_monotone_and_centred():
    ps = [S.extensive_probability(*_study(p)) for p in (5, 30, 45, 50, 55, 70, 95)]
    assert all(a <= b for a, b in zip(ps, ps[1:]))
    assert ps[0] < 0.01 and ps[-1] > 0.99
    assert ps[3] == pytest.approx(0.5, abs=0.02)
    # a larger measured error widens the uncertain band
    assert S.extensive_probability(*_study(45), error_sd_pp=30) > S.extensive_probability(*_study(45), error_sd_pp=5)
    # soft probabilities that disagree with the hard labels add uncertainty
    c, _ = _study(40)
    soft = c.astype(float).copy()
    soft[:, 1] *= 1.4
    soft[:, 3] -= c[:, 1] * 0.4
    assert S.extensive_probability(c, soft) > S.extensive_probability(c, c.astype(float))


def test_assess_report():
    rep = S.assess(*_study(60))
    assert rep.grade == "CT-3" and rep.extent_class == "C" and rep.involved_pct == pytest.approx(60)
    assert len(rep.per_slice) == 30
    none = S.assess(np.array([[100, 0, 0, 0]]), np.array([[100.0, 0, 0, 0]]))
    assert not none.lung_found and none.grade == "n/a" and none.extent_class == "n/a"
    assert math.isnan(none.p_extensive) and "no lung found" in none.notes[0]


def test_no_lung_gives_no_probability_whatever_the_soft_counts_hold():
    """Labels with no lung: the soft counts are small probabilities whose ratio means nothing (a black
    image gave P(extensive) 0.58 before this was caught); the probability is NaN, not a guess."""
    hard = np.array([[65536, 0, 0, 0]])
    for soft in ([65534.7, 0.8, 0.0, 0.5], [65493.4, 32.2, 2.0, 8.4], [65535.99, 0.0, 0.0, 0.01]):
        assert math.isnan(S.extensive_probability(hard, np.array([soft])))
    rep = S.assess(hard, np.array([[65534.7, 0.8, 0.0, 0.5]]))
    assert (rep.grade, rep.extent_class, S.format_probability(rep.p_extensive)) == ("n/a", "n/a", "n/a")
    # one slice of a study without lung does not make the study's probability undefined
    two = S.assess(np.array([[900, 0, 0, 0], [500, 300, 0, 200]]), np.array([[899.0, 0.7, 0, 0.3], [500, 300, 0, 200]]))
    assert two.lung_found and two.grade == "CT-3" and two.extent_class == "C" and S.format_probability(two.p_extensive) != "n/a"
    assert S.mosmed_grade(float("nan")) == "n/a" and S.extent_class(float("nan")) == "n/a"
    assert two.notes == []


def test_little_lung_is_graded_with_a_warning():
    """An abdominal slice with a little bowel gas called lung (as a real GE slice gave: 379 of 262144 px)."""
    little = S.assess(np.array([[261765, 0, 55, 324]]), np.array([[261765.0, 0, 55, 324]]))
    assert little.grade == "CT-1" and little.notes and little.notes[0].startswith("little lung found (at most 0.1 %")
    # a study whose lowest slices have little lung, but whose other slices are chest: no warning
    chest = np.array([[261765, 0, 55, 324], [200000, 1000, 0, 61144]])
    assert S.assess(chest, chest.astype(float)).notes == []


def test_too_little_lung_is_not_graded():
    """Fewer than MIN_LUNG_PIXELS lung pixels in all (a head CT slice: 6 pixels called GGO, no other lung) would be
    graded CT-4 at 100 %; it gets no grade, P(extensive) or class, and a note. The percentages are as measured.
    At MIN_LUNG_PIXELS the input is graded."""
    few = S.assess(np.array([[262138, 6, 0, 0]]), np.array([[262130.0, 10, 0, 4]]))
    assert (few.grade, few.extent_class, S.format_probability(few.p_extensive)) == ("n/a", "n/a", "n/a")
    assert not few.lung_found and few.lung_pixels == 6 and few.involved_pct == pytest.approx(100)
    assert few.notes == ["too little lung found (6 pixels, fewer than 100): no grade or P(extensive) is given "
                         "(expected an axial chest CT slice or study)"]
    # counted over the whole input, not per slice
    study = S.assess(np.array([[1000, 40, 0, 0], [1000, 0, 0, 60 - 1]]), np.ones((2, 4)))
    assert not study.lung_found and study.lung_pixels == S.MIN_LUNG_PIXELS - 1
    enough = S.assess(np.array([[1000, 40, 0, 0], [1000, 0, 0, 60]]), np.array([[1000.0, 40, 0, 0], [1000, 0, 0, 60]]))
    assert enough.lung_found and enough.grade == "CT-2" and enough.extent_class != "n/a"


def test_calibration_recovers_known_thresholds():
    """Truth P(extensive | x) = logistic((x - 50) / 5): A/B at P = 1/3 (x = 46.5), B/C at 2/3 (x = 53.5)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 100, 20000)
    p = 1 / (1 + np.exp(-(x - 50) / 5))
    y = rng.random(x.size) < p
    cal = S.fit_extent_calibration(x, y)
    assert cal.t_ab_pct == pytest.approx(50 + 5 * math.log(0.5), abs=2.0)
    assert cal.t_bc_pct == pytest.approx(50 + 5 * math.log(2.0), abs=2.0)
    assert cal.predict_class([10, 50, 90]) == ["A", "B", "C"]
    assert np.all(np.diff(cal.p_smooth) >= 0)
    assert cal.predict_proba([20])[0] < 0.05 and cal.predict_proba([80])[0] > 0.95


def test_calibration_with_a_sharp_step_has_a_narrow_b_band():
    x = np.linspace(0, 100, 5000)
    cal = S.fit_extent_calibration(x, x >= 60)
    assert 55 <= cal.t_ab_pct <= cal.t_bc_pct <= 65


def test_calibration_rejects_bad_input():
    with pytest.raises(ValueError):
        S.fit_extent_calibration([1.0], [True])
    with pytest.raises(ValueError):
        S.fit_extent_calibration([1.0, float("nan")], [True, False])


def test_calibration_refuses_involvement_that_is_not_a_percentage():
    """Involvement outside 0-100 was clipped into the end bins without a word; given as fractions of the lung
    (0-1, as other tools give it) every patient fell in the 0 % bin and the fit gave thresholds at 0 with no
    warning. Both are refused; a cohort of only mild patients (none extensive) is not taken for fractions."""
    x = np.linspace(0, 100, 400)
    with pytest.raises(InvalidInputError, match=r"2 involvement value\(s\) outside 0-100 \(-5..140\)"):
        S.fit_extent_calibration(np.r_[x, -5, 140], np.r_[x >= 50, False, True])
    with pytest.raises(InvalidInputError, match=r"look like fractions of the lung \(0-1\)"):
        S.fit_extent_calibration(x / 100, x >= 50)
    assert S.fit_extent_calibration(x, x >= 50).t_bc_pct == pytest.approx(50, abs=3)
    with pytest.raises(InvalidInputError, match="all 400 patients are labelled not extensive"):
        S.fit_extent_calibration(x / 100, x < 0)


def test_inputs_unlike_the_training_data_are_flagged(tmp_path, capsys):
    """A coarse 64 px, 4 mm volume gets both warnings (CLI stderr and results.csv); a 218x272 slice none."""
    import csv

    from PIL import Image

    from ctmodels import io as ctio
    from ctmodels.cli import main
    from ctmodels.phantoms import chest_phantom
    from ctmodels.pipeline import input_warnings

    sp = (4.0, 4.2, 4.2)
    coarse = ctio.write_volume_nifti(chest_phantom(sp, extent_mm=40, fov_mm=270, seed=3), sp, tmp_path / "coarse.nii.gz")
    from ctmodels.examples import lesion_volume
    from ctmodels.preprocessing import window_hu

    fine = tmp_path / "fine.png"  # a 218x272 display slice of the synthetic chest (it has lung)
    Image.fromarray(window_hu(lesion_volume(n_slices=1).voxels[0], -600, 1500)).save(fine)
    assert main(["segment", str(coarse), str(fine), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "coarse.nii.gz: image is" in err and "pixels are 4.2 mm" in err and "fine.png" not in err
    rows = {r["stem"]: r for r in csv.DictReader(open(tmp_path / "o" / "results.csv"))}
    assert "unreliable" in rows["coarse"]["warnings"] and rows["fine"]["warnings"] == ""
    assert input_warnings(ctio.read_ct(fine)) == []


def test_volumes_are_label_counts_times_the_voxel_size():
    counts = np.array([[900, 10, 5, 85], [800, 0, 20, 180]])  # two slices: bg, GGO, consolidation, other lung
    ml = S.volumes_ml(counts, (2.0, 0.5, 0.5))  # 0.5 mm^3 a voxel
    want = {"lung_ml": 0.15, "ggo_ml": 0.005, "consolidation_ml": 0.0125, "involved_ml": 0.0175}
    assert ml == pytest.approx(want)
    assert S.format_volumes({"lung_ml": 4304.0, "ggo_ml": 317.1, "consolidation_ml": 1.5, "involved_ml": 318.6}) \
        == "lung 4.30 L, GGO 317 mL, consolidation 2 mL"


def test_volumes_are_given_only_where_the_input_gave_its_voxel_size(tmp_path):
    """results.csv has lung, GGO and consolidation in mL for a NIfTI study and a DICOM series (their spacing is
    in the file), and leaves them empty for a PNG slice and a .npy volume (1 mm assumed), and for a DICOM series
    without PixelSpacing. The NIfTI's mL are its labelled voxels times its voxel size."""
    import csv

    import pydicom

    from ctmodels import io as ctio
    from ctmodels.cli import main
    from ctmodels.examples import lesion_volume
    from ctmodels.preprocessing import window_hu
    from synth import write_series

    v = lesion_volume(n_slices=4)
    nii = ctio.write_volume_nifti(v.voxels, v.spacing, tmp_path / "study.nii.gz")
    np.save(tmp_path / "arr.npy", v.voxels)
    from PIL import Image

    Image.fromarray(window_hu(v.voxels[1], -600, 1500)).save(tmp_path / "slice.png")
    dcm = write_series(tmp_path / "series", v.voxels, spacing=v.spacing)
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in dcm:
        ds = pydicom.dcmread(f)
        del ds.PixelSpacing
        ds.save_as(bare / f.name)
    ins = [nii, tmp_path / "arr.npy", tmp_path / "slice.png", tmp_path / "series", bare]
    assert main(["segment", *map(str, ins), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    rows = {r["stem"]: r for r in csv.DictReader(open(tmp_path / "o" / "results.csv"))}
    for stem in ("arr", "slice", "bare"):
        assert rows[stem]["lung_ml"] == rows[stem]["ggo_ml"] == rows[stem]["consolidation_ml"] == "", stem
    mask = ctio.read_labels(tmp_path / "o" / "study.mask.nii.gz")
    voxel_ml = float(np.prod(v.spacing)) / 1000
    assert float(rows["study"]["lung_ml"]) == pytest.approx((mask.voxels > 0).sum() * voxel_ml, abs=0.1)
    assert float(rows["study"]["ggo_ml"]) == pytest.approx((mask.voxels == 1).sum() * voxel_ml, abs=0.1)
    assert float(rows["study"]["lung_ml"]) > 100
    assert float(rows["series"]["lung_ml"]) == pytest.approx(float(rows["study"]["lung_ml"]), rel=0.02)


def test_the_key_slice_is_the_most_involved_of_the_series_own_slices():
    """The slice shown first (the CLI's overlay, the app's slider) is the one with most GGO and consolidation,
    but never one the reader made where the series lacked it; a volume of made slices only still has one."""
    from types import SimpleNamespace

    from ctmodels.pipeline import StudySeverity
    from ctmodels.types import CTVolume, VolumeMeta

    counts = np.array([[90, 0, 0, 10], [50, 30, 5, 15], [40, 50, 0, 10], [60, 20, 0, 20]])
    vol = CTVolume(np.zeros((4, 2, 2), np.int16), (1.0, 1.0, 1.0), VolumeMeta())
    study = StudySeverity(vol, SimpleNamespace(pixel_counts=counts), None)
    assert study.key_slice == 2
    vol.meta.interpolated_slices = [2]
    assert study.key_slice == 1
    vol.meta.interpolated_slices = [0, 1, 2, 3]
    assert study.key_slice == 2


def test_segment_writes_a_per_slice_table_that_flags_filled_in_slices(tmp_path):
    """For each volume, `segment` writes <stem>.slices.csv (the app's CSV download is the same table): one row per
    slice with its S position, whether the reader filled it in where the series lacked it, its lung mL and its %
    involved, as the written mask gives them; no position and no mL where the input has neither."""
    import csv

    from ctmodels import io as ctio
    from ctmodels.cli import main
    from ctmodels.examples import lesion_volume
    from PIL import Image
    from synth import write_series

    v = lesion_volume(n_slices=6)
    write_series(tmp_path / "gaps", v.voxels, spacing=v.spacing, skip=(2,))
    np.save(tmp_path / "arr.npy", v.voxels)
    Image.fromarray(np.full((200, 200), 40, np.uint8)).save(tmp_path / "slice.png")
    out = tmp_path / "o"
    assert main(["segment", str(tmp_path / "gaps"), str(tmp_path / "arr.npy"), str(tmp_path / "slice.png"),
                 "--out", str(out), "--quiet"]) == 0
    assert not (out / "slice.slices.csv").exists()  # one image: results.csv says it all
    vol = ctio.read_ct(tmp_path / "gaps")
    assert vol.meta.interpolated_slices == [2]
    rows = list(csv.DictReader(open(out / "gaps.slices.csv")))
    mask = ctio.read_labels(out / "gaps.mask.nii.gz").voxels  # on the series' grid, slices first
    assert [int(r["slice"]) for r in rows] == list(range(6)) and mask.shape[0] == 6
    assert [int(r["interpolated"]) for r in rows] == [0, 0, 1, 0, 0, 0]
    assert [float(r["s_mm"]) for r in rows] == pytest.approx([vol.position_mm(z) for z in range(6)], abs=0.01)
    voxel_ml = float(np.prod(vol.spacing)) / 1000
    for r, m in zip(rows, mask):
        lung = int((m > 0).sum())
        assert float(r["lung_ml"]) == pytest.approx(lung * voxel_ml, abs=0.01)
        assert float(r["involved_pct"]) == pytest.approx(100 * np.isin(m, (1, 2)).sum() / max(lung, 1), abs=0.001)
    study = next(csv.DictReader(open(out / "results.csv")))
    assert sum(float(r["lung_ml"]) for r in rows) == pytest.approx(float(study["lung_ml"]), abs=0.1)
    assert float(study["lung_ml"]) > 50 and max(float(r["involved_pct"]) for r in rows) > 5
    bare = list(csv.DictReader(open(out / "arr.slices.csv")))
    assert len(bare) == 6 and all(r["s_mm"] == r["lung_ml"] == "" and r["interpolated"] == "0" for r in bare)


def test_the_synthetic_example_carries_the_labels_it_was_made_with():
    """The lesion example's made labels lie where its HU say they do (GGO made at -550 HU, consolidation at -20,
    lung at -860 with vessels), and its made involvement is severity.involvement of those labels."""
    from ctmodels import examples

    vol = examples.lesion_volume(n_slices=6)
    made = vol.meta.extra["made_labels"]
    assert made.shape == vol.shape and made.dtype == np.uint8 and set(np.unique(made)) == {0, 1, 2, 3}
    hu = vol.voxels.astype(np.float64)
    assert abs(np.median(hu[made == 1]) + 550) < 60 and abs(np.median(hu[made == 2]) + 20) < 60
    assert np.median(hu[made == 3]) < -700
    counts = np.stack([(made == k).sum((1, 2)) for k in range(4)], -1)
    want = S.involvement(counts)
    got = examples.made_involvement(vol)
    assert got == pytest.approx(want) and 0 < got["consolidation_pct"] < got["involved_pct"] < 100
    assert examples.made_involvement(vol, 5) == pytest.approx(S.involvement(counts[5]))
    vol.meta.extra.pop("made_labels")
    assert examples.made_involvement(vol) is None


def test_counts_that_are_not_per_class_counts_are_refused():
    """Counts were reshaped to [n, 4] whatever their shape: a flat list of 12 counts read as 3 slices, counts per 5
    classes a numpy reshape error, negative counts taken as no lung, and pixel and soft counts of different numbers
    of slices assessed together. Each is one InvalidInputError line now; per-class counts of any [..., 4] shape
    are read as before."""
    with pytest.raises(InvalidInputError, match=r"shape \(12,\), expected \[\.\.\., 4\]"):
        S.involvement(np.arange(12))
    with pytest.raises(InvalidInputError, match=r"shape \(3, 5\)"):
        S.involvement(np.ones((3, 5)))
    with pytest.raises(InvalidInputError, match=r"negative values \(-1\)"):
        S.assess(-np.ones((3, 4)), np.ones((3, 4)))
    with pytest.raises(InvalidInputError, match=r"pixel counts of 3 slice\(s\) but soft counts of 2"):
        S.assess(np.ones((3, 4)), np.ones((2, 4)))
    with pytest.raises(InvalidInputError, match="NaN"):
        S.extensive_probability(np.ones((2, 4)), np.full((2, 4), np.nan))
    counts = np.array([[[900, 30, 10, 60]], [[800, 0, 0, 200]]])  # [z, 1, 4]
    assert S.involvement(counts)["involved_pct"] == pytest.approx(100 * 40 / 300)
    assert S.assess(counts, counts.astype(float)).grade == "CT-1"
