"""The patient's body on each axial slice of a HU volume, or of an 8-bit display volume (numpy and scipy only).

Lung lies inside the body. A model that saw only lung-window display slices can still call the air
between the patient and the table "lung", or the foam mattress and blankets around the patient
(about -900 HU) "lung" and "ground glass", on slices without lung (upper abdomen, neck):
:func:`body_mask` tells the lesion segmenter where a label can be, so that such pixels count as
background.

Per slice: tissue is above -500 HU (halfway between air and water); the body is the largest
connected piece of tissue and every piece at least a tenth its size (arms, a second leg of the
cut), with the holes inside filled (lungs, airways, bowel gas). Where the largest piece touches the
edge of the image, the field of view cuts through the patient (a crop, or a patient wider than the field of
view) and air at the edge may be lung, so there are no holes to fill. Such a slice's body is the convex hull
of that tissue, with every piece of air that lies mostly inside the hull (after a second hull that takes in
the air the first found inside), or that has some of that tissue beyond it (5 % of its pixels), seen from the
tissue's centre along a ray (a lung whose chest wall the crop took, with the mediastinum beyond it), and
the specks of tissue in that air. The air around the patient lies outside the hull with nothing beyond it. A
lung cut on two sides by a corner of the image, its chest wall cropped away, can lose the part of it beyond
the hull (a test measures about a fifth on a synthetic crop). The search runs on every ``step``-th
pixel of each axis (chosen so that the grid is at most about 128 pixels a side) and is scaled back:
its edge is within ``step / 2`` pixels of the threshold's along each axis.

An 8-bit display slice (a PNG or JPEG export, in any lung window) has no HU: there tissue is above
``DISPLAY_TISSUE`` times Otsu's level of the slice (:func:`display_tissue_level`), the level that best splits
its pixels into dark (air, lung) and bright (tissue). A slice of a real GE scan of the upper abdomen saved
in W 1500 / L -600 had its mattress and table labelled "lung" (7 % of the image) and was graded CT-1, 12.7 %;
inside this body 0.7 % of the image was left ("little lung found"). Measured (an evaluation test keeps these
true): of the 1664 training slices' reference lung or lesion (1614 lung masks, 50 lesion masks), none lies in a
piece mostly outside this body; on two real chest CTs in seven lung windows, also as JPEG, no lung air does,
the body overlaps the HU one by at least 0.96 (intersection over union), and the level stands for -500 to
-680 HU (the HU body's is -500). Otsu's level itself cut the lungs off one training slice, whose body wall is
dim.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

TISSUE_HU = -500.0
MIN_SHARE = 0.1  # a piece of tissue this share of the largest one is body too
HULL_PASSES = 2  # a cut slice: hull of the body, then of the body and the air mostly inside it
BEYOND_SHARE = 0.05  # a cut slice: air with body beyond this share of it, seen from the centre, is body
GRID_PX = 128
DISPLAY_TISSUE = 0.8  # of Otsu's level: tissue in an 8-bit display slice


def convex_hull(mask: np.ndarray) -> np.ndarray:
    """The pixels of a 2D bool mask's convex hull (pixel centres on or inside it); the mask itself where its
    pixels lie on one line or there are fewer than three."""
    from scipy.spatial import ConvexHull, QhullError

    rows = np.flatnonzero(mask.any(1))
    first, last = np.argmax(mask[rows], 1), mask.shape[1] - 1 - np.argmax(mask[rows, ::-1], 1)
    # the hull of each row's first and last pixel is the hull of them all
    pts = np.unique(np.concatenate([np.stack([rows, first], 1), np.stack([rows, last], 1)]), axis=0)
    if len(pts) < 3:
        return mask.copy()
    try:
        eq = ConvexHull(pts).equations  # rows (a, b, c): a * row + b * col + c <= 0 inside
    except QhullError:  # collinear
        return mask.copy()
    # a convex region holds one run of columns per row: its ends from the facets, all rows at once
    a, b, c = eq[:, :1], eq[:, 1:2], eq[:, 2:]
    bound = (-c - a * np.arange(mask.shape[0])) / np.where(b == 0, 1.0, b)  # [facets, rows]: col = bound
    tol = 1e-9
    lo = np.max(np.where(b < 0, bound, -np.inf), axis=0) - tol
    hi = np.min(np.where(b > 0, bound, np.inf), axis=0) + tol
    flat = b[:, 0] == 0  # facets along a row: they bound the rows
    rows_ok = np.all((a[flat] * np.arange(mask.shape[0]) + c[flat]) <= tol, axis=0)
    cols = np.arange(mask.shape[1])
    return ((cols >= lo[:, None]) & (cols <= hi[:, None]) & rows_ok[:, None]) | mask


def radial_hull(mask: np.ndarray, bins: int = 360) -> np.ndarray:
    """The pixels that ``mask`` holds or lies beyond, seen from its centre: on the ray from the centre through a
    pixel, some pixel of ``mask`` is as far out or farther (in ``bins`` directions)."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return mask.copy()
    yy, xx = np.indices(mask.shape, dtype=np.float64)
    yy -= ys.mean()
    xx -= xs.mean()
    ray = ((np.arctan2(yy, xx) + np.pi) * (bins / (2 * np.pi))).astype(np.int64) % bins
    r = np.hypot(yy, xx)
    reach = np.full(bins, -1.0)
    np.maximum.at(reach, ray[mask], r[mask])
    return r <= reach[ray]


