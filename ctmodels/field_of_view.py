"""Field-of-view normalisation of single slices: the lungs brought to the size they have in training.

The lesion model learns infection mostly from full-field slices (the whole chest, 512 px resized to
256), in which the lungs span a typical share of the image. A slice cropped to the lungs (as the
COVID-SemiSeg slices are), or a screenshot, shows them much larger, and the model then sees an
anatomy scale it was rarely trained on. Here a first prediction finds the lungs; the slice is then
resampled (one scale, aspect kept) onto a square canvas on which the lung box spans the typical share
measured on the training slices, the model segments that canvas, and its class probabilities are
mapped back onto the input grid. Pure numpy / scipy; :func:`segment_normalised` only calls ``predict``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from .errors import InvalidInputError


def lung_box(mask: np.ndarray) -> Optional[Tuple[int, int, int, int]]:
    """Bounding box ``(y0, y1, x0, x1)`` (end exclusive) of a 2-D boolean mask; ``None`` when empty."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def canonical_extent(masks: Sequence[np.ndarray], min_fraction: float = 0.10) -> Tuple[float, float]:
    """Median height and width of the lung box as fractions of the slice, over the slices whose lung
    covers at least ``min_fraction`` of the slice (mid-chest slices, not the apices or bases)."""
    hs, ws = [], []
    for m in masks:
        m = np.asarray(m, bool)
        box = lung_box(m)
        if box is None or m.mean() < min_fraction:
            continue
        hs.append((box[1] - box[0]) / m.shape[0])
        ws.append((box[3] - box[2]) / m.shape[1])
    if not hs:
        raise InvalidInputError(f"no slice with lungs covering at least {min_fraction:.0%} of it")
    return float(np.median(hs)), float(np.median(ws))


@dataclass(frozen=True)
class Canvas:
    """A square ``size`` canvas showing the input around ``(cy, cx)`` (input pixels) at ``scale``."""

    cy: float
    cx: float
    scale: float
    size: int = 256

    def _grid(self):
        c = (self.size - 1) / 2
        u = (np.arange(self.size) - c) / self.scale
        return self.cy + u, self.cx + u

    def to_canvas(self, image: np.ndarray) -> np.ndarray:
        """The 2-D ``image`` resampled onto the canvas (bilinear, smoothed first when shrinking;
        outside the image 0: air in the lung window)."""
        img = np.asarray(image, np.float32)
        if self.scale < 1:
            img = ndimage.gaussian_filter(img, sigma=0.5 * (1 / self.scale - 1))
        ys, xs = self._grid()
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        out = ndimage.map_coordinates(img, [yy, xx], order=1, mode="constant", cval=0.0)
        return np.clip(np.rint(out), 0, 255).astype(image.dtype) if image.dtype == np.uint8 else out

    def to_input(self, maps: np.ndarray, shape: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
        """Canvas maps ``[k, size, size]`` -> ``([k, *shape] bilinear on the input grid, inside)``, where
        ``inside`` marks the input pixels the canvas covers."""
        c = (self.size - 1) / 2
        v = (np.arange(shape[0]) - self.cy) * self.scale + c
        u = (np.arange(shape[1]) - self.cx) * self.scale + c
        vv, uu = np.meshgrid(v, u, indexing="ij")
        inside = (vv >= -0.5) & (vv <= self.size - 0.5) & (uu >= -0.5) & (uu <= self.size - 0.5)
        out = np.stack([ndimage.map_coordinates(np.asarray(m, np.float32), [vv, uu], order=1, mode="nearest")
                        for m in maps])
        return out, inside


def plan_canvas(lung: np.ndarray, extent: Tuple[float, float], size: int = 256) -> Optional[Canvas]:
    """The canvas on which the box of the boolean ``lung`` mask spans at most ``extent`` (height,
    width fractions) of ``size`` on both axes, one scale for both; ``None`` without lung."""
    box = lung_box(np.asarray(lung, bool))
    if box is None:
        return None
    y0, y1, x0, x1 = box
    k = min(extent[0] * size / (y1 - y0), extent[1] * size / (x1 - x0))
    return Canvas(cy=(y0 + y1 - 1) / 2, cx=(x0 + x1 - 1) / 2, scale=float(k), size=size)


def segment_normalised(segmenter, image: np.ndarray, extent: Tuple[float, float], tta: bool = True) -> np.ndarray:
    """Labels of the 2-D display ``image`` (uint8, lung window) segmented on the field-of-view
    normalised canvas: pass 1 finds the lungs (labels 1-3), pass 2 segments the canvas, and its
    probabilities mapped back decide each input pixel; pixels the canvas does not cover, and slices
    without lung, keep pass 1's labels."""
    if np.ndim(image) != 2:
        raise InvalidInputError(f"field-of-view normalisation takes one 2-D slice, got shape {np.shape(image)}")
    first = segmenter.predict(image, tta=tta).labels
    canvas = plan_canvas(first > 0, extent, int(segmenter.preprocessing["input_size"]))
    if canvas is None:
        return first
    probs = segmenter.predict(canvas.to_canvas(image), tta=tta, keep_probabilities=True).probabilities
    back, inside = canvas.to_input(probs, image.shape)
    return np.where(inside, back.argmax(0), first).astype(first.dtype)
