"""Breath-hold quality check from the shape of the trachea above the carina.

At full inspiration the intrathoracic trachea is round or oval. In expiration the posterior
membranous wall bows inward and the lumen flattens into a crescent or horseshoe. Normal
volunteers lose 35 +- 18 % of tracheal cross-sectional area at forced expiration (Stern et al.,
Radiology 1993;187:27-31) and 54 +- 19 % with multidetector CT (Boiselle et al., Radiology
2009;252:255-262); at static end-expiration losses of 17 +- 18 % were measured in COPD
(O'Donnell et al., Clin Radiol 2014;69:357-362) and about 9 % in normal subjects (Korean J
Med 2009;76:172-178).

**Fail threshold**: an estimated cross-sectional area loss of **>= 25 %** with the posterior wall
bowing in. Losses up to ~10 % are within normal end-expiratory and breath-to-breath variation
and must pass; 25 % is above the normal static end-expiratory change and below the mean forced
expiratory loss of normal subjects. The classifier learns this threshold from simulated
deformations (:func:`simulate_expiration`) because no expiration scans were available.

Verdicts: ``pass`` / ``fail`` with a probability, or ``undetermined`` (no trachea found, e.g. an
abdomen-only series; too few slices; 8-bit images without HU; no lung-kernel series; pixels coarser than
``MAX_PIXEL_MM``, where the trachea is too few pixels across for its shape to be judged, or axial slices tilted
more than ``MAX_TILT_DEG`` off the patient's axial plane, which cut the trachea too aslant: it is measured and
shown, with no verdict). Undetermined is never reported as pass.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from huggingface_hub import ModelHubMixin
from scipy import ndimage

from . import registry
from . import trachea as T
from .preprocessing import block_mean
from .types import CTVolume

log = logging.getLogger(__name__)

MODEL_NAME = registry.BREATH_HOLD
MODEL_TYPE = "logistic-shape"  # config.json's model_type of the breath-hold model
# Said with a verdict on an input that gives no pixel size (.npy without spacing, DICOM without PixelSpacing).
PIXEL_SIZE_ASSUMED = "pixel size not given (1 mm assumed): the shape is judged, but sizes in mm are not measured"
FAIL_AREA_LOSS = 0.25
MIN_SLICES = 2
PASS, FAIL, UNDETERMINED = "pass", "fail", "undetermined"
# in-plane pixels up to this size get a verdict. On the 30 training phantoms block-averaged to about 4 mm pixels the
# model caught 86 % of simulated expirations (>= 40 % area loss), against 94 % at 3 mm; set by a rule written before
# the look: the mid-point between 3 mm, the coarsest pixel size where both rates held 0.9, and 4 mm
# (docs/quality-experiments.md, scripts/quality_resolution.py)
MAX_PIXEL_MM = 3.5
# axial slices tilted up to this many degrees off the patient's axial plane get a verdict. On the 30 training
# phantoms (tracheas sloping 10-25 degrees) resliced with tilted slices, mild losses passed at 0.967 at 20 degrees
# against the trachea's slope and 0.856 at 30 degrees (severe ones were caught at every angle): set by a rule
# written before the look, the mid-point between 20 and 30 degrees (docs/quality-experiments.md)
MAX_TILT_DEG = 25.0


# ----------------------------------------------------------------------------- measurement
@dataclass
class TracheaMeasurement:
    features: Dict[str, float]
    per_slice: List[Dict[str, float]]
    slices_used: List[int]
    track: T.TracheaTrack
    crops: List[Tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (crop HU, contour px)
    note: str = ""


def search_grid(hu: np.ndarray, spacing: Tuple[float, float, float], target=(1.5, 1.0, 1.0)):
    """Coarser copy for the trachea search: every ``sz``-th slice, ``sy x sx`` block means."""
    sz = max(1, int(target[0] // spacing[0]))
    sy = max(1, int(target[1] // spacing[1]))
    sx = max(1, int(target[2] // spacing[2]))
    # keep the top slice (the search starts there)
    zs = np.arange(hu.shape[0] - 1, -1, -sz)[::-1]
    small = block_mean(hu[zs], sy, sx)
    return small, (spacing[0] * sz, spacing[1] * sy, spacing[2] * sx), zs


def locate_trachea(hu: np.ndarray, spacing: Tuple[float, float, float]) -> T.TracheaTrack:
    """find_trachea on the search grid, mapped back to the volume's own slice indices."""
    small, sp, zs = search_grid(hu, spacing)
    tr = T.find_trachea(small, sp)
    tr.z = [int(zs[k]) for k in tr.z]
    tr.carina_z = int(zs[tr.carina_z]) if tr.carina_z is not None else None
    tr.apex_z = int(zs[tr.apex_z]) if tr.apex_z is not None else None
    return tr


