"""Breath-hold check: trachea search, sub-voxel shape, simulation, verdicts."""

import math

import numpy as np
import pytest

from ctmodels import quality as Q
from ctmodels import trachea as T
from ctmodels.phantoms import chest_phantom
from ctmodels.preprocessing import block_mean
from ctmodels.types import DISPLAY, CTVolume, VolumeMeta


@pytest.mark.parametrize("spacing", [(0.6, 0.5, 0.5), (2.5, 0.8, 0.8), (5.0, 0.7, 0.7), (1.0, 1.5, 1.5)])
def test_trachea_is_followed_to_the_carina_in_mm(spacing):
    hu = chest_phantom(spacing, extent_mm=90, carina_frac=0.35, seed=3)
    tr = Q.locate_trachea(hu, spacing)
    assert tr.found and "divides" in tr.reason
    true_carina_mm = round(0.35 * hu.shape[0]) * spacing[0]
    # carina found within one slice or 3 mm, whichever is larger
    assert abs(tr.carina_z * spacing[0] - true_carina_mm) <= max(spacing[0], 3.0) + 1e-6
    keep = T.select_slices(tr, spacing)
    assert len(keep) >= 2
    assert all((tr.z[i] - tr.carina_z) * spacing[0] >= 15.0 for i in keep)


def test_a_sloping_trachea_is_followed_and_passes():
    """chest_phantom(slope_deg=20): the lumen's centre moves back by tan(20 deg) mm per mm of descent, as the
    tracked centroids show; the phantom still passes, and slope 0 is the straight tube."""
    sp = (2.0, 0.7, 0.7)
    hu = chest_phantom(sp, extent_mm=90, seed=4, slope_deg=20.0)
    tr = Q.locate_trachea(hu, sp)
    assert tr.found
    z_mm = np.array(tr.z) * sp[0]
    y_mm = np.array([c[0] for c in tr.centroid_mm])
    slope = np.polyfit(z_mm, y_mm, 1)[0]  # mm back per mm up: negative, the trachea lies further back lower down
    assert slope == pytest.approx(-math.tan(math.radians(20.0)), abs=0.05)
    assert Q.BreathHoldChecker.from_pretrained().predict(_vol(hu, sp)).verdict == "pass"
    straight = Q.locate_trachea(chest_phantom(sp, extent_mm=90, seed=4), sp)
    assert np.ptp([c[0] for c in straight.centroid_mm]) < 1.0


def test_slice_candidates_ignore_where_the_body_sits_in_the_field_of_view():
    """Candidates are labelled inside the body's bounding box only; that must give the same air
    components, in the same mm, wherever the body is, and still drop air cut by the image edge."""
    sp = (2.0, 0.8, 0.8)
    hu = chest_phantom(sp, extent_mm=60, carina_frac=0.3, seed=1)
    k = hu.shape[0] - 3  # above the carina: trachea and both lungs
    sl = hu[k]
    small, lungs = T.slice_candidates(sl, sp[1:])
    assert len(small) >= 1 and len(lungs) == 2
    dy, dx = 37, 11
    big = np.full((sl.shape[0] + 80, sl.shape[1] + 50), -1000.0)
    big[dy:dy + sl.shape[0], dx:dx + sl.shape[1]] = sl
    small2, lungs2 = T.slice_candidates(big, sp[1:])
    for a, b in zip(small + lungs, small2 + lungs2):
        assert a[0] == b[0] and a[1][0] + dy * sp[1] == pytest.approx(b[1][0]) and \
            a[1][1] + dx * sp[2] == pytest.approx(b[1][1])
    assert (len(small2), len(lungs2)) == (len(small), len(lungs))
    # the field of view cuts through the left lung: it touches the edge and is no longer a candidate
    cut = sl[:, int(lungs[0][1][1] / sp[2]):]
    assert len(T.slice_candidates(cut, sp[1:])[1]) == 1


def test_abdomen_only_has_no_trachea():
    hu = chest_phantom((2.5, 0.8, 0.8), abdomen=True)
    assert not Q.locate_trachea(hu, (2.5, 0.8, 0.8)).found


def _polygon(fn, n=400):
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.array([fn(a) for a in t])


