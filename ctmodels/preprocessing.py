"""Pure numpy preprocessing steps, each with its inverse where one exists."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .errors import EmptyInputError, InvalidInputError


def as_array(x: object) -> np.ndarray:
    """``x`` as a numpy array (a list, a CPU tensor, anything ``np.asarray`` takes); else one line saying what it
    is and what was expected (a GPU tensor, an object with no array form)."""
    try:
        return np.asarray(x)
    except Exception as exc:
        raise InvalidInputError(f"cannot read a {type(x).__name__} as an array ({' '.join(str(exc).split())[:100]}); "
                                "expected a CTVolume, a path or a numeric array (a GPU tensor: .cpu() first)") from None


def without_channel_axis(a: np.ndarray) -> np.ndarray:
    """``a`` as ``[H, W]`` where it is a slice with a channel axis, ``[H, W, 1]`` (both sides at least 8 pixels, as
    an image is); anything else as given."""
    return a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 and min(a.shape[:2]) >= 8 else a


def check_values(a: np.ndarray, what: str = "volume", source: Optional[object] = None) -> np.ndarray:
    """``a`` as given where it holds values and they are finite numbers; else one line (naming ``source``, a file,
    where given) saying which it is not: no values, values that are not numbers (bool, complex, text), NaN or
    infinity."""
    if a.size == 0:
        raise EmptyInputError(f"{what} has no values (shape {a.shape})", source)
    if a.dtype.kind not in "iuf":
        raise InvalidInputError(f"{what} holds values of type {a.dtype}, expected numbers", source)
    if a.dtype.kind == "f":
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        if bad:
            raise InvalidInputError(f"{what} holds NaN or infinite values ({bad} of {a.size}), expected finite "
                                    "numbers", source)
    return a


def spread(n: int, k: int) -> np.ndarray:
    """Indices of up to ``k`` of ``n`` items (slices of a volume, entries of a list) spread evenly from the first
    to the last, both included, ascending and without repeats; all ``n`` where ``n <= k``."""
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int)) if n > 0 and k > 0 else np.zeros(0, int)


def window_hu(hu: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map HU to an 8-bit display image with a window (center, width); values outside clip.

    8- and 16-bit integer input (what DICOM stores) goes through a lookup table of every possible
    value, computed with the same float32 formula: same result, one pass instead of five
    (measured 1.0 -> 0.2 s for 300 x 512 x 512 on 2 cores)."""
    hu = np.asarray(hu)
    if hu.dtype in (np.int16, np.uint16, np.int8, np.uint8) and hu.size > 65536:
        unsigned = np.dtype(hu.dtype.str.replace("i", "u"))
        every = np.arange(2 ** (8 * hu.dtype.itemsize), dtype=unsigned).view(hu.dtype)
        return _window_float(every, center, width)[hu.view(unsigned)]
    return _window_float(hu, center, width)


def _window_float(hu: np.ndarray, center: float, width: float) -> np.ndarray:
    lo = center - width / 2.0
    x = (np.asarray(hu, dtype=np.float32) - lo) * (255.0 / width)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def block_mean(hu: np.ndarray, sy: int, sx: int) -> np.ndarray:
    """float32 means over ``sy x sx`` in-plane blocks of ``hu[z, y, x]`` (rows and columns at the far edges that do
    not fill a block are dropped): a coarser grid, as a scanner with larger pixels would give."""
    out = np.asarray(hu, dtype=np.float32)
    if sy > 1 or sx > 1:
        z, h, w = out.shape[0], out.shape[1] // sy * sy, out.shape[2] // sx * sx
        out = out[:, :h, :w].reshape(z, h // sy, sy, w // sx, sx).mean(axis=(2, 4))
    return out


def unwindow(display: np.ndarray, center: float, width: float) -> np.ndarray:
    """Inverse of :func:`window_hu` inside the window (clipped values stay at the window edges)."""
    lo = center - width / 2.0
    return np.asarray(display, dtype=np.float32) * (width / 255.0) + lo


def to_unit_range(display: np.ndarray) -> np.ndarray:
    """8-bit display image -> float32 in [0, 1]."""
    return np.asarray(display, dtype=np.float32) / 255.0


def normalize(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    return (np.asarray(x, dtype=np.float32) - mean) / std


def denormalize(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    return np.asarray(x, dtype=np.float32) * std + mean


def pad_to_multiple(a: np.ndarray, multiple: int = 32, value: float = 0) -> Tuple[np.ndarray, Tuple[int, int]]:
    """Pad the last two axes at the end so both are multiples of ``multiple``; returns (padded, original hw)."""
    h, w = a.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    pad = [(0, 0)] * (a.ndim - 2) + [(0, ph), (0, pw)]
    return np.pad(a, pad, constant_values=value), (h, w)


def unpad(a: np.ndarray, hw: Tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`pad_to_multiple`."""
    return a[..., : hw[0], : hw[1]]


FRAME_MIN_LEVEL = 128  # a frame this light cannot be the air around a patient in a lung window (about 60) or padding
FRAME_TOL = 4  # levels: a frame's pixels all lie this close (JPEG leaves a few pixels of ripple by the image)


def frame_box(display: np.ndarray) -> Tuple[slice, slice]:
    """The rows and columns of an 8-bit display slice or volume (``[..., H, W]``) inside a light frame around it: a
    uniform border (every pixel of it, in every slice, within ``FRAME_TOL`` levels of one value of at least
    ``FRAME_MIN_LEVEL``) on all four sides, as a figure or a slide puts around a CT slice. In a lung window the
    air around a patient is about 60 and a scanner's padding 0; tissue saturated at a crop's edge (W 1000 /
    L -650 takes soft tissue to 255) does not run round all four sides. Measured: none of the 1664 training slices
    and none of two real chest CTs' slices in seven lung windows (also as JPEG) has one. ``(slice(None),
    slice(None))`` where there is none."""
    a = np.asarray(display)
    a = a.reshape((-1,) + a.shape[-2:])
    lo, hi = a.min(0).astype(np.int16), a.max(0).astype(np.int16)

    def leading(flat: np.ndarray) -> int:
        return int(np.argmin(flat)) if not flat.all() else len(flat)

    whole = (slice(None), slice(None))
    rows = (hi.max(1) - lo.min(1) <= FRAME_TOL) & (lo.min(1) >= FRAME_MIN_LEVEL)
    cols = (hi.max(0) - lo.min(0) <= FRAME_TOL) & (lo.min(0) >= FRAME_MIN_LEVEL)
    top, bottom, left, right = leading(rows), leading(rows[::-1]), leading(cols), leading(cols[::-1])
    h, w = lo.shape
    if min(top, bottom, left, right) == 0 or top + bottom >= h - 8 or left + right >= w - 8:
        return whole
    inner = np.zeros((h, w), bool)
    inner[top:h - bottom, left:w - right] = True
    frame = np.concatenate([lo[~inner], hi[~inner]])
    if int(frame.max()) - int(frame.min()) > FRAME_TOL:  # one colour all round, not a light band on each side
        return whole
    return slice(top, h - bottom), slice(left, w - right)