def measure(hu: np.ndarray, spacing: Tuple[float, float, float], keep_crops: bool = False,
            track: Optional[T.TracheaTrack] = None, made: Sequence[int] = ()) -> TracheaMeasurement:
    """Steps 2-4: slices above the carina, denoise, sub-voxel lumen, shape features. Slices in ``made`` (filled in
    by the reader where a series lacked them) help follow the trachea but are not measured."""
    tr = track or locate_trachea(hu, spacing)
    if not tr.found:
        return TracheaMeasurement({}, [], [], tr, note=tr.reason)
    keep = T.select_slices(tr, spacing, skip=made)
    rows, used, crops = [], [], []
    for i in keep:
        z = tr.z[i]
        crop, c = T.trachea_crop(hu[z].astype(np.float32), tr.centroid_mm[i], spacing[1:])
        clean = T.denoise(crop)
        poly = T.lumen_contour(clean, c, spacing[1:])
        if poly is None:
            continue
        f = T.shape_features(poly)
        if not 20.0 <= f["area_mm2"] <= 900.0:
            continue
        rows.append(f)
        used.append(z)
        if keep_crops:
            crops.append((crop, poly / np.array(spacing[1:])))
    note = tr.reason
    if len(rows) < MIN_SLICES:
        note = f"only {len(rows)} measurable trachea slice(s) above the carina (need {MIN_SLICES})"
        return TracheaMeasurement({}, rows, used, tr, crops, note)
    return TracheaMeasurement(T.aggregate(rows), rows, used, tr, crops, note)


# ----------------------------------------------------------------------------- classifier
class LogisticShapeModel(ModelHubMixin, library_name="ctmodels", license="apache-2.0",
                         tags=["medical-imaging", "chest-ct", "breath-hold-quality", "research-only"]):
    """P(fail) = sigmoid(w . (f - mean) / std + b) on :data:`trachea.FEATURES`.

    Hub support through ``huggingface_hub.ModelHubMixin`` (no torch needed): ``save_pretrained``
    writes ``model.safetensors`` + ``config.json`` (+ a card when none is there), ``push_to_hub``
    uploads them, ``from_pretrained`` reads a folder or a Hub repo. Verified resolution of the
    bundled model by name goes through :meth:`BreathHoldChecker.from_pretrained`."""

    def __init__(self, weight, bias, mean, std, features: Sequence[str] = tuple(T.FEATURES),
                 config: Optional[Dict[str, Any]] = None):
        self.weight = np.asarray(weight, np.float64)
        self.bias = float(np.asarray(bias).reshape(-1)[0])
        self.mean = np.asarray(mean, np.float64)
        self.std = np.asarray(std, np.float64)
        self.features = list(features)
        self.config = dict(config or {})

    def vector(self, feats: Dict[str, float]) -> np.ndarray:
        return np.array([feats[k] for k in self.features], np.float64)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = ((np.atleast_2d(X) - self.mean) / self.std) @ self.weight + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, l2: float = 1e-2, iters: int = 200,
            features: Sequence[str] = tuple(T.FEATURES)) -> "LogisticShapeModel":
        """L2-regularised logistic regression by Newton's method (IRLS)."""
        X = np.asarray(X, np.float64)
        y = np.asarray(y, np.float64)
        mean, std = X.mean(0), X.std(0) + 1e-9
        Z = np.column_stack([(X - mean) / std, np.ones(len(X))])
        w = np.zeros(Z.shape[1])
        reg = np.full(Z.shape[1], l2)
        reg[-1] = 0.0
        for _ in range(iters):
            p = 1 / (1 + np.exp(-np.clip(Z @ w, -50, 50)))
            g = Z.T @ (p - y) + reg * w
            H = (Z * (p * (1 - p))[:, None]).T @ Z + np.diag(reg) + 1e-9 * np.eye(len(w))
            step = np.linalg.solve(H, g)
            w -= step
            if np.max(np.abs(step)) < 1e-8:
                break
        return cls(w[:-1], w[-1], mean, std, features)

    # ------------------------------------------------------------------ safetensors + config.json, no pickles
    def _save_pretrained(self, save_directory: Path) -> None:
        from safetensors.numpy import save_file

        save_file({"weight": self.weight.astype(np.float64), "bias": np.array([self.bias]),
                   "mean": self.mean, "std": self.std}, str(save_directory / "model.safetensors"))
        cfg = {"model_type": MODEL_TYPE, "fail_area_loss": FAIL_AREA_LOSS, **self.config,
               "features": self.features}
        (save_directory / "config.json").write_text(json.dumps(cfg, indent=2))

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: Optional[str], cache_dir, force_download: bool,
                         local_files_only: bool, token, **model_kwargs) -> "LogisticShapeModel":
        from safetensors.numpy import load_file

        from .errors import WeightsError

        try:
            if Path(model_id).is_dir():
                path = Path(model_id) / "model.safetensors"
            else:
                from huggingface_hub import hf_hub_download

                path = hf_hub_download(model_id, "model.safetensors", revision=revision, cache_dir=cache_dir,
                                       force_download=force_download, local_files_only=local_files_only,
                                       token=token)
            t = load_file(str(path))
        except Exception as exc:
            raise WeightsError(f"could not load the breath-hold model: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}", model_id) from None
        cfg = dict(model_kwargs.get("config") or {})
        features = list(model_kwargs.get("features") or cfg.get("features") or T.FEATURES)
        _check_tensors(t, features, path)
        return cls(t["weight"], t["bias"], t["mean"], t["std"], features, cfg)

    def save_pretrained(self, save_directory: Union[str, Path], extra_config: Optional[Dict[str, Any]] = None,
                        **kwargs) -> Path:
        """Write the folder (see the class docstring); ``extra_config`` is merged into config.json."""
        if extra_config:
            self.config.update(extra_config)
        super().save_pretrained(save_directory, **kwargs)
        return Path(save_directory)

    @classmethod
    def load(cls, folder: Union[str, Path]) -> "LogisticShapeModel":
        """A local folder only (what the verified resolver returns)."""
        from .errors import WeightsError

        folder = Path(folder)
        if not (folder / "model.safetensors").is_file() or not (folder / "config.json").is_file():
            raise WeightsError("could not load the breath-hold model: model.safetensors and config.json expected",
                               folder)
        try:
            cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise WeightsError(f"not readable JSON ({type(exc).__name__}); expected the breath-hold model's "
                               "config", folder / "config.json") from None
        kind = cfg.get("model_type") or cfg.get("_model_class") if isinstance(cfg, dict) else None
        if kind != MODEL_TYPE:
            raise WeightsError(f"describes {kind or 'another model'}, not the breath-hold model ({MODEL_TYPE}); "
                               "expected a folder such as weights/breath-hold-logreg", folder / "config.json")
        return cls.from_pretrained(folder)


