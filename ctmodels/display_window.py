"""Is an 8-bit display slice in a lung window?

The lesion model reads 8-bit slices in a lung window (W 1500 / L -600, as its training slices): air about 60 of
255, lung tissue 60-120, soft tissue near white. A slice exported in a soft-tissue (mediastinal) or bone window,
the default of many viewers, shows the lungs pure black: anything below -160 HU (W 400 / L 40) is 0. The model
then sees no lung where the lungs are and calls the soft tissue around them lung and lesion: a slice of a real
contrast chest CT (``chest_cta_crop``) saved in W 400 / L 40 was graded CT-4, 83 % involved, P(extensive) 1.0;
saved in W 1500 / L -600, CT-1, 0.6 %.

The sign is pure black inside the patient: the share of the convex hull of what is brighter than ``TISSUE_MIN``
(the patient, and in a lung window the air around the patient too; not text drawn on the image) that is at most
``BLACK_MAX``. In a lung window nothing inside is pure black (air is about 60; padding outside the round field
of view lies outside the hull); in a soft-tissue or bone window the lungs are. Measured (an evaluation test,
``tests/test_eval_shared_data.py``, keeps these true): the 1664 training slices at most 0.025; the slices of
two real chest CTs (``../shared/data``) in seven lung windows, down to W 1000 / L -500 (which takes -1000 HU to
black), also saved as JPEG, at most 0.08; the same slices in soft-tissue or bone windows (W 350-500 / L 40-50,
W 1800-2000 / L 400-500) about 0.4 at the level of the heart and 0.02-0.1 at the apex and the lung bases, where
the lungs are small. A slice from ``MAX_BLACK_SHARE`` is refused.

So is one from ``SOME_BLACK`` whose tissue is mid-grey: the median level of the tissue in its body
(:func:`tissue_grey`) below ``GREY_TISSUE``. Pure black inside the patient needs a window whose lower end is at or
above the air's -1000 HU, mid-grey tissue (fat, water, muscle: about -100 to 60 HU) a window wide above that end:
together a window centred far above a lung window's. A lung window that takes air to black (W 1000 / L -500) takes
the tissue to white (255); a wide one that keeps the tissue grey (W 2000 / L -500: median 180 or more here) leaves
air grey. Measured: the training slices' tissue has a median of 84-253 (the lung-infection set's contrast-enhanced
slices are dim), but none of them is 0.03 black (at most 0.024, with a median of 191 or more; where the median is
under ``GREY_TISSUE``, at most 0.006 is black); the two real CTs' in lung windows 180 or more, in soft-tissue
windows 83-156, in bone windows 53-80. With this rule every slice of ``chest_cta_crop`` in those windows is refused
(before, its lung-base slices passed and were graded CT-4, about 88 % involved), and 96 % or more of ``ct-64``'s
(before, over 70 %); its last slices at the lung bases, 2-3 % black, still pass. A volume is refused where half or
more of up to ``MAX_SLICES`` slices spread through it are.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import ndimage

from .body import body_mask, convex_hull, display_tissue_level, without_bars
from .errors import NotLungWindowError
from .preprocessing import spread

BLACK_MAX = 4  # an 8-bit level this dark is pure black (0, and JPEG's ripple around it)
TISSUE_MIN = 10  # brighter than this: the patient, or the air around them in a lung window (about 60)
MIN_PIECE = 0.01  # share of the image: the patient, an arm, the table; not a letter of text or a scale bar
MAX_BLACK_SHARE = 0.15
SOME_BLACK = 0.03  # this share of the outline pure black is a soft-tissue or bone window if ...
GREY_TISSUE = 160  # ... the body's tissue has a median level below this (near white in a lung window)
MAX_SLICES = 16


def bright_hull(img: np.ndarray, level: float, min_piece: Optional[float] = None) -> np.ndarray:
    """The convex hull (bool, the image's shape) of the pieces of a 2D image's pixels brighter than ``level``
    (specks taken out) that cover at least ``min_piece`` of the image, or of the largest piece where none does or
    ``min_piece`` is None; empty where nothing is brighter. Bars along the image's edge (a viewer's toolbar in a
    screenshot, :func:`ctmodels.body.bar_pieces`) are left out."""
    a = np.asarray(img)
    pieces, n = ndimage.label(without_bars(ndimage.binary_opening(a > level)))
    if n == 0:
        return np.zeros(a.shape, bool)
    sizes = np.bincount(pieces.ravel())[1:]
    keep = np.flatnonzero(sizes >= min_piece * a.size) + 1 if min_piece is not None else []
    return convex_hull(np.isin(pieces, keep) if len(keep) else pieces == 1 + int(np.argmax(sizes)))


def black_share(img: np.ndarray) -> float:
    """Share (0..1) of a 2D 8-bit display slice's inside that is pure black (at most ``BLACK_MAX``). The inside is
    the convex hull of the pieces of pixels brighter than ``TISSUE_MIN`` (specks taken out) that cover at least
    ``MIN_PIECE`` of the image, or of the largest piece where none does (:func:`bright_hull`): a viewer's text or
    scale drawn in the black corners outside a round field of view does not make those corners inside. 0 where
    nothing is brighter."""
    a = np.asarray(img)
    hull = bright_hull(a, TISSUE_MIN, MIN_PIECE)
    return float(np.count_nonzero(hull & (a <= BLACK_MAX)) / max(np.count_nonzero(hull), 1))


def tissue_grey(img: np.ndarray) -> float:
    """The median level (0..255) of the tissue in a 2D 8-bit display slice's body: its pixels above
    :func:`ctmodels.body.display_tissue_level` inside :func:`ctmodels.body.body_mask`; NaN where there are none."""
    a = np.asarray(img)
    tissue = a[body_mask(a, display=True) & (a > display_tissue_level(a))]
    return float(np.median(tissue)) if tissue.size else float("nan")


def window_refusal(img: np.ndarray) -> Optional[str]:
    """Why a 2D 8-bit display slice is not in a lung window (a clause for :class:`NotLungWindowError`), or None:
    its outline ``MAX_BLACK_SHARE`` or more pure black, or ``SOME_BLACK`` or more with its tissue mid-grey."""
    share = black_share(img)
    if share >= MAX_BLACK_SHARE:
        return (f"{100 * share:.0f} % of the patient's outline is pure black, as the lungs are in such a window (under "
                f"{100 * MAX_BLACK_SHARE:.0f} % in a lung window)")
    if share >= SOME_BLACK:
        grey = tissue_grey(img)
        if grey < GREY_TISSUE:
            return (f"{100 * share:.0f} % of the patient's outline is pure black and its tissue is mid-grey (median "
                    f"{grey:.0f} of 255), as at the lung apex or base in such a window (in a lung window the tissue "
                    f"is near white, {GREY_TISSUE} or more, wherever air is black)")
    return None


def check_lung_window(display: np.ndarray, source: Optional[object] = None) -> None:
    """Refuse (:class:`NotLungWindowError`, naming ``source``) an 8-bit display slice or volume (0..255) whose
    lungs look pure black, as in a soft-tissue or bone window (:func:`window_refusal`; a volume where half or more
    of up to ``MAX_SLICES`` slices spread through it are)."""
    a = np.asarray(display)
    if a.ndim == 2:
        why = window_refusal(a)
    else:
        picks = spread(len(a), MAX_SLICES)
        reasons = [r for r in (window_refusal(a[i]) for i in picks) if r]
        why = None if 2 * len(reasons) < len(picks) else (
            f"{len(reasons)} of {len(picks)} slices looked at: {reasons[len(reasons) // 2]}")
    if why:
        raise NotLungWindowError(
            f"looks like a soft-tissue or bone window, not a lung window: {why}; expected a slice in a lung window "
            "such as the training slices' W 1500 / L -600, or the scan itself in HU (DICOM, NIfTI)", source)