def test_shape_features_of_analytic_shapes():
    circle = _polygon(lambda a: (10 * math.sin(a), 10 * math.cos(a)))
    f = T.shape_features(circle)
    assert f["area_mm2"] == pytest.approx(math.pi * 100, rel=0.01)
    assert f["circularity"] == pytest.approx(1.0, abs=0.01)
    assert f["ap_ratio"] == pytest.approx(1.0, abs=0.01)
    assert f["posterior_bowing"] < 0.01 and f["solidity"] > 0.99

    # crescent: the posterior half pushed in toward the front (y grows to the back)
    def crescent(a):
        y, x = 10 * math.sin(a), 10 * math.cos(a)
        if y > 0:
            y = -0.6 * y + 2.0 * (1 - (x / 10) ** 2) * 0
        return (y, x)

    f2 = T.shape_features(_polygon(crescent))
    assert f2["posterior_bowing"] > 0.2 and f2["solidity"] < 0.8 and f2["ap_ratio"] < 0.6


def test_lumen_contour_is_subvoxel_accurate_on_coarse_pixels():
    # a 18 mm disk of air in tissue, rendered with partial volume at 2 mm pixels
    sp = 2.0
    n, f = 24, 16
    yy, xx = np.mgrid[0:n * f, 0:n * f]
    c = n * f / 2
    disk = ((yy - c) ** 2 + (xx - c) ** 2 <= (9.0 / sp * f) ** 2).astype(float)
    frac = disk.reshape(n, f, n, f).mean(axis=(1, 3))
    hu = 40 * (1 - frac) - 1000 * frac
    poly = T.lumen_contour(hu.astype(np.float32), (n / 2 - 0.5, n / 2 - 0.5), (sp, sp))
    area = T.shape_features(poly)["area_mm2"]
    assert area == pytest.approx(math.pi * 81, rel=0.06)


def test_denoise_preserves_the_edge_and_reduces_noise():
    rng = np.random.default_rng(0)
    clean = np.full((40, 40), 40.0, np.float32)
    clean[10:30, 10:30] = -1000
    noisy = clean + rng.normal(0, 40, clean.shape).astype(np.float32)
    d = T.denoise(noisy)
    assert np.std(d[15:25, 15:25]) < 0.5 * np.std(noisy[15:25, 15:25])
    assert d[20, 8] - d[20, 12] > 700  # the wall stays sharp


@pytest.mark.parametrize("loss", [0.1, 0.4, 0.6])
def test_simulated_expiration_removes_the_requested_area(loss):
    sp = (2.0, 0.7, 0.7)
    hu = chest_phantom(sp, extent_mm=80, noise_hu=5, seed=4)
    base = Q.measure(hu, sp).features
    sim = Q.measure(Q.simulate_expiration(hu, sp, loss), sp).features
    measured = 1 - sim["area_mm2"] / base["area_mm2"]
    assert measured == pytest.approx(loss, abs=0.06)
    if loss >= 0.4:
        assert sim["posterior_bowing"] > base["posterior_bowing"] + 0.05
        assert sim["ap_ratio"] < 0.8 * base["ap_ratio"]


def test_logistic_model_fit_and_safetensors_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X @ np.array([2.0, -1.0, 0.0, 1.0]) > 0).astype(float)
    m = Q.LogisticShapeModel.fit(X, y)
    assert np.mean((m.predict_proba(X) >= 0.5) == (y > 0)) > 0.95
    m.save_pretrained(tmp_path)
    m2 = Q.LogisticShapeModel.load(tmp_path)
    assert np.allclose(m2.predict_proba(X), m.predict_proba(X))
    assert not any(p.suffix in (".pt", ".pkl", ".bin") for p in tmp_path.iterdir())


@pytest.fixture(scope="module")
def checker():
    return Q.BreathHoldChecker.from_pretrained()


def _vol(hu, sp, units="HU"):
    return CTVolume(hu, sp, VolumeMeta(units=units, format="npy"))


