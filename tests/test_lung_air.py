"""Lung air, and the lesion-label pieces it anchors (synthetic volumes, known answers)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import binary_dilation, binary_erosion

from ctmodels.lung_air import air_masks, lung_air, unanchored

from synth import chest_over_abdomen, ellipse


def test_lungs_are_lung_air_and_the_stomach_bubble_is_not():
    hu, stomach = chest_over_abdomen()
    air = lung_air(hu)
    assert air.shape == hu.shape and air.dtype == bool
    assert not air[:6].any()  # the stomach: a piece of its own, 1 % of the lungs, below their middle
    inside = ellipse(hu.shape[1:], hu.shape[1] / 2, hu.shape[2] / 2, 100 / 1.5, 135 / 1.5)  # within the ribs
    for k in range(6, len(hu)):
        lungs = binary_erosion((hu[k] < -700) & inside, iterations=3)
        assert lungs.sum() > 5000 and air[k][lungs].all()
    assert not air[:, 0, 0].any()  # the air around the patient is not inside the body


def test_the_stomach_bubble_is_other_air_and_a_speck_is_neither():
    hu, stomach = chest_over_abdomen()
    hu[15, 60:62, 100:102] = -1000  # 4 px of air in the mediastinum, apart from everything
    lung, other = air_masks(hu)
    assert np.array_equal(lung, lung_air(hu)) and not (lung & other).any()
    assert other[:5][:, binary_erosion(stomach, iterations=2)].all() and not other[5:].any()
    assert not lung[15, 60:62, 100:102].any()


def test_a_piece_running_from_the_lung_into_the_stomach_keeps_only_its_lung_side():
    """One labelled piece: lung air at its left end, stomach gas at its right end; the pixels nearer the
    gas are dropped. A piece holding only lung air and one holding only other air: kept and dropped."""
    labels = np.zeros((40, 60), np.uint8)
    lung, other = np.zeros((2, 40, 60), bool)
    labels[5:15, 5:55] = 2
    lung[8:12, 5:10] = True
    other[8:12, 45:55] = True
    labels[25:35, 5:20] = 3
    lung[28:30, 8:10] = True
    labels[25:35, 40:55] = 2
    other[28:30, 45:50] = True
    drop = unanchored(labels, lung, other)
    assert not drop[5:15, 5:25].any() and drop[5:15, 35:55].all()  # the split lies about halfway, at x = 27
    assert not drop[25:35, 5:20].any() and drop[25:35, 40:55].all()
    assert drop[5:15, 5:55].sum() == pytest.approx(10 * 50 / 2, abs=30)
    alone = unanchored(labels, lung)  # without other air the mixed piece stays whole
    assert not alone[5:15].any() and alone[25:35, 40:55].all() and not alone[25:35, 5:20].any()


def test_a_lung_with_little_air_is_kept_because_it_runs_as_high_as_the_other():
    """Pieces by size and height: a big piece (the healthy lung), a thin one on every slice (a diseased
    lung: 2 % of the big one), a block at the bottom (gas: 5 %), a block at the top (air under the skin
    of the neck, 6 %), and a large block at the bottom (15 %: large enough to stay)."""
    hu = np.full((40, 100, 100), 40, np.int16)  # tissue to every edge: the whole slice is body
    hu[:, 10:50, 10:50] = -900  # 1600 px a slice, 64000 in all
    hu[:, 60:64, 10:18] = -900  # 32 px a slice: 1280 in all, 2 %
    hu[:4, 70:98, 60:90] = -1000  # 840 px a slice: 3360, 5 %
    hu[-4:, 70:98, 60:90] = -1000  # 3360, 5 % again, above the middle
    hu[:8, 70:98, 20:55] = -1000  # 980 px a slice: 7840, 12 %
    air = lung_air(hu)
    assert air[:, 20, 20].all() and air[:, 62, 12].all()
    assert not air[:4, 80, 75].any() and not air[-4:, 80, 75].any()
    assert air[:8, 80, 30].all()


def test_labels_in_pieces_without_lung_air_are_dropped_and_a_corner_joins():
    labels = np.zeros((2, 12, 12), np.uint8)
    anchor = np.zeros_like(labels, bool)
    labels[0, 1:4, 1:4] = 3  # holds anchor
    anchor[0, 2, 2] = True
    labels[0, 4, 4] = 2  # touches the first piece only at a corner: same piece
    labels[0, 8:11, 8:11] = 1  # no anchor: dropped
    labels[1, 8:11, 8:11] = 2  # the same place on the next slice, with its own anchor
    anchor[1, 9, 9] = True
    drop = unanchored(labels, anchor)
    assert drop.sum() == 9 and drop[0, 8:11, 8:11].all()
    assert np.array_equal(unanchored(labels[0], anchor[0]), drop[0])
    assert not unanchored(np.zeros((5, 5), np.uint8), np.zeros((5, 5), bool)).any()
    assert np.array_equal(unanchored(labels, np.zeros_like(anchor)), labels > 0)


@settings(max_examples=150, deadline=None)
@given(h=st.integers(1, 60), w=st.integers(1, 60), z=st.integers(1, 3), seed=st.integers(0, 2**16),
       fill=st.floats(0.0, 1.0), anchors=st.floats(0.0, 0.2))
def test_what_is_dropped_is_labelled_holds_no_anchor_and_touches_nothing_kept(h, w, z, seed, fill, anchors):
    rng = np.random.default_rng(seed)
    labels = np.where(rng.random((z, h, w)) < fill, rng.integers(1, 4, (z, h, w)), 0).astype(np.uint8)
    anchor = rng.random((z, h, w)) < anchors
    drop = unanchored(labels, anchor)
    assert drop.shape == labels.shape and drop.dtype == bool
    assert not (drop & ~(labels > 0)).any() and not (drop & anchor).any()
    kept = (labels > 0) & ~drop
    for k in range(z):  # a dropped pixel next to a kept one (edge or corner) would be in its piece
        assert not (binary_dilation(kept[k], np.ones((3, 3), bool)) & drop[k]).any()
    # with other air: every labelled pixel of it goes, no lung-air pixel does, and more is dropped, never less
    other = (rng.random((z, h, w)) < anchors) & ~anchor
    split = unanchored(labels, anchor, other)
    assert not (split & anchor).any() and split[(labels > 0) & other].all() and not (drop & ~split).any()


@settings(max_examples=100, deadline=None)
@given(h=st.integers(1, 400), w=st.integers(1, 400), z=st.integers(1, 3), seed=st.integers(0, 2**16),
       air=st.floats(0.0, 1.0))
def test_any_shape_and_content_gives_a_mask_of_that_shape(h, w, z, seed, air):
    rng = np.random.default_rng(seed)
    hu = np.where(rng.random((z, h, w)) < air, -1000, 40).astype(np.int16)
    m = lung_air(hu)
    assert m.shape == hu.shape and m.dtype == bool
    if max(h, w) <= 128:  # the grid is every pixel: lung air is air
        assert not (m & (hu > -400)).any()
    assert np.array_equal(lung_air(hu[0]), lung_air(hu[:1])[0])