BAR_SIDE = 0.9  # a piece along this share of a side of the image ...
BAR_FILL = 0.95  # ... that fills this share of its bounding box ...
BAR_THICK = 0.25  # ... and is at most this share of the image thick across that side: a bar, not a patient


def bar_pieces(pieces: np.ndarray, n: int) -> np.ndarray:
    """Which of the ``n`` labelled pieces of a 2D image (``pieces`` as ``scipy.ndimage.label`` gives them) are bars
    along its edge, as a viewer's toolbar or a panel beside the image in a screenshot: a piece that runs along at
    least ``BAR_SIDE`` of one side of the image, fills at least ``BAR_FILL`` of its bounding box and is at most
    ``BAR_THICK`` of the image thick across that side. A patient's body fills less of its box (an ellipse 0.79);
    a crop that is all tissue fills its box but is as thick as the image. bool ``[n + 1]``, indexed by label (0,
    no piece, is False)."""
    from scipy import ndimage

    out = np.zeros(n + 1, bool)
    if n == 0:
        return out
    h, w = pieces.shape
    boxes = ndimage.find_objects(pieces)  # per label: its bounding box
    rows_of = np.array([b[0].stop - b[0].start for b in boxes])  # height of each piece's box
    cols_of = np.array([b[1].stop - b[1].start for b in boxes])
    flat, narrow = rows_of <= BAR_THICK * h, cols_of <= BAR_THICK * w
    bar = np.zeros(n, bool)
    for edge, length, thin in ((pieces[0], w, flat), (pieces[-1], w, flat), (pieces[:, 0], h, narrow),
                               (pieces[:, -1], h, narrow)):
        bar |= (np.bincount(edge, minlength=n + 1)[1:] >= BAR_SIDE * length) & thin
    sizes = np.bincount(pieces.ravel(), minlength=n + 1)[1:]
    out[1:] = bar & (sizes >= BAR_FILL * rows_of * cols_of)
    return out


def without_bars(mask: np.ndarray) -> np.ndarray:
    """A 2D bool mask without its pieces that are bars along the image's edge (:func:`bar_pieces`)."""
    from scipy import ndimage

    lab, n = ndimage.label(mask)
    bars = bar_pieces(lab, n)
    return mask & ~bars[lab] if bars.any() else mask


