"""The patient's body on each axial slice of a HU volume (numpy and scipy.ndimage only).

Lung lies inside the body. A model that saw only lung-window display slices can still call the air
between the patient and the table "lung", or the foam mattress and blankets around the patient
(about -900 HU) "lung" and "ground glass", on slices without lung (upper abdomen, neck):
:func:`body_mask` tells the lesion segmenter where a label can be, so that such pixels count as
background.

Per slice: tissue is above -500 HU (halfway between air and water); the body is the largest
connected piece of tissue and every piece at least a tenth its size (arms, a second leg of the
cut), with the holes inside filled (lungs, airways, bowel gas). Where the largest piece touches the
edge of the image, the field of view cuts through the patient and air at the edge may be lung:
that slice is left whole (every pixel may hold a label). The search runs on every ``step``-th
pixel of each axis (chosen so that the grid is at most about 128 pixels a side) and is scaled back:
its edge is within ``step / 2`` pixels of the threshold's along each axis.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

TISSUE_HU = -500.0
MIN_SHARE = 0.1  # a piece of tissue this share of the largest one is body too
GRID_PX = 128


def _slice_body(tissue: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    lab, n = ndimage.label(tissue)
    if n == 0:
        return np.zeros_like(tissue)
    sizes = np.bincount(lab.ravel())[1:]
    largest = int(np.argmax(sizes)) + 1
    edge = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    if np.any(edge == largest):
        return np.ones_like(tissue)
    keep = np.concatenate([[False], sizes >= MIN_SHARE * sizes.max()])
    return ndimage.binary_fill_holes(keep[lab])


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


def body_mask(hu: np.ndarray) -> np.ndarray:
    """bool mask of the body, same shape as ``hu`` (a slice ``[H, W]`` or a volume ``[Z, H, W]``)."""
    a = np.asarray(hu)
    grid, small = body_grid(a[None] if a.ndim == 2 else a)
    out = grid.up(small)
    return out[0] if a.ndim == 2 else out


def body_grid(vol: np.ndarray) -> Tuple[Grid, np.ndarray]:
    """The body of each slice of a ``[Z, H, W]`` volume on its grid: (the grid, bool ``[Z, h, w]``);
    ``grid.up`` of any run of its slices is :func:`body_mask` of those slices."""
    grid = Grid(*vol.shape[-2:])
    return grid, np.stack([_slice_body(grid.down(s) > TISSUE_HU) for s in vol])