def test_verdicts_pass_fail_undetermined(checker):
    sp = (2.0, 0.7, 0.7)
    hu = chest_phantom(sp, extent_mm=80, seed=11)
    ok = checker.predict(_vol(hu, sp))
    assert ok.verdict == "pass" and ok.probability_fail < 0.5 and len(ok.slices_used) >= 2
    bad = checker.predict(_vol(Q.simulate_expiration(hu, sp, 0.5).astype(np.int16), sp))
    assert bad.verdict == "fail" and bad.probability_fail > 0.5
    abd = checker.predict(_vol(chest_phantom(sp, extent_mm=80, abdomen=True), sp))
    assert abd.verdict == "undetermined" and abd.probability_fail is None
    disp = checker.predict(_vol(np.zeros((30, 64, 64), np.uint8), sp, DISPLAY))
    assert disp.verdict == "undetermined" and "Hounsfield" in disp.reason
    two = checker.predict(_vol(hu[:2], sp))
    assert two.verdict == "undetermined"


def test_a_verdict_on_an_input_without_a_pixel_size_says_so(checker, tmp_path):
    """A .npy volume without ``spacing`` (or DICOM without PixelSpacing) is read at 1 mm pixels. The verdict rests
    on shape ratios, which do not depend on the pixel size, but the reason did not say that the millimetre sizes
    shown (area_mm2, ap_mm) were not measured; nor, where no trachea was found, that the search is by size in mm.
    Both say so now; with the spacing given, neither does, and the verdict is the same."""
    from ctmodels import io

    sp = (2.0, 0.7, 0.7)
    hu = chest_phantom(sp, extent_mm=80, seed=11)
    np.save(tmp_path / "v.npy", hu)
    guessed, given = (checker.predict(io.read_ct(tmp_path / "v.npy", **kw)) for kw in ({}, {"spacing": sp}))
    assert guessed.verdict == given.verdict == "pass"
    assert guessed.reason.endswith("; " + Q.PIXEL_SIZE_ASSUMED) and "pixel size" not in given.reason
    np.save(tmp_path / "abd.npy", chest_phantom(sp, extent_mm=80, abdomen=True))
    none = checker.predict(io.read_ct(tmp_path / "abd.npy"))
    assert none.verdict == "undetermined" and none.reason.endswith("the trachea is looked for by its size in mm")


def test_pixels_too_coarse_for_the_trachea_s_shape_get_no_verdict(checker):
    """A phantom that passes at 0.7 mm pixels and fails with a simulated expiration, block-averaged to 4.2 mm
    pixels (the trachea 3-4 pixels across, as in the Chest Imaging Platform's downsampled test scans): measured and
    shown, but undetermined with no probability, with a reason naming the pixel size. 3.5 mm still gets a verdict."""
    sp = (2.0, 0.7, 0.7)
    hu = chest_phantom(sp, extent_mm=80, seed=11)
    bad = Q.simulate_expiration(hu, sp, 0.5)

    for v in (hu, bad):
        r = checker.predict(_vol(block_mean(v, 6, 6), (sp[0], 4.2, 4.2)))
        assert r.verdict == "undetermined" and r.probability_fail is None
        assert r.reason.startswith("pixels of 4.2 mm are too coarse") and r.features and len(r.slices_used) >= 2
    assert Q.MAX_PIXEL_MM == 3.5
    r = checker.predict(_vol(block_mean(hu, 5, 5), (sp[0], 3.5, 3.5)))
    assert r.verdict in ("pass", "fail") and r.probability_fail is not None


