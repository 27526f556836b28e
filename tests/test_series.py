"""Kernel classification (vendor table and image noise) and series selection."""

import numpy as np
import pytest

from ctmodels.errors import SeriesSelectionError
from ctmodels.series import classify_image, classify_kernel, image_noise_hu, select_series
from ctmodels.types import SeriesInfo


@pytest.mark.parametrize("kernel,manufacturer,expected", [
    ("LUNG", "GE MEDICAL SYSTEMS", "lung"), ("BONEPLUS", "GE MEDICAL SYSTEMS", "lung"),
    ("STANDARD", "GE MEDICAL SYSTEMS", "soft"), ("SOFT", "GE MEDICAL SYSTEMS", "soft"),
    ("B70f", "SIEMENS", "lung"), ("B30f", "SIEMENS", "soft"), ("Br40d", "Siemens Healthineers", "soft"),
    ("Bl57d", "SIEMENS", "lung"), ("I70f", "SIEMENS", "lung"), ("Br64d", "SIEMENS", "lung"),
    ("L", "Philips", "lung"), ("YB", "Philips", "lung"), ("B", "Philips", "soft"), ("C", "Philips", "lung"),
    ("FC52", "TOSHIBA", "lung"), ("FC03", "TOSHIBA", "soft"), ("FC13", "CANON_MEC", "soft"),
    ("LUNG", "CANON_MEC", "lung"), ("BODY", "CANON_MEC", "soft"),
    ("HR Lung", "Unknown vendor", "lung"), ("mediastinum", None, "soft"),
])
def test_vendor_kernel_table(kernel, manufacturer, expected):
    cls, why = classify_kernel(kernel, manufacturer)
    assert cls == expected, why


def test_a_kernel_named_as_ge_names_its_own_is_not_called_ge_s_for_another_vendor():
    assert classify_kernel("LUNG", "GE MEDICAL SYSTEMS") == ("lung", "GE kernel LUNG")
    assert classify_kernel("Lung", "UIH") == ("lung", "kernel LUNG (by GE's kernel names)")
    assert classify_kernel("STANDARD", None) == ("soft", "kernel STANDARD (by GE's kernel names)")


def test_unknown_kernel_and_missing_tag():
    assert classify_kernel("XYZ123", "ACME")[0] == "unknown"
    assert classify_kernel(None, "GE")[0] == "unknown"
    assert classify_kernel("", "GE")[1] == "no ConvolutionKernel tag"


def _soft_tissue_slice(noise, smooth, seed=0):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    img = np.full((128, 128), 40.0)
    img[:, :20] = -1000
    n = rng.normal(0, 1, img.shape)
    if smooth:
        n = ndimage.gaussian_filter(n, 1.5)
        n /= n.std()
    return img + noise * n


def test_image_noise_tells_sharp_from_smooth_kernels():
    sharp = _soft_tissue_slice(90, smooth=False)
    soft = _soft_tissue_slice(12, smooth=True)
    assert image_noise_hu(sharp) > 3 * image_noise_hu(soft)
    assert classify_image(sharp)[0] == "lung"
    assert classify_image(soft)[0] == "soft"
    air = np.full((64, 64), -1000.0)
    assert classify_image(air)[0] == "unknown"


def _info(uid, cls, n, modality="CT", source="tag", thick=1.0, description=None):
    return SeriesInfo(series_uid=uid, files=[], n_slices=n, modality=modality, description=description,
                      manufacturer=None, kernel=None, kernel_class=cls, kernel_reason=cls,
                      kernel_source=source, slice_thickness=thick)


def test_select_prefers_lung_then_most_slices():
    s, why = select_series([_info("a", "soft", 300), _info("b", "lung", 100), _info("c", "lung", 200)])
    assert s.series_uid == "c" and "lung kernel" in why and "set aside" in why
    s, _ = select_series([_info("a", "lung", 100, thick=5), _info("b", "lung", 100, thick=1)])
    assert s.series_uid == "b"


def test_select_quality_refuses_soft_only_and_non_ct():
    with pytest.raises(SeriesSelectionError, match="lung-kernel"):
        select_series([_info("a", "soft", 100)], purpose="quality")
    s, why = select_series([_info("a", "soft", 100)], purpose="lesion")
    assert s.series_uid == "a" and "only soft-tissue" in why
    s, why = select_series([_info("a", "soft", 100, source="image")], purpose="quality")
    assert "from the image only" in why
    with pytest.raises(SeriesSelectionError, match="no CT series"):
        select_series([_info("a", "lung", 10, modality="MR")])


