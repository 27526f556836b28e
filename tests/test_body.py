"""The body mask that keeps lesion labels inside the patient on HU input (synthetic slices, known answers)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import binary_dilation, binary_erosion

from ctmodels.body import body_mask
from ctmodels.phantoms import chest_phantom
from synth import ellipse


def _chest(noise_hu=15.0):
    return chest_phantom((5.0, 0.8, 0.8), extent_mm=10, fov_mm=330, noise_hu=noise_hu, seed=1)[0]


def test_body_holds_the_lungs_and_not_the_air_around_it():
    hu = _chest()
    m = body_mask(hu)
    assert m.shape == hu.shape and m.dtype == bool
    lungs = hu < -700
    body = ellipse(hu.shape, hu.shape[0] / 2, hu.shape[1] / 2, 115 / 0.8, 150 / 0.8)
    step = 4  # 412 px wide: a grid of every 4th pixel; the edge moves by up to 2 px along each axis
    assert m[lungs & binary_erosion(body, iterations=2)].all()  # lungs and airways are holes: filled
    assert not m[~binary_dilation(body, iterations=step)].any()  # air around the patient
    assert m[binary_erosion(body, iterations=step)].all()
    assert abs(m.sum() - body.sum()) < 0.01 * body.sum()


@pytest.mark.parametrize("shape", [(301, 257), (97, 130), (20, 20), (8, 3000), (3000, 9)])
def test_any_size_keeps_its_shape_and_the_grid_stays_small(shape):
    hu = np.full(shape, -1000.0)
    hu[ellipse(shape, shape[0] / 2, shape[1] / 2, shape[0] / 3, shape[1] / 3)] = 40
    m = body_mask(hu)
    assert m.shape == shape and m[shape[0] // 2, shape[1] // 2] and not m[0, 0]
    vol = body_mask(np.stack([hu, hu]))
    assert vol.shape == (2,) + shape and np.array_equal(vol[1], m)


def test_table_and_specks_are_not_body_but_arms_are():
    hu = np.full((200, 300), -1000.0)
    torso = ellipse(hu.shape, 90, 150, 60, 85)
    arm = ellipse(hu.shape, 90, 270, 35, 25)  # about 17 % of the torso
    hu[torso | arm] = 40
    hu[175:179, 20:280] = 300  # the table: a thin strip, under 10 % of the torso
    hu[10:13, 10:13] = 40  # a speck of noise
    m = body_mask(hu)  # 300 px: every 3rd pixel, edges within 1 px
    assert m[binary_erosion(torso, iterations=2)].all() and m[binary_erosion(arm, iterations=2)].all()
    assert not m[175:179].any() and not m[10:13, 10:13].any()


def test_a_slice_of_air_has_no_body_and_a_cut_field_of_view_keeps_everything():
    assert not body_mask(np.full((64, 64), -1000.0)).any()
    hu = _chest(noise_hu=0)
    cut = hu[:, hu.shape[1] // 2:]  # the crop runs through a lung: its air reaches the edge
    assert body_mask(cut).all()
    whole = np.full_like(cut, -1000)
    whole[ellipse(cut.shape, cut.shape[0] / 2, cut.shape[1] / 2, 100, 80)] = 40
    vol = body_mask(np.stack([whole, cut]))
    assert not vol[0].all() and vol[1].all()  # decided slice by slice


@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 700), w=st.integers(1, 700), z=st.integers(1, 3), seed=st.integers(0, 2**16),
       tissue=st.floats(0.0, 1.0))
def test_any_shape_and_content_gives_a_mask_of_that_shape(h, w, z, seed, tissue):
    """Thin strips, single pixels and random tissue: a bool mask of the input's shape, never an error
    (an 8 x 3000 slice once asked for a grid row that did not exist)."""
    rng = np.random.default_rng(seed)
    hu = np.where(rng.random((z, h, w)) < tissue, 40, -1000).astype(np.int16)
    m = body_mask(hu)
    assert m.shape == hu.shape and m.dtype == bool
    assert body_mask(hu[0]).shape == (h, w)