def test_slices_tilted_too_far_off_axial_get_no_verdict(checker, tmp_path):
    """A NIfTI file whose directions tilt its axial slices 30 degrees off the patient's axial plane (an oblique
    reformat) was judged as if they were axial, though they cut the trachea aslant: now measured and shown, but
    undetermined, with the tilt in the reason. 20 degrees, and slices turned 30 degrees within the axial plane, still
    get a verdict; so does an array, which gives no directions."""
    import nibabel as nib

    from ctmodels import io

    sp = (2.0, 0.7, 0.7)
    hu = chest_phantom(sp, extent_mm=80, seed=11)
    data = np.transpose(hu, (2, 1, 0))  # [x, y, z]

    def affine(axis, deg):
        c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
        r = {"x": [[1, 0, 0], [0, c, -s], [0, s, c]], "z": [[c, -s, 0], [s, c, 0], [0, 0, 1]]}[axis]
        a = np.eye(4)
        a[:3, :3] = np.array(r) @ np.diag([-sp[2], -sp[1], sp[0]])
        return a

    for name, (axis, deg), judged in (("a", ("x", 30), False), ("b", ("x", 20), True), ("c", ("z", 30), True)):
        nib.save(nib.Nifti1Image(data, affine(axis, deg)), tmp_path / f"{name}.nii.gz")
        r = checker.predict(io.read_ct(tmp_path / f"{name}.nii.gz", purpose="quality"))
        if judged:
            assert r.verdict == "pass" and r.probability_fail is not None, (name, r.reason)
        else:
            assert r.verdict == "undetermined" and r.probability_fail is None and r.features
            assert r.reason.startswith("axial slices tilted 30 degrees off the patient's axial plane cut the trachea "
                                       "too aslant to judge its shape (verdicts up to 25 degrees); trachea over ")
    assert Q.MAX_TILT_DEG == 25.0
    assert checker.predict(hu, spacing=sp).verdict == "pass"


def test_slices_the_reader_filled_in_are_not_measured(checker):
    """A DICOM series read with missing slices filled in by interpolation lists them in meta.interpolated_slices:
    they help follow the trachea, but its shape is measured on the series' own slices only."""
    sp = (2.0, 0.7, 0.7)
    vol = _vol(chest_phantom(sp, extent_mm=80, seed=11), sp)
    used = checker.predict(vol).slices_used
    vol.meta.interpolated_slices = used[::2]
    res = checker.predict(vol)
    assert res.verdict == "pass" and res.slices_used
    assert set(res.slices_used) == set(used) - set(used[::2])


def test_predict_takes_a_path_or_an_array_as_well_as_a_volume(checker, tmp_path):
    """``predict`` took only a CTVolume: a researcher's ``qa.predict("study/")`` or ``qa.predict(hu_array)`` was an
    AttributeError ("'str' object has no attribute 'meta'"). A path is read as read_ct reads it for the check, an
    array [z, y, x] in HU as a .npy file of it is (spacing given, or 1 mm assumed and said): the same verdict and
    probability as the volume. What is neither is one InvalidInputError line, as is an array that is not CT."""
    from ctmodels import io
    from ctmodels.errors import InvalidInputError, NotCTError

    sp = (2.0, 0.7, 0.7)
    hu = chest_phantom(sp, extent_mm=80, seed=11)
    bad = Q.simulate_expiration(hu, sp, 0.5).astype(np.int16)
    for v, verdict in ((hu, "pass"), (bad, "fail")):
        ref = checker.predict(_vol(v, sp))
        np.save(tmp_path / "v.npy", v)
        for got in (checker.predict(v, spacing=sp), checker.predict(list(v), spacing=sp),
                    checker.predict(str(tmp_path / "v.npy"), spacing=sp), checker.predict(tmp_path / "v.npy",
                                                                                        spacing=sp)):
            assert got.verdict == ref.verdict == verdict
            assert got.probability_fail == pytest.approx(ref.probability_fail) and got.reason == ref.reason
    assumed = checker.predict(hu)
    assert assumed.verdict == "pass" and assumed.reason.endswith(Q.PIXEL_SIZE_ASSUMED)
    assert checker.predict(hu[0]).verdict == "undetermined"  # one slice
    with pytest.raises(InvalidInputError, match="expected a CTVolume, a path or a numeric array"):
        checker.predict(None)
    with pytest.raises(InvalidInputError, match="no such file or folder"):
        checker.predict(tmp_path / "missing.nii.gz")
    with pytest.raises(NotCTError, match="nothing below 0"):
        checker.predict(hu - hu.min())
    with pytest.raises(InvalidInputError, match="spacing must be three positive numbers"):
        checker.predict(hu, spacing=(2.0, float("nan"), 0.7))
    with pytest.raises(InvalidInputError, match="a CTVolume carries its own"):
        checker.predict(io.read_ct(tmp_path / "v.npy"), spacing=sp)
