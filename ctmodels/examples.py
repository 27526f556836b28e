"""Built-in SYNTHETIC examples for visitors without files (no patient data; made in code).

They show how the tools behave; they are not real CT and say so in their metadata.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
from scipy import ndimage

from .phantoms import chest_phantom
from .types import HU, CTVolume, VolumeMeta

SYNTHETIC = "SYNTHETIC example (made in code, not a patient)"


def _meta(name: str) -> VolumeMeta:
    return VolumeMeta(source=f"example:{name}", format="synthetic", modality="CT", units=HU,
                      series_description=SYNTHETIC, kernel="LUNG")


def lesion_volume(n_slices: int = 12, seed: int = 0) -> CTVolume:
    """A chest phantom with lung texture, patchy ground-glass (-550 HU) and consolidation (-20 HU).

    ``meta.extra["made_labels"]`` holds what it was made with, on its grid (uint8: 0 background, 1 GGO,
    2 consolidation, 3 other lung), so that a page can show the truth beside the model's labels."""
    rng = np.random.default_rng(seed)
    sp = (5.0, 1.25, 1.25)
    base = chest_phantom(sp, extent_mm=n_slices * sp[0], fov_mm=340, noise_hu=0, seed=seed).astype(np.float32)
    base = base[:, :, :]
    lungs = (base > -900) & (base < -800)
    # vessels: small bright blobs in the lungs
    vessels = ndimage.gaussian_filter(rng.random(base.shape).astype(np.float32), (0, 1.2, 1.2)) > 0.56
    base[lungs & vessels] = -300
    # lesions grow toward the lung bases (low z): smooth random fields thresholded
    field = ndimage.gaussian_filter(rng.random(base.shape).astype(np.float32), (1.0, 8, 8))
    field = (field - field.min()) / (np.ptp(field) + 1e-6)
    grad = np.linspace(0.25, -0.05, base.shape[0])[:, None, None]
    ggo = lungs & (field + grad > 0.62)
    cons = lungs & (field + grad > 0.78)
    base[ggo] = -550
    base[cons] = -20
    base = ndimage.gaussian_filter(base, (0, 0.8, 0.8)) + rng.normal(0, 20, base.shape).astype(np.float32)
    made = np.where(cons, 2, np.where(ggo, 1, np.where(lungs, 3, 0))).astype(np.uint8)
    meta = _meta("lesions")
    meta.extra["made_labels"] = made
    return CTVolume(np.round(base).astype(np.int16), sp, meta)


def made_involvement(vol: CTVolume, z: Optional[int] = None) -> Optional[Dict[str, float]]:
    """% of lung that is GGO, consolidation and either in what a synthetic example was made with (as
    :func:`ctmodels.severity.involvement` gives them for the model's labels), over the volume or in slice ``z``;
    None for any other volume."""
    from .severity import involvement

    made = vol.meta.extra.get("made_labels")
    if made is None:
        return None
    made = np.asarray(made if z is None else made[z])
    return involvement(np.bincount(made.ravel(), minlength=4)[:4])


def breath_hold_studies(seed: int = 0) -> Dict[str, CTVolume]:
    """Three synthetic studies: full inspiration, simulated expiration (50 % area loss), abdomen only."""
    from .quality import simulate_expiration

    sp = (2.0, 0.8, 0.8)
    ok = chest_phantom(sp, extent_mm=80, seed=seed + 1)
    bad = simulate_expiration(chest_phantom(sp, extent_mm=80, seed=seed + 2), sp, 0.5).astype(np.int16)
    abd = chest_phantom(sp, extent_mm=60, seed=seed + 3, abdomen=True)
    return {
        "synthetic-inspiration": CTVolume(ok, sp, _meta("inspiration")),
        "synthetic-expiration-50pct": CTVolume(bad, sp, _meta("expiration")),
        "synthetic-abdomen-only": CTVolume(abd, sp, _meta("abdomen")),
    }


COHORT_ERROR_SD = 6.0  # percentage points: the measured involvement's error in the synthetic cohort


def labelled_cohort(n: int = 1000, seed: int = 0) -> List[Dict[str, str]]:
    """A SYNTHETIC labelled cohort for the extent calibration, as rows of segment's results.csv with a column
    ``extensive`` added: each patient's true involvement is uniform over 0-100 %, the measured one
    (``involved_pct``) is it plus a normal error of ``COHORT_ERROR_SD`` points (clipped to 0-100), and the label
    says whether the true involvement is 50 % or more. So P(extensive | measured x) is about
    Phi((x - 50) / 6), and the classes that hold the most area change where P is 1/3 and 2/3: near 47.4 % and
    52.6 %."""
    from .severity import mosmed_grade

    rng = np.random.default_rng(seed)
    true = rng.uniform(0, 100, n)
    measured = np.clip(true + rng.normal(0, COHORT_ERROR_SD, n), 0, 100)
    return [{"input": f"synthetic-{i + 1:03d}", "involved_pct": f"{m:.3f}", "grade": mosmed_grade(m),
             "extensive": "1" if t >= 50 else "0"} for i, (t, m) in enumerate(zip(true, measured))]
