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


FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def figure_path(path: Union[str, Path], study: Union[str, Path, None] = None) -> Path:
    """``path`` where a figure can be written: an image file name (``FIGURE_SUFFIXES``) in a folder that exists,
    not a folder, and neither the ``study`` it shows nor inside it; else one line saying which, before any work."""
    from .errors import InvalidInputError

    path = Path(path)
    if path.suffix.lower() not in FIGURE_SUFFIXES:
        raise InvalidInputError(f"expected a figure file name ending in {', '.join(FIGURE_SUFFIXES)}", path)
    if path.is_dir():
        raise InvalidInputError("is a folder, expected a figure file name", path)
    if not path.parent.is_dir():
        raise InvalidInputError(f"no such folder {path.parent} to write the figure in", path)
    if study is not None:
        s, p = Path(study).resolve(), path.resolve()
        if p == s or s in p.parents:
            raise InvalidInputError("is the study or lies inside it; the study is left as it is: write the figure "
                                    "elsewhere", path)
    return path


def save_trachea_figure(result, path: Union[str, Path]) -> Path:
    """The middle measured slice of a QualityResult, with contour and verdict, as an image (PNG, or another of
    ``FIGURE_SUFFIXES`` by the file name)."""
    from PIL import Image, ImageDraw

    from .errors import InvalidInputError

    path = figure_path(path)
    rgb = middle_panel(result)
    if rgb is None:
        raise InvalidInputError(f"no trachea crop to draw ({result.reason})", path)
    panel = Image.fromarray(rgb)
    d = ImageDraw.Draw(panel)
    p = "-" if result.probability_fail is None else f"{result.probability_fail:.2f}"
    d.text((6, 6), f"{result.verdict.upper()}  P(fail)={p}", fill=(255, 255, 0))
    from .atomic import write_together

    write_together({path: panel.save})  # whole or not at all: a full disk leaves no empty image
    return path
