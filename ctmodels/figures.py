"""PNG figures written by the CLI (numpy + Pillow only)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np


def trachea_panel(crop_hu: np.ndarray, contour_px: np.ndarray, scale: int = 6) -> np.ndarray:
    """uint8 RGB image of a trachea crop (lung window) with its lumen contour in green."""
    from PIL import Image, ImageDraw

    from .preprocessing import window_hu

    g = window_hu(crop_hu, -600, 1500)
    img = Image.fromarray(g).resize((g.shape[1] * scale, g.shape[0] * scale), Image.NEAREST).convert("RGB")
    d = ImageDraw.Draw(img)
    pts = [(float(x) * scale, float(y) * scale) for y, x in contour_px]
    if len(pts) > 2:
        d.line(pts + [pts[0]], fill=(40, 220, 40), width=2)
    return np.asarray(img)


def middle_panel(result, scale: int = 6) -> Optional[np.ndarray]:
    """:func:`trachea_panel` of a QualityResult's middle measured slice; None where no crop was kept."""
    m = result.measurement
    if m is None or not m.crops:
        return None
    return trachea_panel(*m.crops[len(m.crops) // 2], scale=scale)


def save_trachea_figure(result, path: Union[str, Path]) -> Path:
    """The middle measured slice of a QualityResult, with contour and verdict, as PNG."""
    from PIL import Image, ImageDraw

    from .errors import InvalidInputError

    path = Path(path)
    rgb = middle_panel(result)
    if rgb is None:
        raise InvalidInputError(f"no trachea crop to draw ({result.reason})", path)
    panel = Image.fromarray(rgb)
    d = ImageDraw.Draw(panel)
    p = "-" if result.probability_fail is None else f"{result.probability_fail:.2f}"
    d.text((6, 6), f"{result.verdict.upper()}  P(fail)={p}", fill=(255, 255, 0))
    panel.save(path)
    return path