def _check_tensors(t: Dict[str, np.ndarray], features: List[str], path) -> None:
    """WeightsError unless ``t`` holds the logistic model's tensors, one value per feature."""
    from .errors import WeightsError

    missing = [k for k in ("weight", "bias", "mean", "std") if k not in t]
    if missing:
        raise WeightsError(f"has no {', '.join(missing)} tensor(s); expected the breath-hold model's weights", path)
    n = len(features)
    if any(np.asarray(t[k]).shape != (n,) for k in ("weight", "mean", "std")) or np.asarray(t["bias"]).size != 1:
        raise WeightsError(f"its tensors do not fit the {n} features of config.json; expected the breath-hold "
                           "model's weights", path)


@dataclass
class QualityResult:
    verdict: str  # pass | fail | undetermined
    probability_fail: Optional[float]
    reason: str
    features: Dict[str, float]
    slices_used: List[int]
    series: Optional[str] = None
    series_reason: Optional[str] = None
    carina_z: Optional[int] = None
    measurement: Optional[TracheaMeasurement] = None
    warnings: List[str] = field(default_factory=list)  # how the study was read (its meta.warnings), as logged

    def as_dict(self) -> Dict[str, Any]:
        return {"verdict": self.verdict,
                "probability_fail": None if self.probability_fail is None else round(self.probability_fail, 4),
                "reason": self.reason, "features": {k: round(v, 4) for k, v in self.features.items()},
                "slices_used": self.slices_used, "carina_z": self.carina_z,
                "series": self.series, "series_reason": self.series_reason, "warnings": list(self.warnings)}


def measured_span(vol: CTVolume, res: QualityResult) -> str:
    """Where the check's measured slices lie on the patient's head-foot axis, ``"lo..hi"`` (S coordinate, mm;
    :meth:`CTVolume.position_mm`), as viewers give an axial slice's location; empty where the input gives no
    position (images, .npy) or no slice was measured."""
    where = [vol.position_mm(z) for z in res.slices_used]
    return f"{min(where):.1f}..{max(where):.1f}" if where and None not in where else ""


