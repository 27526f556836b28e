"""An 8-bit display slice must be in a lung window (ctmodels/display_window.py): one in a soft-tissue or bone
window shows the lungs pure black, and the lesion model graded such a real slice CT-4."""

import io as bytes_io

import numpy as np
import pytest
from PIL import Image

from synth import chest_phantom, round_field_of_view
from ctmodels import io
from ctmodels import display_window as W
from ctmodels.cli import main
from ctmodels.errors import NotLungWindowError
from ctmodels.preprocessing import window_hu

LUNG, SOFT, BONE = (-600, 1500), (40, 400), (400, 1800)


def _windowed(window, n=1, size=256):
    return window_hu(chest_phantom((n, size, size), seed=1), *window)


def _save(path, u8, fmt=None):
    Image.fromarray(u8).save(path, format=fmt)
    return path


def test_the_lungs_are_black_inside_the_patient_only_outside_a_lung_window():
    assert W.black_share(_windowed(LUNG)[0]) == 0.0
    for window in (SOFT, BONE):
        assert W.black_share(_windowed(window)[0]) > 0.3  # the phantom's lungs: about half its body
    assert W.black_share(np.zeros((64, 64), np.uint8)) == 0.0  # nothing inside: a blank image is not judged here


def test_padding_and_a_viewer_s_text_outside_the_round_field_of_view_are_not_inside(monkeypatch):
    u8 = _windowed(LUNG, size=256)[0]
    u8[~round_field_of_view(256, 256)] = 0  # padding: black corners
    for y, x in ((2, 2), (2, 206), (242, 2), (242, 206)):  # white text in the corners
        for k in range(6):
            u8[y:y + 12, x + 8 * k:x + 8 * k + 5] = 255
    share = W.black_share(u8)
    assert share < 0.01
    W.check_lung_window(u8)  # not refused
    monkeypatch.setattr(W, "MIN_PIECE", 0.0)  # every piece inside: the black corners would count
    assert W.black_share(u8) >= W.MAX_BLACK_SHARE


def _screenshot(u8, bar_level, pad=100, bar=40, side="top"):
    """``u8`` in a black canvas with a viewer's toolbar of one grey level along one side."""
    h, w = u8.shape
    out = np.zeros((h + 2 * pad + bar, w + 2 * pad), np.uint8)
    out[bar + pad:bar + pad + h, pad:pad + w] = u8
    out[:bar] = bar_level
    return out if side == "top" else np.ascontiguousarray(out.T)


@pytest.mark.parametrize("bar_level", [60, 140, 255])
@pytest.mark.parametrize("side", ["top", "left"])
def test_a_viewer_s_toolbar_in_a_screenshot_is_not_taken_for_the_patient(bar_level, side):
    """A screenshot of a viewer: the slice in a black canvas with a toolbar along one side. The toolbar is a bar
    along the edge (body.bar_pieces), so the black canvas between it and the slice is not inside the patient (it
    was: a lung-window slice refused as a soft-tissue window); a soft-tissue window is still refused."""
    from ctmodels.body import bar_pieces
    from scipy import ndimage

    shot = _screenshot(_windowed(LUNG)[0], bar_level, side=side)
    pieces, n = ndimage.label(shot > 10)
    bars = bar_pieces(pieces, n)
    assert bars.sum() == 1 and bars[pieces[0, 0]]  # the toolbar, not the slice
    assert W.black_share(shot) == W.black_share(_windowed(LUNG)[0]) == 0.0
    W.check_lung_window(shot)
    with pytest.raises(NotLungWindowError):
        W.check_lung_window(_screenshot(_windowed(SOFT)[0], bar_level, side=side))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_read_ct_refuses_a_slice_in_a_soft_tissue_window_naming_it(tmp_path, fmt):
    ok = io.read_ct(_save(tmp_path / f"lung.{fmt.lower()}", _windowed(LUNG)[0], fmt))
    assert ok.meta.units == "display"
    for name, window in (("soft", SOFT), ("bone", BONE)):
        path = _save(tmp_path / f"{name}.{fmt.lower()}", _windowed(window)[0], fmt)
        with pytest.raises(NotLungWindowError) as e:
            io.read_ct(path)
        msg = str(e.value)
        assert msg.startswith(f"{path}: looks like a soft-tissue or bone window, not a lung window: ")
        assert "W 1500 / L -600" in msg and "\n" not in msg


def test_an_8_bit_volume_is_judged_on_its_slices(tmp_path):
    np.save(tmp_path / "lung.npy", _windowed(LUNG, n=6, size=128))
    assert io.read_ct(tmp_path / "lung.npy").shape == (6, 128, 128)
    np.save(tmp_path / "soft.npy", _windowed(SOFT, n=6, size=128))
    with pytest.raises(NotLungWindowError):
        io.read_ct(tmp_path / "soft.npy")
    hu = chest_phantom((6, 128, 128), seed=1)  # HU is windowed by ctmodels itself: never judged
    np.save(tmp_path / "hu.npy", hu)
    assert io.read_ct(tmp_path / "hu.npy").meta.units == "HU"


def _lung_base(lung_hu=None, size=256):
    """A phantom slice at the lung bases: the liver and the diaphragm where the lungs were, but for their back
    (about 8 % of the body); with ``lung_hu``, that lung left at that HU."""
    hu = chest_phantom((1, size, size), seed=1)[0].astype(np.float32)
    lung = (hu < -500) & (hu > -950)  # not the trachea's air
    rows = np.mgrid[0:size, 0:size][0]
    hu[lung & (rows < 0.68 * size)] = 40
    if lung_hu is not None:
        hu[lung & (rows >= 0.68 * size)] = lung_hu
    return hu