def _slice_body(tissue: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    lab, n = ndimage.label(tissue)
    if n == 0:
        return np.zeros_like(tissue)
    sizes = np.bincount(lab.ravel())[1:]
    largest = int(np.argmax(sizes)) + 1
    big = np.concatenate([[False], sizes >= MIN_SHARE * sizes.max()])
    keep = big[lab]
    edge = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    if not np.any(edge == largest):
        return ndimage.binary_fill_holes(keep)
    # The field of view cuts the body: there is no hole to fill, and lung air may reach the edge. Air around
    # the patient lies outside the body's convex hull and has no body beyond it, seen from the body's centre;
    # a lung cut by the edge lies mostly inside the hull, or has chest wall or mediastinum beyond part of it.
    air, m = ndimage.label(~tissue)
    if m == 0:
        return np.ones_like(tissue)
    ids = np.arange(1, m + 1)
    beyond = ndimage.mean(radial_hull(keep), air, ids) >= BEYOND_SHARE
    body = keep
    for _ in range(HULL_PASSES):  # the hull of the body, then of the body and the air found inside it
        hull = convex_hull(body)
        inner = np.concatenate([[False], (ndimage.mean(hull, air, ids) >= 0.5) | beyond])[air]
        body = hull | inner
    # specks of tissue within that air (vessels and noise of a lung cut by the edge) are body too
    touching = np.unique(lab[ndimage.binary_dilation(inner) & (lab > 0)])
    return body | np.isin(lab, touching[~big[touching]])


class Grid:
    """Every ``step``-th pixel of each axis of an ``[H, W]`` image, at most about ``GRID_PX`` a side,
    and the way back: each grid pixel stands for the block around it, so edges move by ``step / 2``."""

    def __init__(self, h: int, w: int):
        sy, sx = (max(1, -(-n // GRID_PX)) for n in (h, w))  # per axis: a thin strip still has a grid row
        self.picks = (slice(sy // 2, None, sy), slice(sx // 2, None, sx))
        self.rows = np.minimum(np.arange(h) // sy, len(range(sy // 2, h, sy)) - 1)
        self.cols = np.minimum(np.arange(w) // sx, len(range(sx // 2, w, sx)) - 1)

    def down(self, a: np.ndarray) -> np.ndarray:
        """``a[..., H, W]`` on the grid."""
        return a[(Ellipsis,) + self.picks]

    def up(self, small: np.ndarray) -> np.ndarray:
        """``small[..., h, w]`` from the grid back to ``[..., H, W]``."""
        return small[..., self.rows, :][..., self.cols]


def display_tissue_level(img: np.ndarray) -> float:
    """The level above which a pixel of an 8-bit display slice is tissue: ``DISPLAY_TISSUE`` times Otsu's
    level (the level between the two classes of the slice's grey levels whose variance between them is the
    largest; the middle of the levels that share the largest, where a gap in the levels leaves several); the
    level itself in an image of one level."""
    hist = np.bincount(np.asarray(img, np.uint8).ravel(), minlength=256).astype(np.float64)
    w = np.cumsum(hist) / hist.sum()  # share at or below each level
    m = np.cumsum(hist * np.arange(256)) / hist.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        between = np.nan_to_num((m[-1] * w - m) ** 2 / (w * (1 - w)))
    if between.max() == 0:  # one grey level: nothing stands out as tissue
        return float(np.max(img))
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))
    return DISPLAY_TISSUE * (best[0] + best[-1]) / 2


def body_mask(vol: np.ndarray, display: bool = False) -> np.ndarray:
    """bool mask of the body, same shape as ``vol`` (a slice ``[H, W]`` or a volume ``[Z, H, W]``) in HU, or
    with ``display`` 8-bit display levels."""
    a = np.asarray(vol)
    grid, small = body_grid(a[None] if a.ndim == 2 else a, display)
    out = grid.up(small)
    return out[0] if a.ndim == 2 else out


def body_grid(vol: np.ndarray, display: bool = False) -> Tuple[Grid, np.ndarray]:
    """The body of each slice of a ``[Z, H, W]`` volume (HU, or with ``display`` 8-bit display levels) on its
    grid: (the grid, bool ``[Z, h, w]``); ``grid.up`` of any run of its slices is :func:`body_mask` of those
    slices."""
    grid = Grid(*vol.shape[-2:])
    small = (grid.down(s) for s in vol)
    if display:  # a viewer's toolbar or panel in a screenshot is no part of the patient
        return grid, np.stack([_slice_body(without_bars(s > display_tissue_level(s))) for s in small])
    return grid, np.stack([_slice_body(s > TISSUE_HU) for s in small])


SEVERAL_SHARE = 0.5  # a second piece of body this share of the largest: another patient


def body_pieces(body: np.ndarray) -> int:
    """How many pieces of a 2D body mask (touching by an edge) are at least ``SEVERAL_SHARE`` of the largest: 1
    for a patient, whose arms are smaller (in the 1664 training slices and two real chest CTs in seven lung windows,
    also as JPEG, the second piece of the display body was at most 0.18 of the largest), more for several slices
    side by side in one image (a viewer's layout, a figure's panels: about 1.0); 0 for no body."""
    from scipy import ndimage

    lab, n = ndimage.label(np.asarray(body, bool))
    if n == 0:
        return 0
    sizes = np.bincount(lab.ravel())[1:]
    return int(np.count_nonzero(sizes >= SEVERAL_SHARE * sizes.max()))


ZOOM_BELOW = 0.8  # the body's longer side spans less of the image than this: read a box round it
ZOOM_FILL = 0.95  # the body's longer side in that box (training slices: 0.84-1.0 of theirs)
ZOOM_MIN_PX = 32  # no box smaller than this a side


def zoom_box(body: np.ndarray) -> Tuple[slice, slice]:
    """The square box (rows, columns) the lesion model should read of an image whose patient is small in it.

    The lesion model saw patients whose body spans at least 0.84 of their slice's longer side (the median 0.99;
    SemiSeg crops 1.0). A slice pasted into a larger black canvas (a screenshot of a viewer) or a thin patient in
    a wide field of view shows it a small patient, and its result goes astray: 8 held-out slices in a black canvas
    three times their size were read 24 percentage points of involvement off their own result (mostly more),
    0.4 in such a box (an evaluation test, ``tests/test_eval_models.py``). So
    where ``body`` (bool ``[H, W]``, or ``[Z, H, W]`` for one box for every slice) spans less than ``ZOOM_BELOW``
    of the image's longer side, the box is a square round its middle whose side the body's longer side fills to
    ``ZOOM_FILL``, moved inside the image (and cut by its edges where it is larger); ``(slice(None), slice(None))``
    where the body is large enough, empty, or the box would be under ``ZOOM_MIN_PX`` a side."""
    b = np.asarray(body, bool)
    b = b.reshape((-1,) + b.shape[-2:]).any(0)
    whole = (slice(None), slice(None))
    rows, cols = np.flatnonzero(b.any(1)), np.flatnonzero(b.any(0))
    if len(rows) == 0:
        return whole
    h, w = b.shape
    extent = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
    side = int(round(extent / ZOOM_FILL))
    if extent >= ZOOM_BELOW * max(h, w) or side < ZOOM_MIN_PX:
        return whole

    def span(lo: int, hi: int, n: int) -> slice:
        start = int(min(max(0, (lo + hi + 1) // 2 - side // 2), max(0, n - side)))
        return slice(start, min(n, start + side))

    return span(rows[0], rows[-1], h), span(cols[0], cols[-1], w)
