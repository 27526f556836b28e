"""Bring arrays with known axis directions to the one orientation ctmodels uses.

The canonical layout is ``voxels[z, y, x]`` with z toward patient Superior, y toward
Posterior and x toward patient Left: the DICOM/LPS patient frame read as [S, P, L].
For an axial DICOM series with ImageOrientationPatient ``[1,0,0, 0,1,0]`` this is the
stored order with slices sorted from feet to head, so a slice ``voxels[k]`` displays in
the usual radiological view (anterior up, patient's right on the image's left).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

# world axis (LPS index) that each canonical array axis follows: z->S(2), y->P(1), x->L(0)
_TARGET = (2, 1, 0)
# the planes of the slices across each canonical axis: z (axial), y (coronal), x (sagittal)
PLANES = ("axial", "coronal", "sagittal")
# in-plane pixels whose sides differ by more than this ratio are not square (a reformat's axial slices)
SQUARE_RATIO = 1.25
# axial slices tilted more than this off the patient's axial plane are said to be (an oblique series): at 10
# degrees a round trachea reads 1.5 % longer one way, at 20 degrees 6 %
OBLIQUE_DEG = 10.0


@dataclass(frozen=True, eq=False)
class Layout:
    """How a reader brought an input array to the canonical layout, and where the input lies in the world:
    canonical axis ``k`` is input axis ``order[k]``, reversed where ``flips[k]``; ``shape`` is the input
    array's; ``affine`` (4x4, or None where the input gives no position) maps an input array index
    ``(i, j, k, 1)`` to the patient frame in mm (LPS). With it a result on the canonical grid goes back to the
    input's own grid (:meth:`to_input`), so that it lies on the input voxel for voxel."""

    order: Tuple[int, int, int]
    flips: Tuple[bool, bool, bool]
    shape: Tuple[int, int, int]
    affine: Optional[np.ndarray] = None

    @property
    def canonical_shape(self) -> Tuple[int, int, int]:
        return tuple(self.shape[k] for k in self.order)  # type: ignore[return-value]

    @property
    def stored_plane(self) -> str:
        """The plane of the input's own slices, those across its third array axis (a DICOM series' slices, a NIfTI
        or NRRD file's third axis): axial, coronal or sagittal, the nearest."""
        return PLANES[self.order.index(2)]

    def lps_mm(self, zyx: Sequence[float]) -> Optional[np.ndarray]:
        """The patient-frame position (LPS, mm) of canonical index ``(z, y, x)``; None without an affine."""
        if self.affine is None:
            return None
        idx = np.zeros(3)
        for c, ax, f in zip(zyx, self.order, self.flips):
            idx[ax] = self.shape[ax] - 1 - c if f else c
        return self.affine[:3, :3] @ idx + self.affine[:3, 3]

    def to_input(self, arr: np.ndarray) -> np.ndarray:
        """A ``[z, y, x]`` array on the canonical grid, in the input array's axis order and directions."""
        a = np.asarray(arr)
        if a.shape != self.canonical_shape:
            raise ValueError(f"array of shape {a.shape} is not on this volume's grid {self.canonical_shape}")
        for ax, f in enumerate(self.flips):
            if f:
                a = np.flip(a, axis=ax)
        return np.ascontiguousarray(np.transpose(a, np.argsort(self.order)))


