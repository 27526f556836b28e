"""Colour drawn on an 8-bit display slice: an overlay or annotations, not the scan.

A CT slice is grey. Colour inside the patient is something drawn over the scan: a lesion overlay (ctmodels' own
``*.overlay.png`` among them), a colour map, a viewer's ruler or arrow. Read as grey, its colours become grey levels
the lesion model takes for tissue.

A pixel whose red, green and blue differ by ``COLOURED_LEVELS`` or more is coloured: a grey slice saved as a colour
JPEG differs by 0 (measured at quality 30-95). Only colour on the patient's body counts (the convex hull of the
largest piece brighter than ``BODY_LEVEL``: in a lung window fat and muscle are brighter, the air around the
patient darker), so a viewer's coloured text beside the patient does not. Colour on ``MAX_COLOURED_SHARE`` of the
body or more is refused; less, but on ``WARN_COLOURED_SHARE`` or more, is read as grey with a warning. Measured on
a 256 x 256 training slice (body 46 % of the image): ctmodels' own overlay 4.6 % of the body (it graded CT-2, 31 %
involved; the overlay read back CT-1, 21 %), a colour map 60-100 %, a yellow ruler 2 pixels wide across both lungs
1.1 % (as a JPEG 2.5 %: JPEG smears colour a few pixels around it; as a PNG it graded 31.5 % involved, 30.8 %
without it), a short one 0.3 % (29.8 %), green text beside the patient 0.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .display_window import bright_hull
from .errors import NotCTError

COLOURED_LEVELS = 32
BODY_LEVEL = 128  # W 1500 / L -600: fat about 213 of 255, muscle 236, air 60
MAX_COLOURED_SHARE = 0.02
WARN_COLOURED_SHARE = 0.0005


def body_outline(grey: np.ndarray) -> np.ndarray:
    """The patient's body on a 2D 8-bit slice in a lung window (bool, its shape): the convex hull of the largest
    piece brighter than ``BODY_LEVEL`` (specks taken out; :func:`ctmodels.display_window.bright_hull`); empty where
    there is none."""
    return bright_hull(grey, BODY_LEVEL)


def coloured_share(rgb: np.ndarray, grey: np.ndarray) -> float:
    """Share (0..1) of the patient's body in ``grey`` (the slice as read; :func:`body_outline`) whose pixels in
    ``rgb`` ([H, W, 3], 8-bit) are coloured; 0 where no body is found."""
    a = np.asarray(rgb).astype(np.int16)
    coloured = (a.max(axis=-1) - a.min(axis=-1)) >= COLOURED_LEVELS
    body = body_outline(grey)
    return float(np.count_nonzero(coloured & body) / max(np.count_nonzero(body), 1))


def colour_note(rgb: np.ndarray, grey: np.ndarray, source: Optional[object] = None) -> Optional[str]:
    """None for a grey slice; a warning for a few coloured marks inside the patient; :class:`NotCTError` (naming
    ``source``) for colour on ``MAX_COLOURED_SHARE`` of the body or more."""
    share = coloured_share(rgb, grey)
    if share >= MAX_COLOURED_SHARE:
        raise NotCTError(
            f"colour covers {100 * share:.1f} % of the patient's body (an overlay, a colour map or marks drawn on "
            "the scan), which read as grey would be taken for tissue; expected a grey CT slice in a lung window, "
            "saved without overlays or annotations", source)
    if share >= WARN_COLOURED_SHARE:
        return (f"coloured marks on {100 * share:.2f} % of the patient's body (annotations or an overlay?) were read "
                "as grey levels, which the model takes for tissue there")
    return None
