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


@pytest.mark.parametrize("crop", [
    np.s_[:, 30:-30],  # the patient wider than the field of view: the body reaches both sides (ct-64 is so)
    np.s_[:, 120:],  # through the right lung: its air reaches the edge
    np.s_[:, 206:],  # down the middle
    np.s_[60:-60, 60:-60],  # tight on every side
    np.s_[:200, :150],  # a corner of the image inside a lung
    np.s_[100:, :200],
])
def test_a_cut_field_of_view_keeps_the_lungs_and_not_the_air_around_the_patient(crop):
    """Where the field of view cuts the body there are no holes to fill: the lung air that the edge cuts is body
    and the air around the patient, between the patient and the table included, is not (it was all body, and
    the lesion model's labels there stayed)."""
    hu = _chest()
    body = ellipse(hu.shape, hu.shape[0] / 2, hu.shape[1] / 2, 115 / 0.8, 150 / 0.8)
    lungs = (hu < -700) & binary_erosion(body, iterations=2)
    outside = ~binary_dilation(body, iterations=4)
    m = body_mask(hu[crop])
    assert lungs[crop].sum() > 5000 and m[lungs[crop]].all()
    assert m[binary_erosion(body, iterations=4)[crop]].all()
    assert not m[outside[crop]].any()


def test_a_lung_cut_on_two_sides_by_a_corner_keeps_most_of_it():
    """The limit of the rule: a lung cut by both edges at a corner, with its chest wall cropped away, lies partly
    outside the body's hull with no body beyond it. Most of it stays."""
    hu = _chest()
    body = ellipse(hu.shape, hu.shape[0] / 2, hu.shape[1] / 2, 115 / 0.8, 150 / 0.8)
    lungs = ((hu < -700) & binary_erosion(body, iterations=2))[140:, 120:]
    share = body_mask(hu[140:, 120:])[lungs].mean()
    assert 0.75 < share < 1


def test_a_slice_of_air_has_no_body_and_each_slice_is_decided_on_its_own():
    assert not body_mask(np.full((64, 64), -1000.0)).any()
    hu = _chest(noise_hu=0)
    cut = hu[:, 30:-30]
    whole = np.full_like(cut, -1000)
    whole[ellipse(cut.shape, cut.shape[0] / 2, cut.shape[1] / 2, 100, 80)] = 40
    vol = body_mask(np.stack([whole, cut]))
    assert np.array_equal(vol[0], body_mask(whole)) and np.array_equal(vol[1], body_mask(cut))


@settings(max_examples=300, deadline=None)
@given(h=st.integers(1, 60), w=st.integers(1, 60), seed=st.integers(0, 2**16), share=st.floats(0.0, 0.3))
def test_convex_hull_is_every_pixel_inside_the_hull_of_the_mask(h, w, seed, share):
    """The hull from each row's first and last pixel, filled row by row, is the set of pixel centres that every
    facet of the hull of all the mask's pixels holds (the same set, computed the slow way)."""
    from scipy.spatial import ConvexHull, QhullError

    from ctmodels.body import convex_hull

    m = np.random.default_rng(seed).random((h, w)) < share
    pts = np.argwhere(m)
    want = m
    if len(pts) >= 3:
        try:
            eq = ConvexHull(pts).equations
            rows, cols = np.indices(m.shape)
            want = m | np.all(eq[:, 0, None, None] * rows + eq[:, 1, None, None] * cols + eq[:, 2, None, None]
                              <= 1e-9, axis=0)
        except QhullError:  # on one line: the mask itself
            pass
    assert np.array_equal(convex_hull(m), want)


def test_radial_hull_holds_what_lies_inside_a_ring_and_not_beyond_it():
    from ctmodels.body import radial_hull

    ring = ellipse((101, 101), 50, 50, 40, 40) & ~ellipse((101, 101), 50, 50, 35, 35)
    r = radial_hull(ring)
    assert r[ellipse((101, 101), 50, 50, 39, 39)].all() and not r[~ellipse((101, 101), 50, 50, 41, 41)].any()
    arc = ring & (np.indices(ring.shape)[0] < 50)  # the upper half ring, its centre near row 26
    ys = np.nonzero(arc)[0]
    assert 20 < ys.mean() < 30
    r = radial_hull(arc)
    assert r[10:26, 50].all()  # up the ray from the centre the arc lies beyond
    assert not r[27:, 50].any()  # down the ray nothing does


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



# ------------------------------------------------------------------ an 8-bit display slice: no HU
@pytest.mark.parametrize("center, width", [(-600, 1500), (-500, 1000), (-500, 2000)])
@pytest.mark.parametrize("crop", [np.s_[:, :], np.s_[:, 120:], np.s_[60:-60, 60:-60]])
def test_a_display_slice_s_body_is_found_in_its_own_grey_levels(center, width, crop):
    """A slice saved in a lung window has no HU; its body is found above 0.8 of Otsu's level, and matches the
    HU body: the lungs in, the mattress-like foam and the table under the patient out, crops as in HU."""
    from ctmodels.body import display_tissue_level
    from ctmodels.preprocessing import window_hu

    hu = _chest()
    foam = ellipse(hu.shape, hu.shape[0] / 2 + 160, hu.shape[1] / 2, 16, 150) & (hu < -950)  # under the patient
    table = np.zeros(hu.shape, bool)
    table[-12:-8, 30:-30] = True
    hu[foam], hu[table] = -900, 300
    hu, foam, table = hu[crop], foam[crop], table[crop]
    disp = window_hu(hu, center, width)
    level = display_tissue_level(disp)
    air, tissue = window_hu(np.array([-1000.0, 40.0]), center, width)
    assert air < level < tissue
    m, want = body_mask(disp, display=True), body_mask(hu)
    assert m.shape == disp.shape and m.dtype == bool
    assert (m & want).sum() / (m | want).sum() > 0.97
    lungs = (hu < -700) & want
    assert lungs.sum() > 5000 and m[lungs].all()
    assert not m[table].any() and not m[foam].any()
    assert not want[table].any() and not want[foam].any()