def canonicalize(
    data: np.ndarray, directions: np.ndarray, spacing: Sequence[float], origin: Optional[Sequence[float]] = None
) -> Tuple[np.ndarray, Tuple[float, float, float], Layout]:
    """Permute and flip a 3D array to the canonical [S, P, L] layout.

    ``directions[:, k]`` is the LPS unit direction of array axis ``k`` and ``spacing[k]`` its
    step in mm; ``origin``, where known, the LPS position of the array's first voxel. Each canonical axis
    takes the array axis whose direction is closest to it (oblique inputs keep their obliquity in the
    layout's affine). Returns ``(array, spacing_zyx, layout)``: see :class:`Layout`.
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
        flips.append(bool(d[w, k] < 0))
    out = np.transpose(data, order)
    for ax, f in enumerate(flips):
        if f:
            out = np.flip(out, axis=ax)
    sp = tuple(float(spacing[k]) for k in order)
    affine = None
    if origin is not None and np.all(np.isfinite(np.asarray(origin, dtype=float))):
        affine = np.eye(4)
        affine[:3, :3] = d * np.asarray(spacing, dtype=float)[None, :]
        affine[:3, 3] = np.asarray(origin, dtype=float)
    layout = Layout(tuple(order), tuple(flips), tuple(data.shape), affine)  # type: ignore[arg-type]
    return np.ascontiguousarray(out), sp, layout  # type: ignore[return-value]


def reading_note(spacing: Sequence[float], plane: str = "axial") -> Optional[str]:
    """One line for a volume's warnings where its axial slices are not what the models were made for: slices stored
    in another ``plane`` (a DICOM series of coronal or sagittal slices: the axial slices are made across them), or
    axial pixels that are not square (``spacing``: canonical z, y, x in mm); None otherwise."""
    sy, sx = (float(v) for v in spacing[1:])
    square = max(sy, sx) <= SQUARE_RATIO * min(sy, sx)
    if plane == "axial" and square:
        return None
    size = f"{sy:.2f} x {sx:.2f} mm"
    text = (f"pixels are {size}" if plane == "axial" else
            f"slices stored {plane}: read as the axial slices across them, of {size} pixels")
    if not square:
        text += (" (not square: the models were made for axial CT slices of square pixels, so results are less "
                 "reliable)")
    return text


def axial_tilt_deg(directions: np.ndarray, order: Sequence[int]) -> float:
    """How far (degrees) the canonical axial slices lie off the patient's axial plane: the angle between S and the
    normal of the plane of the input axes that became canonical y and x (``order[1]``, ``order[2]``, as
    :func:`canonicalize` chose them; ``directions[:, k]`` is input axis ``k``'s LPS direction). 0 for slices at
    any angle within the axial plane (a patient turned in the image), as for coronal or sagittal slices whose
    axial slices are made across them square to S."""
    d = np.asarray(directions, dtype=float)
    n = np.cross(d[:, order[1]], d[:, order[2]])
    size = float(np.linalg.norm(n))
    if not size or not np.isfinite(size):
        return 0.0
    return float(np.degrees(np.arccos(min(1.0, abs(n[2]) / size))))


def tilt_note(deg: float) -> Optional[str]:
    """One line for a volume's warnings where its axial slices lie ``deg`` (:func:`axial_tilt_deg`), more than
    ``OBLIQUE_DEG``, off the patient's axial plane; None otherwise."""
    if deg <= OBLIQUE_DEG:
        return None
    return (f"axial slices tilted {deg:.0f} degrees off the patient's axial plane (an oblique series): read as "
            "stored, not resampled to axial, so results are less reliable")


def reading_notes(spacing: Sequence[float], plane: str = "axial", tilt_deg: float = 0.0) -> List[str]:
    """What a reader says of the grid it read, one line each (none where there is nothing to say): slices stored in
    another ``plane`` or axial pixels not square (:func:`reading_note`), axial slices tilted by ``tilt_deg``
    (:func:`tilt_note`)."""
    return [n for n in (reading_note(spacing, plane), tilt_note(tilt_deg)) if n]


MIN_SLICE_PX = 32  # smaller arrays are test pieces, not scans whose axis order could be judged


def axis_order_note(shape: Sequence[int]) -> Optional[str]:
    """One line for an array's warnings where its shape is a CT scan's in ``[x, y, z]`` order, as nibabel's
    ``get_fdata()`` and many NIfTI tools give it (512 x 512 x slices): its first two axes as long as each other,
    its third not. Read as ``[z, y, x]``, such an array is cut across the patient into slices of 512 x slices
    pixels, and the models see no axial slice; a scan in ``[z, y, x]`` order has square slices. None otherwise."""
    if len(shape) != 3 or not shape[0] == shape[1] >= MIN_SLICE_PX or shape[2] == shape[1]:
        return None
    return (f"array of shape {tuple(int(n) for n in shape)} read as [z, y, x]: {shape[0]} slices of {shape[1]} x "
            f"{shape[2]} pixels; if it is [x, y, z], as nibabel's get_fdata() gives a scan, these are not axial "
            "slices: transpose it to [z, y, x] (np.transpose(a, (2, 1, 0))), or give the file to read_ct, which "
            "reads its orientation")


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
