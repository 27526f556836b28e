"""Overlays as uint8 RGB arrays, numpy only."""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np

# label -> RGB; GGO yellow, consolidation red, other lung blue
DEFAULT_COLORS: Dict[int, Tuple[int, int, int]] = {1: (255, 210, 0), 2: (230, 40, 40), 3: (60, 140, 255)}


def hex_to_rgb(h: str) -> Tuple[int, int, int]:
    h = h.lstrip("#")
    if len(h) != 6:
        raise ValueError(f"colour {h!r} is not #RRGGBB")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def gray_to_rgb(display: np.ndarray) -> np.ndarray:
    d = np.asarray(display, dtype=np.uint8)
    return np.repeat(d[..., None], 3, axis=-1)


def overlay(display: np.ndarray, labels: np.ndarray, classes: Sequence[int] = (1, 2),
            colors: Optional[Dict[int, Tuple[int, int, int]]] = None, alpha: float = 0.45) -> np.ndarray:
    """Blend the chosen label classes over an 8-bit gray image; returns uint8 RGB [H, W, 3]."""
    if display.shape != labels.shape:
        raise ValueError(f"image {display.shape} and labels {labels.shape} differ in shape")
    colors = {**DEFAULT_COLORS, **(colors or {})}
    a = float(np.clip(alpha, 0.0, 1.0))
    out = gray_to_rgb(display).astype(np.float32)
    for c in classes:
        m = labels == c
        if m.any():
            out[m] = (1 - a) * out[m] + a * np.asarray(colors[c], np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def outline(rgb: np.ndarray, labels: np.ndarray, classes: Sequence[int] = (1, 2),
            colors: Optional[Dict[int, Tuple[int, int, int]]] = None) -> np.ndarray:
    """The one-pixel edges of the chosen label classes drawn over an RGB image (a copy), each in its colour: a
    second set of labels (a reference) shown over an overlay of the first."""
    if rgb.shape[:2] != labels.shape:
        raise ValueError(f"image {rgb.shape[:2]} and labels {labels.shape} differ in shape")
    colors = {**DEFAULT_COLORS, **(colors or {})}
    out = np.array(rgb, dtype=np.uint8, copy=True)
    for c in classes:
        m = labels == c
        p = np.pad(m, 1)  # outside the image counts as outside the class: a region at the border is closed there
        inner = m & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]  # its four neighbours of the class too
        out[m & ~inner] = colors[c]
    return out
