"""Involvement of the lung by lesions, MosMed grades, and the study-level extent probability.

* Involvement: % of lung (labels 1, 2, 3) that is GGO (1), consolidation (2), or either.
* MosMed grade: CT-0 no findings, CT-1 < 25 %, CT-2 25-50 %, CT-3 50-75 %, CT-4 >= 75 %.
* P(extensive): probability that the true involvement is >= 50 % (see
  :func:`extensive_probability`), with classes A (< ``T_AB``), B, C (>= ``T_BC``).
* Volumes (mL) of lung, GGO, consolidation and either, for a volume whose voxel size is known
  (:func:`volumes_ml`).

Where the segmentation finds no lung, none of these is defined: the percentages are 0 by
definition, and the grade, P(extensive) (NaN) and its class are ``NOT_ASSESSED``. So are the grade,
P(extensive) and class where it finds fewer than ``MIN_LUNG_PIXELS`` lung pixels in all (the percentages are
then given as measured, with a note).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from .errors import InvalidInputError

GGO, CONS, LUNG = 1, 2, 3
# Classes of P(extensive): A unlikely, B uncertain, C likely.
T_AB, T_BC = 0.2, 0.8
# "No findings" below this % involvement (a few mislabelled pixels are not a finding).
NO_FINDINGS_PCT = 0.1
# Grade and extent class where they are undefined (no lung found).
NOT_ASSESSED = "n/a"
# What ExtentCalibration.save writes as its "format", and load expects.
CALIBRATION_FORMAT = "ctmodels-extent-calibration-1"
CALIBRATION_EXPECTED = "expected an extent calibration written by 'ctmodels calibrate fit'"
# A chest slice through the lungs is mostly a fifth or more lung; where no slice has even this share,
# the input is not what the grade is for (say, upper abdomen with a little bowel gas called lung).
LITTLE_LUNG_SHARE = 0.02
# Below this many lung pixels in a whole input, one pixel moves the percentages by more than a point and the grade
# would rest on a handful of mislabelled pixels (a head CT slice gave 6 pixels of "GGO" and no other lung: CT-4,
# 100 % involved). Such an input is not graded, as one with no lung is not.
MIN_LUNG_PIXELS = 100


def mosmed_grade(involved_pct: float) -> str:
    """CT-0 (no findings) .. CT-4 (>= 75 % of lung involved); ``NOT_ASSESSED`` for NaN."""
    if not np.isfinite(involved_pct):
        return NOT_ASSESSED
    if involved_pct < NO_FINDINGS_PCT:
        return "CT-0"
    if involved_pct < 25:
        return "CT-1"
    if involved_pct < 50:
        return "CT-2"
    if involved_pct < 75:
        return "CT-3"
    return "CT-4"


def counts_of(counts, what: str = "pixel counts") -> np.ndarray:
    """Per-class counts ``[..., 4]`` (background, GGO, consolidation, other lung; a LesionResult's
    ``pixel_counts`` or ``soft_counts``) as float64 ``[n, 4]``; else one line saying what they are not."""
    from .preprocessing import check_values

    c = check_values(np.asarray(counts), what)
    if c.shape[-1:] != (4,):
        raise InvalidInputError(f"{what} have shape {c.shape}, expected [..., 4]: a count per class (background, GGO, "
                                "consolidation, other lung), as LesionResult.pixel_counts holds them")
    if c.min() < 0:
        raise InvalidInputError(f"{what} hold negative values ({c.min():g}), expected counts of pixels")
    return c.astype(np.float64).reshape(-1, 4)


def involvement(pixel_counts: np.ndarray) -> Dict[str, float]:
    """Counts [..., 4] summed over slices -> % of lung that is GGO, consolidation, either."""
    c = counts_of(pixel_counts).sum(0)
    lung = c[GGO] + c[CONS] + c[LUNG]
    if lung <= 0:
        return {"ggo_pct": 0.0, "consolidation_pct": 0.0, "involved_pct": 0.0, "lung_pixels": 0.0}
    return {
        "ggo_pct": 100.0 * c[GGO] / lung,
        "consolidation_pct": 100.0 * c[CONS] / lung,
        "involved_pct": 100.0 * (c[GGO] + c[CONS]) / lung,
        "lung_pixels": float(lung),
    }


def volumes_ml(pixel_counts: np.ndarray, spacing) -> Dict[str, float]:
    """Counts [..., 4] summed over slices and the voxel size (z, y, x) in mm -> mL of lung (labels 1-3), GGO,
    consolidation and either."""
    c = counts_of(pixel_counts).sum(0)
    ml = float(np.prod(np.asarray(spacing, dtype=np.float64))) / 1000.0
    return {"lung_ml": ml * (c[GGO] + c[CONS] + c[LUNG]), "ggo_ml": ml * c[GGO], "consolidation_ml": ml * c[CONS],
            "involved_ml": ml * (c[GGO] + c[CONS])}


def format_volumes(ml: Dict[str, float]) -> str:
    """:func:`volumes_ml` as shown to people: "lung 4.30 L, GGO 318 mL, consolidation 1 mL"."""
    return (f"lung {ml['lung_ml'] / 1000:.2f} L, GGO {ml['ggo_ml']:.0f} mL, "
            f"consolidation {ml['consolidation_ml']:.0f} mL")


@dataclass
class SeverityReport:
    ggo_pct: float
    consolidation_pct: float
    involved_pct: float
    grade: str
    p_extensive: float
    extent_class: str
    per_slice: List[Dict[str, float]] = field(default_factory=list)
    lung_found: bool = True  # at least MIN_LUNG_PIXELS lung pixels: graded
    notes: List[str] = field(default_factory=list)
    volumes_ml: Optional[Dict[str, float]] = None  # see volumes_ml; None where the voxel size is not known
    lung_pixels: float = 0.0  # labelled lung (1, 2 or 3) over the whole input

    def as_dict(self) -> Dict[str, object]:
        d = dict(self.__dict__)
        d.pop("per_slice")
        return d


def extent_class(p: float, t_ab: float = T_AB, t_bc: float = T_BC) -> str:
    if not np.isfinite(p):
        return NOT_ASSESSED
    return "A" if p < t_ab else ("B" if p < t_bc else "C")


def format_probability(p: float) -> str:
    """P(extensive) as shown to people: two decimals, or ``NOT_ASSESSED``."""
    return f"{p:.2f}" if np.isfinite(p) else NOT_ASSESSED


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def extensive_probability(pixel_counts: np.ndarray, soft_counts: np.ndarray,
                          error_bias_pp: float = 0.0, error_sd_pp: float = 10.0,
                          threshold_pct: float = 50.0) -> float:
    """P(true involvement >= threshold) for one study.

    The segmentation's estimate is the soft involvement (expected lesion area from the per-pixel
    probabilities, over the expected lung area). Its error is modelled as Gaussian with the bias
    and standard deviation (percentage points) measured per slice on held-out data, shrunk by
    the number of slices with lung (errors average out over slices, with a floor of 1/3 of the
    per-slice SD for errors shared by the whole study), plus the spread implied by the
    per-pixel probabilities themselves (hard vs soft estimate).

    NaN where the labels hold no lung: the expected lung area is then a sum of small
    probabilities, and their ratio says nothing (a black image would score about 0.5).
    """
    soft = counts_of(soft_counts, "soft counts")
    hard = counts_of(pixel_counts)
    lung_soft = soft[:, 1:].sum()
    if lung_soft <= 0 or hard[:, 1:].sum() <= 0:
        return math.nan
    est = 100.0 * (soft[:, GGO] + soft[:, CONS]).sum() / lung_soft
    est_hard = involvement(hard)["involved_pct"]
    n = int(((hard[:, 1:].sum(1)) > 0).sum()) or 1
    sd = max(error_sd_pp / math.sqrt(n), error_sd_pp / 3.0)
    sd = math.sqrt(sd**2 + (est - est_hard) ** 2 + 1e-6)
    mu = est - error_bias_pp
    return float(1.0 - _norm_cdf((threshold_pct - mu) / sd))


def assess(pixel_counts: np.ndarray, soft_counts: np.ndarray, error_bias_pp: float = 0.0,
           error_sd_pp: float = 10.0) -> SeverityReport:
    """Study (or slice) severity from a LesionResult's per-slice counts."""
    counts, soft = counts_of(pixel_counts), counts_of(soft_counts, "soft counts")
    if counts.shape != soft.shape:
        raise InvalidInputError(f"pixel counts of {counts.shape[0]} slice(s) but soft counts of {soft.shape[0]}, "
                                "expected one row of each per slice")
    inv = involvement(counts)
    per_slice = []
    for z, row in enumerate(counts):
        s = involvement(row)
        per_slice.append({"slice": z, **{k: s[k] for k in ("ggo_pct", "consolidation_pct", "involved_pct")},
                          "lung_pixels": s["lung_pixels"]})
    notes = []
    lung_found = inv["lung_pixels"] >= MIN_LUNG_PIXELS
    grade = mosmed_grade(inv["involved_pct"]) if lung_found else NOT_ASSESSED
    p = extensive_probability(counts, soft, error_bias_pp, error_sd_pp) if lung_found else math.nan
    if inv["lung_pixels"] <= 0:
        notes.append("no lung found: percentages are 0 by definition, and no grade or P(extensive) is given "
                     "(expected an axial chest CT slice or study)")
    elif not lung_found:
        notes.append(f"too little lung found ({inv['lung_pixels']:.0f} pixels, fewer than {MIN_LUNG_PIXELS}): no "
                     "grade or P(extensive) is given (expected an axial chest CT slice or study)")
    else:
        share = float((counts[:, 1:].sum(1) / np.maximum(counts.sum(1), 1)).max())
        if share < LITTLE_LUNG_SHARE:
            notes.append(f"little lung found (at most {100 * share:.1f} % of a slice): the percentages and grade "
                         "rest on few pixels (expected an axial chest CT slice or study)")
    return SeverityReport(inv["ggo_pct"], inv["consolidation_pct"], inv["involved_pct"],
                          grade, p, extent_class(p), per_slice, lung_found, notes, lung_pixels=inv["lung_pixels"])


