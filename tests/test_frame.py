"""What the lesion model reads of a slice image. A light frame round a display slice (a figure's or a slide's
border) is left out of the segmentation (preprocessing.frame_box): it shrinks the patient in the model's input, and
a white one took a training slice from 30.8 % to 49.9 % involved. A patient small in the image is read in a box
round the body (body.zoom_box); several slices side by side in one image are refused."""

import numpy as np
import pytest

from synth import chest_phantom
from ctmodels.lesion import LesionSegmenter
from ctmodels.preprocessing import frame_box, window_hu


def _slice(size=128):
    return window_hu(chest_phantom((1, size, size), seed=7), -600, 1500)[0]


def test_a_light_frame_on_all_four_sides_is_found_and_nothing_else_is():
    s = _slice()
    assert frame_box(s) == (slice(None), slice(None))
    framed = np.pad(s, ((10, 12), (14, 16)), constant_values=255)
    assert frame_box(framed) == (slice(10, 138), slice(14, 142))
    assert frame_box(np.stack([framed, framed])) == (slice(10, 138), slice(14, 142))  # a volume: one box
    assert frame_box(np.pad(s, 10, constant_values=200)) == (slice(10, 138), slice(10, 138))
    for other in (np.pad(s, 10, constant_values=0),  # black: a scanner's padding, or air in some lung windows
                  np.pad(s, ((10, 0), (10, 10)), constant_values=255),  # three sides: tissue cut by a crop
                  np.pad(np.pad(s, ((10, 10), (0, 0)), constant_values=255), ((0, 0), (10, 10)),
                         constant_values=180),  # light bands of two colours, not one frame
                  np.full((64, 64), 255, np.uint8)):  # nothing inside
        assert frame_box(other) == (slice(None), slice(None))


@pytest.fixture(scope="module")
def seg():
    return LesionSegmenter.from_pretrained(device="cpu")


def test_predict_segments_inside_the_frame_and_labels_the_frame_background(seg):
    s = _slice()
    plain = seg.predict(s)
    res = seg.predict(np.pad(s, 20, constant_values=250))
    assert res.labels.shape == (168, 168) and not res.labels[:20].any() and not res.labels[:, -20:].any()
    assert np.array_equal(res.labels[20:-20, 20:-20], plain.labels)
    assert np.array_equal(res.pixel_counts[:, 1:], plain.pixel_counts[:, 1:])
    assert res.pixel_counts.sum() == 168 * 168 and res.soft_counts.sum() == pytest.approx(168 * 168, rel=1e-4)
    assert res.probabilities.shape == (4, 168, 168) and np.all(res.probabilities[0, :20] == 1)
    assert seg.assess(res).involved_pct == pytest.approx(seg.assess(plain).involved_pct)
    assert len(res.warnings) == 1 and res.warnings[0].startswith("a light frame round the image (top, bottom, "
                                                                 "left, right: 20, 20, 20, 20 pixels)")
    assert plain.warnings == []


def test_the_app_shows_the_frame_it_left_out():
    import io as bytes_io

    from PIL import Image
    from test_app import _app

    buf = bytes_io.BytesIO()
    Image.fromarray(np.pad(_slice(256), 40, constant_values=255)).save(buf, format="PNG")
    at = _app(None)
    at.file_uploader(key="lesion_upload").set_value(("figure.png", buf.getvalue(), "image/png"))
    at.run()
    assert not at.exception and not at.error
    assert any(w.value.startswith("a light frame round the image") for w in at.warning)


def test_the_app_shows_that_it_read_a_box_round_a_small_patient():
    """A slice pasted into a black canvas (a screenshot): the app grades the box round the body and says so."""
    import io as bytes_io

    from PIL import Image
    from test_app import _app

    buf = bytes_io.BytesIO()
    Image.fromarray(np.pad(_slice(256), 200)).save(buf, format="PNG")
    at = _app(None)
    at.file_uploader(key="lesion_upload").set_value(("screenshot.png", buf.getvalue(), "image/png"))
    at.run()
    assert not at.exception and not at.error
    assert any(w.value.startswith("the patient spans less than 80 % of the image") for w in at.warning)


def test_segment_reads_a_box_round_a_small_patient_unless_told_not_to(tmp_path):
    import csv

    from PIL import Image

    from ctmodels.body import body_mask, zoom_box
    from ctmodels.cli import main

    Image.fromarray(np.pad(_slice(256), 200)).save(tmp_path / "screenshot.png")
    for flags in ([], ["--no-zoom"]):
        out = tmp_path / ("whole" if flags else "boxed")
        assert main(["segment", str(tmp_path / "screenshot.png"), "--out", str(out), "-q"] + flags) == 0
        with open(out / "results.csv", newline="") as f:
            (row,) = csv.DictReader(f)
        said = "the patient spans less than 80 % of the image (656 x 656 pixels"
        assert (said in row["warnings"]) is not bool(flags)
        if not flags:  # nothing labelled outside the box
            mask = np.asarray(Image.open(out / "screenshot.mask.png"))
            box = zoom_box(body_mask(np.asarray(Image.open(tmp_path / "screenshot.png")), display=True))
            assert mask[box].any() and mask.sum() == mask[box].sum()


def test_the_app_refuses_slices_laid_out_side_by_side_in_one_line():
    import io as bytes_io

    from PIL import Image
    from test_app import assert_refused_upload

    s = _slice(128)
    buf = bytes_io.BytesIO()
    Image.fromarray(np.concatenate([s, s], 1)).save(buf, format="PNG")
    assert_refused_upload("layout.png", buf.getvalue(), "2 bodies of about one size side by side")