class BreathHoldChecker:
    """Holds the breath-hold classifier; ``predict(volume)`` -> :class:`QualityResult`."""

    def __init__(self, model: LogisticShapeModel, threshold: float = 0.5):
        self.model = model
        self.threshold = float(model.config.get("decision_threshold", threshold))
        # scikit-image loads its submodules lazily, on first attribute access (measured 1.7 s for
        # restoration, which pulls in scipy.stats): pay that with the model, not on the first verdict
        from scipy.spatial import ConvexHull  # noqa: F401
        from skimage.measure import find_contours  # noqa: F401
        from skimage.restoration import denoise_tv_chambolle  # noqa: F401

    @classmethod
    def from_pretrained(cls, name_or_path: Union[str, Path, None] = None, **hub_kwargs) -> "BreathHoldChecker":
        from .hub import resolve_model_dir

        folder = resolve_model_dir(name_or_path or MODEL_NAME, optional=("README.md",), **hub_kwargs)
        return cls(LogisticShapeModel.load(folder))

    def predict(self, vol: Union[CTVolume, np.ndarray, str, Path], keep_crops: bool = False,
                spacing: Optional[Sequence[float]] = None) -> QualityResult:
        """Judge the breath hold of a study: a :class:`CTVolume`, a path (read by :func:`ctmodels.read_ct` with
        ``purpose="quality"``: the lung-kernel series of a DICOM study) or an array ``[z, y, x]`` in HU in the
        canonical layout (head at the end of z, front at the top), with ``spacing`` (z, y, x) in mm where known
        (1 mm is assumed, and said in the reason, where not)."""
        from .io import as_volume

        vol = as_volume(vol, spacing, purpose="quality")
        res = self._judge(vol, keep_crops)
        res.warnings = list(vol.meta.warnings)
        return res

    def _judge(self, vol: CTVolume, keep_crops: bool) -> QualityResult:
        series = vol.meta.series_uid
        why = vol.meta.extra.get("selection_reason") or (
            f"single {vol.meta.format or 'volume'} input: no series to choose, kernel "
            + (f"{vol.meta.kernel}" if vol.meta.kernel else "not recorded"))
        if not vol.is_hu:
            return QualityResult(UNDETERMINED, None, "8-bit display image without Hounsfield units", {}, [],
                                 series, why)
        if vol.shape[0] < 3:
            return QualityResult(UNDETERMINED, None, f"only {vol.shape[0]} slice(s); a chest study is needed",
                                 {}, [], series, why)
        m = measure(vol.voxels, vol.spacing, keep_crops=keep_crops, made=vol.meta.interpolated_slices)
        if not m.features:
            why_not = (m.note or "no trachea found") + ("; pixel size not given (1 mm assumed), and the trachea is "
                                                        "looked for by its size in mm" if vol.meta.pixel_size_assumed
                                                        else "")
            return QualityResult(UNDETERMINED, None, why_not, {}, m.slices_used, series, why, m.track.carina_z, m)
        f = m.features
        shape = (f"trachea over {len(m.slices_used)} slices: circularity {f['circularity']:.2f}, "
                 f"AP/transverse {f['ap_ratio']:.2f}, posterior bowing {f['posterior_bowing']:.2f}; {m.note}")
        if vol.meta.pixel_size_assumed:  # the shape ratios do not depend on it; the trachea's size does
            shape += f"; {PIXEL_SIZE_ASSUMED}"
        pixel, tilt = float(max(vol.spacing[1], vol.spacing[2])), float(vol.meta.axial_tilt_deg)
        not_judged = None  # measured and shown, not judged
        if pixel > MAX_PIXEL_MM:
            not_judged = (f"pixels of {pixel:.1f} mm are too coarse to judge the trachea's shape (it is "
                          f"{f['transverse_mm'] / pixel:.1f} pixels across; verdicts up to {MAX_PIXEL_MM:g} mm pixels)")
        elif tilt > MAX_TILT_DEG:  # an oblique series or a tilted gantry: the lumen reads longer one way
            not_judged = (f"axial slices tilted {tilt:.0f} degrees off the patient's axial plane cut the trachea too "
                          f"aslant to judge its shape (verdicts up to {MAX_TILT_DEG:g} degrees)")
        if not_judged:
            return QualityResult(UNDETERMINED, None, f"{not_judged}; {shape}", f, m.slices_used, series, why,
                                 m.track.carina_z, m)
        p = float(self.model.predict_proba(self.model.vector(f))[0])
        verdict = FAIL if p >= self.threshold else PASS
        return QualityResult(verdict, p, shape, f, m.slices_used, series, why, m.track.carina_z, m)


