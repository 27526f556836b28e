"""A display slice is grey (ctmodels/display_colour.py, ctmodels/io.py): colour drawn on the patient (an overlay,
a colour map, annotations) is refused or warned of, and a label map or mask saved as an image is refused; read as
grey, ctmodels' own overlay of a real slice graded CT-1 where the slice itself graded CT-2."""

import io as bytes_io
import logging

import numpy as np
import pytest
from PIL import Image

from synth import chest_phantom
from ctmodels import display_colour as C
from ctmodels import io
from ctmodels.errors import NotCTError
from ctmodels.preprocessing import window_hu
from ctmodels.viz import overlay


def _slice(size=256):
    return window_hu(chest_phantom((1, size, size), seed=1), -600, 1500)[0]


def _rgb(grey):
    return np.repeat(grey[..., None], 3, axis=-1)


def _lesion(size=256):
    """A label map with a lesion in the phantom's left lung covering about 10 % of its body."""
    labels = np.zeros((size, size), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    labels[(yy - size // 2) ** 2 + (xx - int(0.72 * size)) ** 2 < (size // 10) ** 2] = 1
    return labels


def _save(path, arr, fmt=None, **kw):
    Image.fromarray(arr).save(path, format=fmt, **kw)
    return path


def test_a_grey_slice_saved_in_colour_reads_as_the_grey_slice_without_a_word(tmp_path, caplog):
    grey = _slice()
    assert C.coloured_share(_rgb(grey), grey) == 0.0
    with caplog.at_level(logging.WARNING):
        for name, fmt in (("rgb.png", "PNG"), ("rgb.jpg", "JPEG"), ("rgba.png", "PNG")):
            arr = _rgb(grey) if name != "rgba.png" else np.dstack([_rgb(grey), np.full(grey.shape, 255, np.uint8)])
            vol = io.read_ct(_save(tmp_path / name, arr, fmt))
            assert vol.meta.warnings == [] and vol.meta.units == "display"
            if fmt == "PNG":
                assert np.array_equal(vol.voxels[0], grey)
    assert not caplog.records


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_ctmodels_own_overlay_read_back_as_a_slice_is_refused_naming_it(tmp_path, fmt):
    grey = _slice()
    painted = overlay(grey, _lesion())
    assert C.coloured_share(painted, grey) > C.MAX_COLOURED_SHARE
    path = _save(tmp_path / f"phantom.overlay.{fmt.lower()}", painted, fmt)
    with pytest.raises(NotCTError) as e:
        io.read_ct(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: colour covers ") and "expected a grey CT slice" in msg and "\n" not in msg


def test_random_colour_noise_is_refused_as_noise_not_as_colour(tmp_path):
    noise = (np.random.default_rng(0).random((256, 256, 3)) * 255).astype(np.uint8)
    path = _save(tmp_path / "noise.png", noise)
    with pytest.raises(io.InvalidInputError) as e:
        io.read_ct(path)
    said = str(e.value)[len(f"{path}: "):]
    assert said.startswith("the pixels look like random noise") and "colour" not in said


def test_a_colour_map_is_refused():
    grey = _slice()
    g = grey.astype(np.float32) / 255
    jet = np.stack([np.clip(1.5 - abs(4 * g - k), 0, 1) for k in (3, 2, 1)], -1)
    assert C.coloured_share((jet * 255).astype(np.uint8), grey) > 0.9
    with pytest.raises(NotCTError):
        C.colour_note((jet * 255).astype(np.uint8), grey)


def test_a_short_mark_on_the_patient_is_read_with_a_warning_and_text_beside_the_patient_is_not(tmp_path, caplog):
    grey = _slice()
    marked = _rgb(grey)
    marked[128:130, 150:190] = (255, 255, 0)  # a short yellow ruler on the left lung
    share = C.coloured_share(marked, grey)
    assert C.WARN_COLOURED_SHARE <= share < C.MAX_COLOURED_SHARE
    with caplog.at_level(logging.WARNING, logger="ctmodels.io"):
        vol = io.read_ct(_save(tmp_path / "ruler.png", marked))
    assert vol.meta.warnings == [C.colour_note(marked, grey)] and "coloured marks on" in vol.meta.warnings[0]
    assert any("ruler.png: coloured marks on" in r.getMessage() for r in caplog.records)
    assert np.array_equal(vol.voxels[0], np.asarray(Image.fromarray(marked).convert("L")))

    beside = _rgb(grey)
    beside[2:14, 4:80] = (0, 255, 0)  # a viewer's green text in the top corner, outside the body
    beside[-14:-2, -80:-4] = (255, 255, 0)
    assert C.coloured_share(beside, grey) == 0.0
    assert io.read_ct(_save(tmp_path / "text.png", beside)).meta.warnings == []


def test_predict_refuses_an_overlay_array_and_reads_a_grey_colour_array():
    from ctmodels.lesion import LesionSegmenter

    lesion_segmenter = LesionSegmenter.from_pretrained(device="cpu")
    grey = _slice(128)
    with pytest.raises(NotCTError):
        lesion_segmenter.predict(overlay(grey, _lesion(128)))
    a = lesion_segmenter.predict(_rgb(grey))
    assert np.array_equal(a.labels, lesion_segmenter.predict(grey).labels) and a.warnings == []
    marked = _rgb(grey)
    marked[64:66, 80:95] = (255, 255, 0)
    assert lesion_segmenter.predict(marked).warnings == [C.colour_note(marked, grey)]
    assert "coloured marks on" in C.colour_note(marked, grey)


@pytest.mark.parametrize("values", [(0, 1, 2, 3), (0, 255)])
def test_a_label_map_or_mask_saved_as_an_image_is_refused_as_one(tmp_path, values):
    labels = _lesion()
    labels[100:150, 40:90] = len(values) - 1
    mask = np.asarray(values, np.uint8)[np.minimum(labels, len(values) - 1)]
    for path in (_save(tmp_path / "x.mask.png", mask), tmp_path / "x.npy"):
        if path.suffix == ".npy":
            np.save(path, mask)
        with pytest.raises(NotCTError) as e:
            io.read_ct(path)
        assert str(e.value).startswith(f"{path}: looks like a label map or mask, not a CT slice: ")
    grey = _slice()  # the phantom's noise gives it 42 grey levels, a CT slice hundreds
    assert len(np.unique(grey)) > io.MAX_DISPLAY_LABELS
    io.check_ct(io.volume_from_array(grey))


def _png(arr):
    buf = bytes_io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_the_app_refuses_an_overlay_upload_in_one_line_and_shows_the_warning_of_a_few_marks():
    from test_app import _app, assert_refused_upload

    assert_refused_upload("slice.overlay.png", _png(overlay(_slice(), _lesion())), "colour covers")
    marked = _rgb(_slice())
    marked[128:130, 150:190] = (255, 255, 0)
    at = _app(None)
    at.file_uploader(key="lesion_upload").set_value(("ruler.png", _png(marked), "image/png"))
    at.run()
    assert not at.exception and not at.error
    assert any(w.value.startswith("coloured marks on") for w in at.warning)
    assert [m for m in at.metric if m.label == "Grade"]


def test_a_colour_slice_saved_as_npy_is_read_as_the_image_file_of_it(tmp_path, capsys):
    from ctmodels.cli import main

    marked = _rgb(_slice())
    marked[128:130, 150:190] = (255, 255, 0)
    np.save(tmp_path / "s.npy", marked)
    _save(tmp_path / "s.png", marked)
    npy, png = io.read_ct(tmp_path / "s.npy"), io.read_ct(tmp_path / "s.png")
    assert npy.shape == (1, 256, 256) and np.array_equal(npy.voxels, png.voxels)
    assert npy.meta.units == "display" and npy.meta.warnings == png.meta.warnings != []
    # segment once crashed on it, reading its voxels [z, y, x] as one colour slice [H, W, 3]
    assert main(["segment", str(tmp_path / "s.npy"), "--out", str(tmp_path / "o"), "-q"]) == 0
    assert np.asarray(Image.open(tmp_path / "o" / "s.mask.png")).shape == (256, 256)


def test_predict_reads_a_volume_s_voxels_as_z_y_x_whatever_their_last_axis():
    from ctmodels.errors import InvalidInputError
    from ctmodels.lesion import LesionSegmenter

    hu = chest_phantom((64, 64, 64), seed=1)[:, :, 30:33]  # [z, y, x]: 64 slices of 64 x 3 pixels, in HU
    vol = io.volume_from_array(hu)
    assert vol.shape == (64, 64, 3)
    with pytest.raises(InvalidInputError, match="too small to segment"):
        LesionSegmenter.from_pretrained(device="cpu").predict(vol)


def test_a_slice_with_a_channel_axis_is_read_as_the_slice(tmp_path):
    from ctmodels.lesion import LesionSegmenter

    grey = _slice()
    np.save(tmp_path / "c.npy", grey[..., None])
    vol = io.read_ct(tmp_path / "c.npy")
    assert vol.shape == (1, 256, 256) and np.array_equal(vol.voxels[0], grey) and vol.meta.warnings == []
    seg = LesionSegmenter.from_pretrained(device="cpu")
    res = seg.predict(grey[..., None])
    assert res.labels.shape == (256, 256) and np.array_equal(res.labels, seg.predict(grey).labels)