def test_the_series_the_breath_hold_check_may_measure():
    """What select_series sets aside (a soft kernel named by its tag) and non-CT series are not checkable; a
    soft kernel judged from the image only is. The same answer for SeriesInfo and its as_dict() (the app's)."""
    from ctmodels.series import checkable

    infos = [_info("lung", "lung", 40), _info("soft-tag", "soft", 40), _info("soft-image", "soft", 40, source="image"),
             _info("mr", "lung", 40, modality="MR"), _info("unknown", "unknown", 40, source="none"),
             _info("head", "lung", 40)]
    infos[-1].body_part = "HEAD"  # reading refuses it
    infos.append(_info("dose report", "unknown", 1, source="none"))
    infos[-1].not_slices = "a secondary capture"  # and this
    assert [s.series_uid for s in checkable(infos)] == ["lung", "soft-image", "unknown"]
    assert [d["series_uid"] for d in checkable([s.as_dict() for s in infos])] == ["lung", "soft-image", "unknown"]


@pytest.mark.parametrize("description,expected", [
    ("Exp 1.0 B70f", True), ("EXPIRATION", True), ("Thorax_Exp_1mm", True), ("Exspiration", True),
    ("expiratory lung", True), ("exhale", True), ("Ausatmung", True), ("Insp 1.0 B70f", False),
    ("Exposure 2", False), ("Chest expanded", False), ("Lung 1.25", False), (None, False),
])
def test_series_scanned_in_expiration_are_told_by_their_description(description, expected):
    from ctmodels.series import expiratory

    assert expiratory(_info("a", "lung", 10, description=description)) is expected
    assert expiratory(_info("a", "lung", 10, description=description).as_dict()) is expected


def test_select_takes_an_expiratory_series_only_where_nothing_else_is_left():
    """An air-trapping protocol's expiratory series is no breath-hold failure: it is set aside, even against
    a series with more slices or a better kernel tier, and used (and named) only where it is all there is."""
    insp, exp = _info("insp", "lung", 100, description="Insp 1.0 B70f"), _info("exp", "lung", 300, description="Exp")
    for purpose in ("lesion", "quality"):
        s, why = select_series([exp, insp], purpose=purpose)
        assert s.series_uid == "insp" and why.endswith("; 1 expiratory series (by description) set aside"), why
    s, why = select_series([exp, _info("unk", "unknown", 50, source="none")], purpose="quality")
    assert s.series_uid == "unk"
    s, why = select_series([exp, _info("soft", "soft", 50)], purpose="quality")
    assert s.series_uid == "exp" and why.endswith("its description says expiration, and no better series could be used")
    s, why = select_series([_info("soft-exp", "soft", 90, description="EXP"), _info("soft", "soft", 50)])
    assert s.series_uid == "soft" and why.startswith("only soft-tissue kernel series present")
    assert why.endswith("; 1 expiratory series (by description) set aside")
    s, why = select_series([exp, _info("soft", "soft", 50)])  # for lesions: a soft kernel before expiration
    assert s.series_uid == "soft" and why.startswith("soft-tissue kernel, before series that are expiratory")
    assert why.endswith("; 1 expiratory series (by description) set aside")
    s, why = select_series([_info("soft-exp", "soft", 90, description="EXP")])
    assert why.startswith("only soft-tissue kernel series present") and why.endswith("no better series could be used")
    with pytest.raises(SeriesSelectionError, match="lung-kernel"):
        select_series([_info("soft-exp", "soft", 90, description="EXP")], purpose="quality")


