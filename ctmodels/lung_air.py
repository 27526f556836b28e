"""Lung air in a HU volume, and the lesion-label pieces it anchors (numpy and scipy.ndimage only).

The lesion model saw only slices with lung. On the upper abdomen of a real chest CT it calls stomach
and bowel gas "lung" and the food and fluid around it "consolidation". In 3D the lungs' air is one
large connected piece (or one per lung) and stomach or bowel gas is a separate, smaller piece below
the diaphragm, so the air tells the two apart where the labels do not.

:func:`lung_air`: air (below -400 HU, inside the body of :mod:`ctmodels.body`) in 3D pieces that are
lung: a piece at least a tenth the size of the largest one, or one whose slices reach the middle
slice of the largest piece (a lung whose disease leaves little air still runs as high as the other
lung). :func:`unanchored`: labelled pixels in 2D pieces of a slice (pixels touching by an edge or a
corner) that hold no lung air. Such a piece is background: there is no air of lung in it or around it
on that slice. A consolidated lung region keeps its label as long as its piece holds any aerated
pixel of the lung; in the 20 labelled COVID volumes of the lung-infection set 0.44 % of the infection
lay in lung pieces that were at least 95 % infection (measured in session 22).

The 3D search runs on the in-plane grid of :class:`ctmodels.body.Grid` (at most about 128 pixels a
side), so a 512 x 512 x 300 study costs about as much as its body mask.
"""

from __future__ import annotations

import numpy as np

from .body import Grid, body_on_grid

AIR_HU = -400.0
MIN_SHARE = 0.1


def lung_air(hu: np.ndarray) -> np.ndarray:
    """bool mask of the lungs' air, same shape as ``hu`` (a slice ``[H, W]`` or a volume ``[Z, H, W]``)."""
    from scipy import ndimage

    a = np.asarray(hu)
    vol = a[None] if a.ndim == 2 else a
    grid = Grid(*vol.shape[-2:])
    small = grid.down(vol)
    air = np.stack([(s < AIR_HU) & body_on_grid(s) for s in small])
    lab, n = ndimage.label(air)
    if n == 0:
        return np.zeros(a.shape, bool)
    sizes = np.bincount(lab.ravel())[1:]
    largest = int(np.argmax(sizes))
    found = ndimage.find_objects(lab)  # per piece: its bounding box; [0] is its run of slices
    middle = (found[largest][0].start + found[largest][0].stop - 1) // 2
    keep = [False] + [bool(sizes[i] >= MIN_SHARE * sizes[largest] or box[0].start <= middle < box[0].stop)
                      for i, box in enumerate(found)]
    out = grid.up(np.asarray(keep)[lab])
    return out[0] if a.ndim == 2 else out


def unanchored(labels: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """bool mask of the labelled pixels (``labels > 0``) of each slice that lie in a 2D piece of labels
    holding no ``anchor`` pixel; ``labels`` and ``anchor`` are ``[H, W]`` or ``[Z, H, W]``, same shape."""
    from scipy import ndimage

    lab3 = np.asarray(labels)
    lab3 = lab3[None] if lab3.ndim == 2 else lab3
    anc3 = np.asarray(anchor).reshape(lab3.shape)
    out = np.zeros(lab3.shape, bool)
    corners = np.ones((3, 3), bool)
    for z in range(lab3.shape[0]):
        pieces, n = ndimage.label(lab3[z] > 0, structure=corners)
        if n == 0:
            continue
        held = np.bincount(pieces[anc3[z]], minlength=n + 1) > 0
        if held[1:].all():  # the common case on a chest slice: nothing to drop
            continue
        held[0] = True
        out[z] = ~held[pieces]
    return out.reshape(np.shape(labels))