# ----------------------------------------------------------------------------- simulation
def simulate_expiration(hu: np.ndarray, spacing: Tuple[float, float, float], area_loss: float,
                        track: Optional[T.TracheaTrack] = None, upsample: int = 8,
                        wall_hu: float = T.WALL_HU) -> np.ndarray:
    """Bow the posterior membranous wall of the trachea inward until ``area_loss`` of the lumen is lost.

    Physical model, slice by slice along the tracked trachea: the membranous (posterior) wall is
    the only non-cartilaginous part of the ring, so in expiration it is pushed anteriorly while
    the cartilage keeps the anterior and lateral walls. On an ``upsample`` x supersampled copy of
    each slice the posterior boundary ``y_post(x)`` moves anteriorly by ``d (1 - ((x - xc)/r)^2)``
    (a parabolic bow, deepest in the midline, zero at the lateral walls), with ``d`` found by
    bisection to remove the requested fraction of lumen area. The air that is displaced becomes
    wall tissue: each native voxel gains ``fraction x (wall_hu - air)``, the partial-volume mix of
    the new tissue. Noise and blur are left to the caller (they apply to pass and fail alike).
    """
    out = hu.astype(np.float32).copy()
    if area_loss <= 0:
        return out
    tr = track or locate_trachea(hu, spacing)
    f = int(upsample)
    for i, z in enumerate(tr.z):
        crop, c = T.trachea_crop(out[z], tr.centroid_mm[i], spacing[1:], half_mm=18.0)
        hi = np.repeat(np.repeat(crop, f, 0), f, 1)
        hi = ndimage.gaussian_filter(hi, f / 2.0)
        air = hi < T.LUMEN_HU
        lab, _ = ndimage.label(air)
        cy, cx = int(c[0] * f + f // 2), int(c[1] * f + f // 2)
        if lab[cy, cx] == 0:
            continue
        lumen = lab == lab[cy, cx]
        ys, xs = np.nonzero(lumen)
        if len(ys) == 0:
            continue
        x0, x1 = xs.min(), xs.max()
        xc, r = (x0 + x1) / 2.0, max((x1 - x0) / 2.0, 1.0)
        ypost = np.full(hi.shape[1], -1.0)
        np.maximum.at(ypost, xs, ys)
        cols = np.arange(hi.shape[1])
        shape = np.clip(1 - ((cols - xc) / r) ** 2, 0, None)
        yy = np.arange(hi.shape[0])[:, None]
        total = lumen.sum()

        def filled_for(d):
            bound = ypost[None, :] - d * shape[None, :]
            return lumen & (yy > bound)

        lo, hi_d = 0.0, float(ys.max() - ys.min() + 1)
        for _ in range(30):
            mid = (lo + hi_d) / 2
            if filled_for(mid).sum() / total < area_loss:
                lo = mid
            else:
                hi_d = mid
        filled = filled_for(hi_d).astype(np.float32)
        h, w = crop.shape
        frac = filled.reshape(h, f, w, f).mean(axis=(1, 3))
        add = frac * (wall_hu + 1000.0)
        y0 = int(round(tr.centroid_mm[i][0] / spacing[1])) - (h // 2)
        x0n = int(round(tr.centroid_mm[i][1] / spacing[2])) - (w // 2)
        ys0, xs0 = max(0, y0), max(0, x0n)
        ye, xe = min(out.shape[1], y0 + h), min(out.shape[2], x0n + w)
        out[z, ys0:ye, xs0:xe] += add[ys0 - y0:ye - y0, xs0 - x0n:xe - x0n]
    return out


def acquisition(hu: np.ndarray, rng: np.random.Generator, noise_hu: Tuple[float, float] = (0, 30),
                blur_vox: Tuple[float, float] = (0, 0.8)) -> np.ndarray:
    """Scanner variation for training: in-plane Gaussian blur (kernel softness) and noise."""
    s = rng.uniform(*blur_vox)
    out = ndimage.gaussian_filter(hu, (0, s, s)) if s > 0.05 else hu.astype(np.float32)
    return out + rng.normal(0, rng.uniform(*noise_hu), out.shape).astype(np.float32)