def test_select_prefers_supine_series_to_prone_or_decubitus_ones():
    """An interstitial lung disease protocol adds prone (and sometimes expiratory) series: a supine series is
    taken first, a prone one before an expiratory one, and the reason says what was set aside and why."""
    from ctmodels.series import supine

    def pos(uid, position, n, description=None):
        s = _info(uid, "lung", n, description=description)
        s.patient_position = position
        return s

    assert [supine(pos("a", p, 1)) for p in ("HFS", "FFS", None, "", "SUPINE", "HFP", "FFP", "HFDR", "FFDL",
                                              "prone")] == [True] * 5 + [False] * 5
    supine_s, prone = pos("supine", "HFS", 100), pos("prone", "HFP", 300)
    exp = pos("exp", "HFS", 400, description="Exp 1.0")
    for purpose in ("lesion", "quality"):
        s, why = select_series([prone, exp, supine_s], purpose=purpose)
        assert s.series_uid == "supine"
        assert why.endswith("; 1 expiratory series (by description) set aside; 1 prone or decubitus series (by "
                            "PatientPosition) set aside"), why
    s, why = select_series([prone, exp], purpose="quality")
    assert s.series_uid == "prone"
    assert why.endswith("; scanned HFP, not supine, and no better series could be used; 1 expiratory series "
                        "(by description) set aside"), why
    assert select_series([prone, exp, _info("unknown", "unknown", 50, source="none")])[0].series_uid == "unknown"


@pytest.mark.parametrize("image_type,description,expected", [
    ("ORIGINAL\\PRIMARY\\AXIAL", "Lung 1.0", False), ("DERIVED\\SECONDARY\\AXIAL", "Lung 1.0 iDose", False),
    ("DERIVED\\SECONDARY\\MIP", "Lung", True), ("DERIVED\\SECONDARY\\MPR", None, True),
    ("ORIGINAL\\PRIMARY\\LOCALIZER", None, True), (None, "MIP 8mm lung", True), (None, "Thorax_MinIP", True),
    (None, "Topogram 0.6 T20s", True), (None, "Lung coronal", False), (None, None, False),
])
def test_projections_and_reformats_are_told_by_image_type_or_description(image_type, description, expected):
    from ctmodels.series import projection

    s = _info("a", "lung", 10, description=description)
    s.image_type = image_type
    assert projection(s) is expected and projection(s.as_dict()) is expected


def test_select_takes_reconstructed_slices_before_projections():
    """A lung MIP series with as many slices as the lung series (a tie the order of listing decided before) and a
    MinIP with more: the reconstructed slices are read, and the reason says what was set aside."""
    lung, mip, minip = _info("lung", "lung", 60), _info("mip", "lung", 60), _info("minip", "lung", 90)
    lung.image_type, mip.image_type, minip.image_type = ("ORIGINAL\\PRIMARY\\AXIAL", "DERIVED\\SECONDARY\\MIP",
                                                         "DERIVED\\SECONDARY\\MINIP")
    for order in ([mip, lung, minip], [minip, mip, lung]):
        s, why = select_series(order, purpose="quality")
        assert s.series_uid == "lung"
        assert why.endswith("; 2 projection or reformat series (MIP, MinIP, MPR, localizer) set aside"), why
    exp = _info("exp", "lung", 60, description="Exp")
    s, why = select_series([exp, mip])  # a projection before expiration
    assert s.series_uid == "mip" and "it is a projection or reformat, and no better series could be used" in why


def test_select_puts_axial_slices_before_coronal_or_sagittal_ones():
    """A study exported with its coronal reformat (more slices, and no ImageType or description saying what it
    is) read the coronal series, as the axial slices made across it: axial slices come first now, and the
    reason says what was set aside, or why a coronal series was used; the listing names the plane."""
    from ctmodels.series import axial, position_note

    ax, cor, sag = _info("ax", "lung", 100), _info("cor", "lung", 400), _info("sag", "lung", 500)
    cor.plane, sag.plane = "coronal", "sagittal"
    assert [axial(s) for s in (ax, cor, sag, cor.as_dict())] == [True, False, False, False]
    assert position_note(cor) == " - coronal slices" and position_note(ax) == ""
    for purpose in ("lesion", "quality"):
        s, why = select_series([cor, sag, ax], purpose=purpose)
        assert s.series_uid == "ax"
        assert why.endswith("; 2 coronal or sagittal series (by ImageOrientationPatient) set aside"), why
    s, why = select_series([cor, sag])
    assert s.series_uid == "sag" and why.endswith("; its slices are sagittal, not axial, and no better series "
                                                  "could be used"), why
    mip = _info("mip", "lung", 600)
    mip.image_type = "DERIVED\\SECONDARY\\MIP"
    assert select_series([mip, cor])[0].series_uid == "cor"  # a reconstruction in another plane before a MIP
    prone = _info("prone", "lung", 50)
    prone.patient_position = "HFP"
    assert select_series([prone, cor])[0].series_uid == "prone"  # still axial slices