def test_display_tissue_level_of_flat_and_two_level_images():
    from ctmodels.body import display_tissue_level

    two = np.zeros((40, 40), np.uint8)
    two[10:30, 10:30] = 200
    assert 0 < display_tissue_level(two) < 200
    assert body_mask(two, display=True)[12:28, 12:28].all() and not body_mask(two, display=True)[:8].any()
    assert display_tissue_level(two) == pytest.approx(0.8 * 99.5)  # the middle of the splits 0..199 (dark: <= it)
    for level in (0, 90, 255):  # one level: nothing is tissue
        assert not body_mask(np.full((16, 16), level, np.uint8), display=True).any()


# ------------------------------------------------------------------ the box the lesion model reads of a small patient
def test_zoom_box_is_a_square_the_body_fills_to_0_95_and_none_for_a_large_body():
    from ctmodels.body import ZOOM_FILL, zoom_box

    body = np.zeros((600, 600), bool)
    body[ellipse(body.shape, 300, 280, 100, 150)] = True  # 201 x 301 px in 600: a third of the image
    rows, cols = zoom_box(body)
    side = rows.stop - rows.start
    assert side == cols.stop - cols.start == round(301 / ZOOM_FILL)
    assert body[rows, cols].sum() == body.sum()  # all of it inside
    assert abs((rows.start + rows.stop) / 2 - 300) <= 1 and abs((cols.start + cols.stop) / 2 - 280) <= 1
    large = np.zeros((300, 300), bool)
    large[20:280, 40:250] = True  # spans 0.87 of the image, as training slices do
    assert zoom_box(large) == (slice(None), slice(None))
    assert zoom_box(np.zeros((300, 300), bool)) == (slice(None), slice(None))
    speck = np.zeros((300, 300), bool)
    speck[100:110, 100:110] = True  # a box under 32 px: no zoom
    assert zoom_box(speck) == (slice(None), slice(None))


def test_zoom_box_stays_inside_the_image_and_one_box_holds_every_slice():
    from ctmodels.body import zoom_box

    body = np.zeros((2, 200, 500), bool)
    body[0, 100:200, 0:120] = True  # at a corner: the 126 px box moves inside the image
    assert zoom_box(body[0]) == (slice(74, 200), slice(0, 126))
    tall = np.zeros((100, 500), bool)
    tall[10:90, 200:300] = True  # a 105 px box in a 100 px high image: cut by its edges
    assert zoom_box(tall) == (slice(0, 100), slice(198, 303))
    body[1, 20:60, 300:380] = True
    rows, cols = zoom_box(body)  # the union of both slices: 180 x 380 px, 0.76 of 500
    assert body[:, rows, cols].sum() == body.sum() and cols.stop - cols.start == 400


def test_body_pieces_counts_patients_not_arms():
    from ctmodels.body import body_pieces

    one = np.zeros((200, 400), bool)
    one[ellipse(one.shape, 100, 200, 60, 90)] = True
    one[ellipse(one.shape, 100, 330, 25, 20)] = True  # an arm: 0.09 of the torso
    assert body_pieces(one) == 1 and body_pieces(np.zeros((20, 20), bool)) == 0
    two = np.zeros((200, 400), bool)
    two[ellipse(two.shape, 100, 100, 60, 90)] = True
    two[ellipse(two.shape, 100, 300, 55, 85)] = True  # a second slice beside the first
    assert body_pieces(two) == 2


def test_bar_pieces_are_toolbars_along_an_edge_not_bodies_or_crops():
    from scipy import ndimage

    from ctmodels.body import bar_pieces, body_mask

    img = np.zeros((300, 400), bool)
    img[:30] = True  # a toolbar along the top
    img[40:, -20:] = True  # a panel down most of the right side (260 of 300 px: under 0.9 of it, no bar)
    img[ellipse(img.shape, 170, 180, 100, 150)] = True  # the patient, touching no edge
    img[ellipse(img.shape, 299, 100, 40, 60)] = True  # an arm cut by the bottom edge: not along most of it
    pieces, n = ndimage.label(img)
    bars = bar_pieces(pieces, n)
    assert bars.tolist().count(True) == 1 and bars[pieces[0, 0]] and not bars[pieces[170, 180]]
    assert not bars[pieces[295, 100]] and not bars[pieces[200, -1]]
    img[30:40, -20:] = True  # the panel joined to the toolbar: one piece, an L, that fills little of its box
    pieces, n = ndimage.label(img)
    assert not bar_pieces(pieces, n).any()
    img[:40, -20:] = False
    img[:, :20] = True  # a panel down the whole left side, joined to the toolbar: an L again
    img[:30] = False  # without the toolbar: a bar
    pieces, n = ndimage.label(img)
    assert bar_pieces(pieces, n)[pieces[150, 0]]
    whole = np.ones((1, 50, 50), int)  # a crop that is all tissue: as thick as the image, no bar
    assert not bar_pieces(whole[0], 1).any()
    shot = np.zeros(img.shape, np.uint8)  # a screenshot: the toolbar, and the patient with its lungs
    shot[:30] = 200
    shot[ellipse(img.shape, 170, 180, 100, 150)] = 200
    shot[ellipse(img.shape, 170, 130, 60, 40) | ellipse(img.shape, 170, 230, 60, 40)] = 30
    body = body_mask(shot, display=True)
    assert not body[:25].any() and body[170, 130] and body[170, 180]  # the toolbar is not body, the lungs are
