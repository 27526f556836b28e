"""Bring arrays with known axis directions to the one orientation ctmodels uses.

The canonical layout is ``voxels[z, y, x]`` with z toward patient Superior, y toward
Posterior and x toward patient Left: the DICOM/LPS patient frame read as [S, P, L].
For an axial DICOM series with ImageOrientationPatient ``[1,0,0, 0,1,0]`` this is the
stored order with slices sorted from feet to head, so a slice ``voxels[k]`` displays in
the usual radiological view (anterior up, patient's right on the image's left).
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

# world axis (LPS index) that each canonical array axis follows: z->S(2), y->P(1), x->L(0)
_TARGET = (2, 1, 0)


def canonicalize(
    data: np.ndarray, directions: np.ndarray, spacing: Sequence[float]
) -> Tuple[np.ndarray, Tuple[float, float, float], np.ndarray]:
    """Permute and flip a 3D array to the canonical [S, P, L] layout.

    ``directions[:, k]`` is the LPS unit direction of array axis ``k`` and ``spacing[k]`` its
    step in mm. Each canonical axis takes the array axis whose direction is closest to it.
    Returns ``(array, spacing_zyx, residual)`` where ``residual`` is the direction matrix after
    the permutation (identity for axis-aligned inputs; oblique inputs keep their obliquity).
    """
    d = np.asarray(directions, dtype=float)
    if data.ndim != 3 or d.shape != (3, 3):
        raise ValueError("canonicalize expects a 3D array and a 3x3 direction matrix")
    order, flips = [], []
    free = [0, 1, 2]
    for w in _TARGET:
        k = max(free, key=lambda a: abs(d[w, a]))
        free.remove(k)
        order.append(k)
        flips.append(d[w, k] < 0)
    out = np.transpose(data, order)
    for ax, f in enumerate(flips):
        if f:
            out = np.flip(out, axis=ax)
    sp = tuple(float(spacing[k]) for k in order)
    residual = d[:, order] * np.where(flips, -1.0, 1.0)[None, :]
    return np.ascontiguousarray(out), sp, residual  # type: ignore[return-value]


def ras_to_lps(affine: np.ndarray) -> np.ndarray:
    """Flip the first two world axes of a 4x4 (or 3x3) affine: RAS <-> LPS."""
    a = np.array(affine, dtype=float)
    a[:2] *= -1
    return a


def split_affine(affine3x3: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """3x3 matrix whose columns are axis steps -> (unit directions, spacing per axis)."""
    m = np.asarray(affine3x3, dtype=float)
    spacing = np.linalg.norm(m, axis=0)
    spacing[spacing == 0] = 1.0
    return m / spacing[None, :], spacing