# ----------------------------------------------------------------------------- cohort calibration
@dataclass
class ExtentCalibration:
    """A competition team's approach: P(extensive) per 1 % involvement bin, Savitzky-Golay smoothed,
    with A/B and B/C thresholds on involvement that maximise the area each class holds."""

    bin_edges: np.ndarray
    p_raw: np.ndarray
    p_smooth: np.ndarray
    t_ab_pct: float
    t_bc_pct: float
    window: int = 11
    polyorder: int = 2
    n_patients: int = 0
    n_extensive: int = 0

    def predict_proba(self, involved_pct: Sequence[float]) -> np.ndarray:
        """P(extensive) of each involvement (%): its 1 % bin's smoothed estimate; NaN where the involvement is NaN
        (not assessed: no lung found)."""
        x = np.asarray(involved_pct, dtype=float)
        idx = np.clip(np.floor(np.nan_to_num(np.clip(x, 0, 100))).astype(int), 0, len(self.p_smooth) - 1)
        return np.where(np.isfinite(x), self.p_smooth[idx], np.nan)

    def predict_class(self, involved_pct: Sequence[float]) -> List[str]:
        """A (below ``t_ab_pct``), B, or C (from ``t_bc_pct``) per involvement (%); ``NOT_ASSESSED`` for NaN."""
        x = np.asarray(involved_pct, dtype=float)
        return [NOT_ASSESSED if not np.isfinite(v) else "A" if v < self.t_ab_pct else ("B" if v < self.t_bc_pct
                                                                                       else "C") for v in x]

    def as_dict(self) -> Dict[str, object]:
        return {"t_ab_pct": self.t_ab_pct, "t_bc_pct": self.t_bc_pct,
                "p_smooth": [round(float(v), 6) for v in self.p_smooth]}

    def to_json(self) -> str:
        """The calibration as JSON text (the thresholds, the smoothed and raw P per 1 % bin, how it was fitted)."""
        return json.dumps({
            "format": CALIBRATION_FORMAT, **self.as_dict(),
            "p_raw": [None if not np.isfinite(v) else round(float(v), 6) for v in self.p_raw],
            "window": self.window, "polyorder": self.polyorder, "n_patients": self.n_patients,
            "n_extensive": self.n_extensive}, indent=1) + "\n"

    def save(self, path) -> Path:
        """Write :meth:`to_json` to ``path``."""
        from .atomic import write_together

        path = Path(path)
        text = self.to_json()
        write_together({path: lambda f: f.write_text(text, encoding="utf-8")})
        return path

    @classmethod
    def load(cls, path) -> "ExtentCalibration":
        """Read what :meth:`save` wrote; a file that is not such a calibration (or one edited into an impossible
        one: P outside 0..1 or falling with involvement, thresholds out of order) is an ``InvalidInputError``."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InvalidInputError(f"no such file, {CALIBRATION_EXPECTED}", path) from None
        except OSError as exc:
            raise InvalidInputError(f"not readable ({type(exc).__name__}), {CALIBRATION_EXPECTED}", path) from None
        return cls.from_json(data, path)

    @classmethod
    def from_json(cls, data: bytes, source) -> "ExtentCalibration":
        """:meth:`load` of the bytes of such a file (an upload, say); ``source`` names it in errors."""
        expected = CALIBRATION_EXPECTED
        try:
            d = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidInputError(f"not readable JSON ({type(exc).__name__}), {expected}", source) from None
        if not isinstance(d, dict) or d.get("format") != CALIBRATION_FORMAT:
            raise InvalidInputError(f"not an extent calibration (no format {CALIBRATION_FORMAT!r}), {expected}",
                                    source)
        try:
            smooth = np.array(d["p_smooth"], dtype=float)
            raw = np.array([np.nan if v is None else v for v in d.get("p_raw", [None] * 100)], dtype=float)
            t_ab, t_bc = float(d["t_ab_pct"]), float(d["t_bc_pct"])
            counts = [int(d.get(k, 0)) for k in ("window", "polyorder", "n_patients", "n_extensive")]
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"a value is missing or not a number ({exc}), {expected}", source) from None
        if smooth.shape != (100,) or raw.shape != (100,) or not np.all((smooth >= 0) & (smooth <= 1)) \
                or np.any(np.diff(smooth) < 0) or not 0 <= t_ab <= t_bc <= 100:
            raise InvalidInputError("holds an impossible calibration (100 probabilities in 0..1, not falling with "
                                    f"involvement, and thresholds 0 <= A/B <= B/C <= 100 are needed), {expected}",
                                    source)
        return cls(np.arange(0, 101, 1.0), raw, smooth, t_ab, t_bc, *counts)


def fit_extent_calibration(involved_pct: Sequence[float], extensive: Sequence[bool],
                           window: int = 11, polyorder: int = 2) -> ExtentCalibration:
    """Fit on labelled patients: their measured involvement (%) and whether they were extensive.

    1. Bin patients by involvement in 1 % steps (0..100) and estimate P(extensive) per bin
       (empty bins are filled by linear interpolation between their neighbours).
    2. Smooth with a Savitzky-Golay filter (``window``, ``polyorder``), clipped to [0, 1] and made
       monotone non-decreasing.
    3. Choose thresholds a < b on involvement that maximise the area each class holds: class A
       (x < a) should hold area under ``1 - P`` (confidently not extensive), C (x >= b) area under
       ``P`` (confidently extensive), B the uncertain middle, area under ``1 - |2P - 1|``. The
       pair (a, b) maximising the sum of the three areas is returned.
    """
    from scipy.signal import savgol_filter

    x = np.asarray(involved_pct, dtype=float)
    y = np.asarray(extensive, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise InvalidInputError(f"need at least two patients with one label each, got {x.size} involvement(s) and "
                                f"{y.size} label(s)")
    if np.any(~np.isfinite(x)):
        raise InvalidInputError("involvement values must be finite")
    if not np.all((y == 0) | (y == 1)):
        raise InvalidInputError("labels must be 0 (not extensive) or 1 (extensive)")
    if x.min() < 0 or x.max() > 100:
        out = int(((x < 0) | (x > 100)).sum())
        raise InvalidInputError(f"{out} involvement value(s) outside 0-100 ({x.min():g}..{x.max():g}), expected a % "
                                "of lung")
    if x.max() <= 1 and y.max() == 1:
        raise InvalidInputError(f"every involvement is at most 1 % (largest {x.max():g}), yet {int(y.sum())} "
                                "patient(s) are labelled extensive (50 % or more of the lung involved): these look "
                                "like fractions of the lung (0-1); expected % of lung (0-100), the fractions times 100")
    if y.min() == y.max():
        raise InvalidInputError(f"all {y.size} patients are labelled {'' if y[0] else 'not '}extensive: the fit needs "
                                "patients of both kinds to say where extensive disease begins")
    if int(window) < 1 or int(polyorder) < 0:
        raise InvalidInputError(f"window must be at least 1 and polyorder at least 0, got {window} and {polyorder}")
    edges = np.arange(0, 101, 1.0)
    idx = np.clip(np.floor(np.clip(x, 0, 100)).astype(int), 0, 99)
    n = np.bincount(idx, minlength=100).astype(float)
    k = np.bincount(idx, weights=y, minlength=100)
    raw = np.full(100, np.nan)
    raw[n > 0] = k[n > 0] / n[n > 0]
    known = np.flatnonzero(n > 0)
    filled = np.interp(np.arange(100), known, raw[known])
    w = min(window if window % 2 else window + 1, 99)
    smooth = savgol_filter(filled, w, min(polyorder, w - 1), mode="interp")
    smooth = np.maximum.accumulate(np.clip(smooth, 0, 1))
    # area each class holds, by cumulative sums over bins
    a_area = np.concatenate([[0], np.cumsum(1 - smooth)])
    c_area = np.concatenate([[0], np.cumsum(smooth)])
    b_area = np.concatenate([[0], np.cumsum(1 - np.abs(2 * smooth - 1))])
    best, best_ab = -1.0, (0, 100)
    for a in range(0, 101):
        for b in range(a, 101):
            total = a_area[a] + (b_area[b] - b_area[a]) + (c_area[100] - c_area[b])
            if total > best + 1e-12:
                best, best_ab = total, (a, b)
    return ExtentCalibration(edges, raw, smooth, float(best_ab[0]), float(best_ab[1]), w, min(polyorder, w - 1),
                             int(x.size), int(y.sum()))


def slice_series(report: SeverityReport) -> Optional[np.ndarray]:
    if not report.per_slice:
        return None
    return np.array([r["involved_pct"] for r in report.per_slice])
