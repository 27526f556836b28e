"""Field-of-view normalisation of single slices (synthetic images, no ../shared needed)."""

import numpy as np
import pytest

from ctmodels import field_of_view as fov
from ctmodels.errors import InvalidInputError


def _lungs(shape, box):
    m = np.zeros(shape, bool)
    y0, y1, x0, x1 = box
    m[y0:y1, x0:x1] = True
    return m


def test_lung_box_and_the_canonical_extent_of_mid_chest_slices():
    assert fov.lung_box(np.zeros((5, 5), bool)) is None
    assert fov.lung_box(_lungs((10, 20), (2, 6, 5, 15))) == (2, 6, 5, 15)
    masks = [_lungs((100, 100), (20, 70, 10, 90)), _lungs((100, 100), (30, 70, 20, 80)),
             _lungs((200, 200), (40, 160, 20, 180)),
             _lungs((100, 100), (45, 50, 45, 50))]  # an apex: under 10 % of the slice, left out
    assert fov.canonical_extent(masks) == pytest.approx((0.5, 0.8))  # medians of (.5,.4,.6) and (.8,.6,.8)
    with pytest.raises(InvalidInputError, match="no slice with lungs"):
        fov.canonical_extent(masks[3:])


def test_a_lung_crop_is_shrunk_so_its_lungs_span_the_canonical_extent():
    lungs = _lungs((300, 400), (20, 280, 30, 370))  # a crop: lungs fill most of it (260 x 340 px)
    canvas = fov.plan_canvas(lungs, (0.5, 0.8), size=256)
    assert canvas.scale == pytest.approx(min(0.5 * 256 / 260, 0.8 * 256 / 340))
    shown = canvas.to_canvas(lungs.astype(np.uint8) * 255) > 127
    y0, y1, x0, x1 = fov.lung_box(shown)
    assert (y1 - y0) / 256 == pytest.approx(0.5, abs=0.02)  # height is the binding axis here
    assert (x1 - x0) / 256 < 0.8 and abs((y0 + y1) / 2 - 127.5) <= 1 and abs((x0 + x1) / 2 - 127.5) <= 1
    assert shown[0, 0] == 0 and canvas.to_canvas(np.full((300, 400), 200, np.uint8))[0, 0] == 0  # air outside
    assert fov.plan_canvas(np.zeros((8, 8), bool), (0.5, 0.8)) is None


def test_maps_on_the_canvas_come_back_onto_the_input_grid():
    rng = np.random.default_rng(0)
    shape = (180, 240)
    canvas = fov.Canvas(cy=90.0, cx=110.0, scale=1.3, size=256)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    smooth = np.sin(yy / 15.0) + np.cos(xx / 20.0) + rng.normal(0, 0.01, shape)
    there = canvas.to_canvas(smooth.astype(np.float32))
    back, inside = canvas.to_input(there[None], shape)
    assert inside.mean() < 1 and inside[90, 110] and not inside[0, 0]  # magnified: the corners fall outside
    err = np.abs(back[0] - smooth)[inside]
    assert np.percentile(err, 99) < 0.05  # the same picture, not a shifted or flipped one


class _Thresholds:
    """A stand-in model: label = brightness band (0 background, 1 GGO, 2 consolidation, 3 lung), at any scale."""

    preprocessing = {"input_size": 128}

    def __init__(self):
        self.calls = []

    def predict(self, image, tta=True, keep_probabilities=False):
        self.calls.append(image.shape)
        lab = np.select([image < 40, image < 100, image < 160], [0, 3, 1], 2).astype(np.uint8)
        probs = np.stack([(lab == c).astype(np.float32) for c in range(4)])
        return type("R", (), {"labels": lab, "probabilities": probs if keep_probabilities else None})()


def test_segment_normalised_runs_twice_and_puts_the_labels_back_where_they_were():
    img = np.full((90, 120), 20, np.uint8)
    img[10:80, 8:112] = 70  # lungs filling the crop
    img[30:50, 30:60] = 130  # GGO
    img[55:70, 70:90] = 200  # consolidation
    model = _Thresholds()
    labels = fov.segment_normalised(model, img, (0.5, 0.8))
    assert model.calls == [(90, 120), (128, 128)]  # the slice, then the canvas
    plain = model.predict(img).labels
    assert labels.shape == img.shape and (labels == plain).mean() > 0.95  # only edges may move (shrunk, blurred)
    for c in (1, 2, 3):
        assert (labels[plain == c] == c).mean() > 0.8
    empty = np.full((50, 50), 10, np.uint8)  # no lung: the plain labels
    assert np.array_equal(fov.segment_normalised(model, empty, (0.5, 0.8)), model.predict(empty).labels)
    with pytest.raises(InvalidInputError, match="one 2-D slice"):
        fov.segment_normalised(model, np.zeros((2, 8, 8), np.uint8), (0.5, 0.8))