@pytest.mark.parametrize("window", [SOFT, (50, 350), BONE])
def test_a_lung_base_slice_in_a_soft_tissue_or_bone_window_is_refused_for_its_mid_grey_tissue(window):
    """Its lungs are small: too little pure black for MAX_BLACK_SHARE alone (such real slices had been graded CT-4),
    but some, with the tissue mid-grey, as no lung window shows it."""
    u8 = window_hu(_lung_base(), *window)
    assert W.SOME_BLACK <= W.black_share(u8) < W.MAX_BLACK_SHARE
    assert W.tissue_grey(u8) < W.GREY_TISSUE
    with pytest.raises(NotLungWindowError, match="tissue is mid-grey"):
        W.check_lung_window(u8)
    W.check_lung_window(window_hu(_lung_base(), *LUNG))  # the same slice in a lung window: no black at all


def test_pure_black_air_inside_the_patient_is_no_reason_where_the_tissue_is_white():
    """W 1000 / L -500 takes -1000 HU to black and the tissue to white: air inside the patient (here the lung left at
    the base, as air) is black without making the slice a soft-tissue window."""
    u8 = window_hu(_lung_base(lung_hu=-1010), -500, 1000)
    assert W.SOME_BLACK <= W.black_share(u8) < W.MAX_BLACK_SHARE
    assert W.tissue_grey(u8) == 255
    assert W.window_refusal(u8) is None
    W.check_lung_window(u8)


def test_a_volume_is_refused_where_half_its_slices_are():
    soft, lung = window_hu(_lung_base(size=128), *SOFT), window_hu(_lung_base(size=128), *LUNG)
    with pytest.raises(NotLungWindowError, match="2 of 4 slices looked at: .* mid-grey"):
        W.check_lung_window(np.stack([lung, soft, lung, soft]))
    W.check_lung_window(np.stack([lung, soft, lung, lung]))
    assert np.isnan(W.tissue_grey(np.zeros((64, 64), np.uint8)))  # no body, no tissue


def test_spread_picks_slices_from_first_to_last_without_repeats():
    from ctmodels.preprocessing import spread

    assert spread(100, 16).tolist()[:3] == [0, 7, 13] and spread(100, 16)[-1] == 99 and len(spread(100, 16)) == 16
    assert spread(5, 16).tolist() == [0, 1, 2, 3, 4]
    assert spread(17, 16).tolist() == sorted(set(spread(17, 16).tolist())) and len(spread(17, 16)) == 16
    assert spread(1, 16).tolist() == [0] and spread(0, 16).size == 0 and spread(10, 0).size == 0


def test_predict_and_segment_refuse_a_lung_base_slice_in_a_soft_tissue_window(tmp_path, capsys):
    from ctmodels import LesionSegmenter

    soft = window_hu(_lung_base(), *SOFT)
    with pytest.raises(NotLungWindowError):
        LesionSegmenter.from_pretrained().predict(soft)
    path = _save(tmp_path / "base.png", soft)
    assert main(["segment", str(path), "--out", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{path}: looks like a soft-tissue or bone window" in err[0] and "mid-grey" in err[0]


def test_predict_refuses_a_display_array_in_a_soft_tissue_window():
    from ctmodels import LesionSegmenter

    seg = LesionSegmenter.from_pretrained()
    soft = _windowed(SOFT)[0]
    with pytest.raises(NotLungWindowError):
        seg.predict(soft)
    with pytest.raises(NotLungWindowError):  # 0..1 floats, as torchvision gives them
        seg.predict(soft.astype(np.float32) / 255, units="display")
    assert seg.predict(_windowed(LUNG)[0]).labels.shape == (256, 256)


def test_segment_says_so_in_one_line_and_goes_on_with_the_other_inputs(tmp_path, capsys):
    soft = _save(tmp_path / "soft.png", _windowed(SOFT)[0])
    lung = _save(tmp_path / "lung.png", _windowed(LUNG)[0])
    code = main(["segment", str(soft), str(lung), "--out", str(tmp_path / "out"), "-q"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(err) == 1 and f"{soft}: looks like a soft-tissue or bone window" in err[0]
    assert (tmp_path / "out" / "lung.mask.png").exists() and not (tmp_path / "out" / "soft.mask.png").exists()


def test_the_app_says_so_in_one_line_and_gives_no_grade():
    from test_app import assert_refused_upload

    buf = bytes_io.BytesIO()
    Image.fromarray(_windowed(SOFT)[0]).save(buf, format="PNG")
    assert_refused_upload("soft.png", buf.getvalue(), "not a lung window")


def test_the_breath_hold_check_still_says_it_reads_no_display_image(tmp_path, capsys):
    """Asking to export a lung window would not help it: the check reads no 8-bit image, whatever its window."""
    from ctmodels import BreathHoldChecker

    soft = _save(tmp_path / "soft.png", _windowed(SOFT)[0])
    assert main(["check-breath-hold", str(soft)]) == 0
    out = capsys.readouterr().out
    assert "UNDETERMINED" in out and "8-bit display image" in out
    r = BreathHoldChecker.from_pretrained().predict(_windowed(SOFT, n=4, size=128))
    assert r.verdict == "undetermined" and "8-bit" in r.reason
