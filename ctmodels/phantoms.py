"""Synthetic chest CT phantoms (HU, canonical [z, y, x] layout) for tests and training.

A body ellipse of soft tissue with a fat layer, two lungs, a spine, and a trachea with a 2 mm
wall in mediastinal fat that runs from the top of the volume down to the carina, where it
divides into two main bronchi. Everything is specified in mm, so any spacing can be asked for.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np


def chest_phantom(spacing: Tuple[float, float, float] = (2.0, 0.8, 0.8), extent_mm: float = 100.0,
                  fov_mm: float = 320.0, trachea_mm: float = 18.0, ap_ratio: float = 1.0,
                  noise_hu: float = 15.0, seed: Optional[int] = 0, carina_frac: float = 0.35,
                  abdomen: bool = False, slope_deg: float = 0.0) -> np.ndarray:
    """int16 HU volume; ``carina_frac`` places the carina that far up the volume (0 = bottom). ``slope_deg``: the
    trachea and bronchi slope backwards as they descend, as a real trachea does (their centre moves posteriorly by
    tan(slope) mm per mm down, centred at the middle of the volume); 0 is a tube straight along z."""
    rng = np.random.default_rng(seed)
    dz, dy, dx = spacing
    nz = max(2, int(round(extent_mm / dz)))
    ny, nx = int(round(fov_mm * 0.8 / dy)), int(round(fov_mm / dx))
    y = (np.arange(ny) + 0.5) * dy - ny * dy / 2
    x = (np.arange(nx) + 0.5) * dx - nx * dx / 2
    yy, xx = np.meshgrid(y, x, indexing="ij")
    body = (yy / 115) ** 2 + (xx / 150) ** 2 <= 1
    inner = (yy / 105) ** 2 + (xx / 140) ** 2 <= 1
    spine = ((yy - 75) / 18) ** 2 + (xx / 16) ** 2 <= 1
    base = np.full((ny, nx), -1000.0, np.float32)
    base[body] = -100.0  # subcutaneous fat
    base[inner] = 40.0  # muscle / soft tissue
    base[spine] = 500.0
    lungs = np.zeros_like(body)
    if not abdomen:
        for side in (-1, 1):
            lungs |= ((yy - 5) / 80) ** 2 + ((xx - side * 70) / 52) ** 2 <= 1
        med = ((yy + 10) / 45) ** 2 + (xx / 30) ** 2 <= 1  # mediastinal fat around the trachea
        base[med & ~lungs] = -90.0
        base[lungs] = -860.0
    vol = np.repeat(base[None], nz, axis=0)
    if not abdomen:
        r_t = trachea_mm / 2
        carina_k = int(round(carina_frac * nz))
        # a sloping tube's axial section is longer front to back by 1 / cos(slope)
        a_ax, a_tr = r_t * np.sqrt(ap_ratio) / np.cos(np.radians(slope_deg)), r_t / np.sqrt(ap_ratio)
        for k in range(nz):
            sl = vol[k]
            ty = -25.0 - np.tan(np.radians(slope_deg)) * (k - (nz - 1) / 2) * dz  # higher slices lie further forward
            if k >= carina_k:
                rr = ((yy - ty) / a_ax) ** 2 + (xx / a_tr) ** 2
                wall = rr <= ((a_tr + 2.0) / a_tr) ** 2
                sl[wall] = 40.0
                sl[rr <= 1] = -1000.0
            else:  # two main bronchi diverging below the carina
                off = 9.0 + 1.2 * (carina_k - k) * dz
                for side in (-1, 1):
                    rr = ((yy - ty - 3) / (0.65 * r_t)) ** 2 + ((xx - side * off) / (0.65 * r_t)) ** 2
                    sl[rr <= ((0.65 * r_t + 2) / (0.65 * r_t)) ** 2] = 40.0
                    sl[rr <= 1] = -1000.0
    vol += rng.normal(0, noise_hu, vol.shape).astype(np.float32)
    return np.clip(np.round(vol), -1024, 3071).astype(np.int16)
