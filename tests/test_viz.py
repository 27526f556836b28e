"""Overlays and outlines drawn over 8-bit slices (ctmodels.viz)."""

import numpy as np
import pytest

from ctmodels.viz import DEFAULT_COLORS, overlay, outline


def test_overlay_blends_only_the_chosen_classes():
    gray = np.full((6, 8), 100, np.uint8)
    labels = np.zeros((6, 8), np.uint8)
    labels[1:3, 1:3], labels[4, 4] = 1, 2
    rgb = overlay(gray, labels, classes=(1,), alpha=0.5)
    assert rgb.shape == (6, 8, 3) and rgb.dtype == np.uint8
    want = np.rint(0.5 * 100 + 0.5 * np.array(DEFAULT_COLORS[1]))
    assert (rgb[1:3, 1:3] == want).all()
    assert (rgb[4, 4] == 100).all() and (rgb[0, 0] == 100).all()  # consolidation not chosen; background untouched
    with pytest.raises(ValueError, match="differ in shape"):
        overlay(gray, labels[:5])


def test_outline_draws_one_pixel_edges_in_the_class_colour():
    rgb = np.zeros((9, 9, 3), np.uint8)
    labels = np.zeros((9, 9), np.uint8)
    labels[2:7, 2:7] = 1  # a 5x5 square: 16 edge pixels, a 3x3 inside left as it was
    labels[0, 8] = 2  # one pixel of another class, not chosen
    out = outline(rgb, labels, classes=(1,), colors={1: (1, 2, 3)})
    drawn = (out != 0).any(-1)
    assert drawn.sum() == 16 and drawn[2, 2:7].all() and drawn[6, 2:7].all() and drawn[2:7, 2].all()
    assert not drawn[3:6, 3:6].any() and not drawn[0, 8]
    assert (out[drawn] == (1, 2, 3)).all() and (rgb == 0).all()  # a copy: the input is unchanged
    edge = np.zeros((4, 4), np.uint8)
    edge[:, :2] = 1  # at the image's border: closed there, so all of this 2-wide strip is edge
    assert (outline(np.zeros((4, 4, 3), np.uint8), edge)[..., 0] > 0).sum() == 8
