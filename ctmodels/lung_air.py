"""Lung air in a HU volume, and the lesion-label pieces it anchors (numpy and scipy.ndimage only).

The lesion model saw only slices with lung. On the upper abdomen of a real chest CT it calls stomach
and bowel gas "lung" and the food and fluid around it "consolidation". In 3D the lungs' air is one
large connected piece (or one per lung) and stomach or bowel gas is a separate, smaller piece below
the diaphragm, so the air tells the two apart where the labels do not.

:func:`lung_air`: air (below -400 HU, inside the body of :mod:`ctmodels.body`) in 3D pieces that are
lung: a piece at least a tenth the size of the largest one, or one whose slices reach the middle
slice of the largest piece (a lung whose disease leaves little air still runs as high as the other
lung). :func:`unanchored`: labelled pixels in 2D pieces of a slice (pixels touching by an edge or a
corner) that hold no lung air: there is no air of lung in them or around them on that slice. And where
a piece holds both lung air and other large air (stomach or bowel gas, at least 1 % of the largest
piece), the pixels of the piece nearer to the other air than to the lungs' (straight-line distance).

A consolidated lung region keeps its label as long as its piece holds an aerated pixel of the lung
and lies nearer to it than to gas below the diaphragm. In the 20 labelled COVID volumes of the
lung-infection set, 0.44 % of the infection lay in lung pieces that were at least 95 % infection
(measured in session 22): the nearest these labels come to a piece without aerated lung. Air specks
and air bronchograms cut off from the bronchi are under 1 % of the lungs, so they are neither kind
of air.

The 3D search runs on the in-plane grid of :class:`ctmodels.body.Grid` (at most about 128 pixels a
side), so a 512 x 512 x 300 study costs about as much as its body mask.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .body import Grid, body_grid

AIR_HU = -400.0
MIN_SHARE = 0.1
OTHER_SHARE = 0.01  # an air piece that is not lung and at least this share of the largest: stomach or bowel


def lung_air(hu: np.ndarray) -> np.ndarray:
    """bool mask of the lungs' air, same shape as ``hu`` (a slice ``[H, W]`` or a volume ``[Z, H, W]``)."""
    return air_masks(hu)[0]


def air_masks(hu: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(the lungs' air, other large air) as bool masks of ``hu``'s shape. Other air: pieces that are not
    lung and at least ``OTHER_SHARE`` of the largest piece (stomach and bowel gas, air outside a body the
    field of view cuts); smaller ones (air bronchograms in consolidation, specks of noise) are neither."""
    a = np.asarray(hu)
    vol = a[None] if a.ndim == 2 else a
    grid, body = body_grid(vol)
    out = tuple(grid.up(m) for m in air_on_grid(vol, grid, body))
    return tuple(m[0] for m in out) if a.ndim == 2 else out


def air_on_grid(vol: np.ndarray, grid: Grid, body: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`air_masks` of a ``[Z, H, W]`` volume on ``grid``, given the body there (as
    :func:`ctmodels.body.body_grid` gives both); ``grid.up`` of any run of slices is the full-size mask."""
    from scipy import ndimage

    lab, n = ndimage.label((grid.down(vol) < AIR_HU) & body)
    if n == 0:
        return np.zeros(lab.shape, bool), np.zeros(lab.shape, bool)
    sizes = np.bincount(lab.ravel())[1:]
    largest = int(np.argmax(sizes))
    found = ndimage.find_objects(lab)  # per piece: its bounding box; [0] is its run of slices
    middle = (found[largest][0].start + found[largest][0].stop - 1) // 2
    lung = np.asarray([False] + [bool(sizes[i] >= MIN_SHARE * sizes[largest]
                                      or box[0].start <= middle < box[0].stop) for i, box in enumerate(found)])
    other = np.concatenate([[False], sizes >= OTHER_SHARE * sizes[largest]]) & ~lung
    return lung[lab], other[lab]


def unanchored(labels: np.ndarray, anchor: np.ndarray, other: Optional[np.ndarray] = None) -> np.ndarray:
    """bool mask of the labelled pixels (``labels > 0``) of each slice that are not anchored in lung air:
    those in a 2D piece of labels holding no ``anchor`` pixel, and, in a piece holding both ``anchor`` and
    ``other`` air (the labels run from the lung base across the diaphragm into the stomach), those nearer
    to the other air than to the lungs'. All arrays ``[H, W]`` or ``[Z, H, W]``, same shape."""
    from scipy import ndimage

    lab3 = np.asarray(labels)
    lab3 = lab3[None] if lab3.ndim == 2 else lab3
    anc3 = np.asarray(anchor).reshape(lab3.shape)
    oth3 = None if other is None else np.asarray(other).reshape(lab3.shape)
    out = np.zeros(lab3.shape, bool)
    corners = np.ones((3, 3), bool)
    for z in range(lab3.shape[0]):
        pieces, n = ndimage.label(lab3[z] > 0, structure=corners)
        if n == 0:
            continue
        held = np.bincount(pieces[anc3[z]], minlength=n + 1) > 0
        mixed = np.zeros_like(held)
        if oth3 is not None:
            mixed = held & (np.bincount(pieces[oth3[z]], minlength=n + 1) > 0)
            mixed[0] = False
        if held[1:].all() and not mixed.any():  # the common case on a chest slice: nothing to drop
            continue
        held[0] = True
        out[z] = ~held[pieces]
        boxes = ndimage.find_objects(pieces)
        for k in np.nonzero(mixed)[0]:
            box = boxes[k - 1]
            inside = pieces[box] == k
            theirs = oth3[z][box] & inside
            _, (iy, ix) = ndimage.distance_transform_edt(~((anc3[z][box] & inside) | theirs), return_indices=True)
            out[z][box] |= inside & theirs[iy, ix]
    return out.reshape(np.shape(labels))
