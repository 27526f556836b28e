"""Lesion segmentation: ``LesionSegmenter.from_pretrained(...).predict(x)``.

Input units
-----------
* A :class:`~ctmodels.types.CTVolume` says its own units (``meta.units``).
* A bare array of dtype ``uint8`` is an 8-bit display image (PNG/JPG); any other dtype is
  read as Hounsfield units. Pass ``units="hu"`` or ``units="display"`` to say so explicitly.

HU input is windowed to the lung window W 1500 / L -600 ([-1350, 150] HU) and mapped to 8 bits,
matching the 8-bit lung-window slices the model was trained on; the window is stored in the
model's ``preprocessing.json``. Every slice is resized to the model's input size (256 x 256),
and probabilities are resized back, so labels and probabilities lie on the input grid.

On HU input, labels can only lie inside the patient's body (:mod:`ctmodels.body`): pixels outside it
(the air around the patient, the table) are background, with probability 1, in the labels, the
probabilities and the counts. Without this, slices without lung (upper abdomen) had the mattress and
blankets around the patient (about -900 HU) labelled lung and GGO. 8-bit display images carry no HU to find
the body with, and are segmented as they are.

A model's ``preprocessing.json`` may hold a ``consolidation_offset`` ``d`` (default 0): inside the
infection mask a pixel is consolidation when log p(consolidation) - log p(GGO) + d > 0, else GGO
(see :mod:`ctmodels.lesion_offset`). Probabilities, soft counts and the infection mask do not change.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from . import registry
from .body import ZOOM_BELOW, body_grid, body_pieces, zoom_box
from .display_colour import colour_note
from .display_window import check_lung_window
from .lung_air import air_on_grid, unanchored
from .errors import InvalidInputError, NotCTError, WeightsError
from .lesion_model import DEFAULT_PREPROCESSING, SHORT_LABELS
from .orientation import axis_order_note
from .preprocessing import as_array, check_values, frame_box, window_hu, without_channel_axis
from .types import DISPLAY, HU, CTVolume

log = logging.getLogger(__name__)

MODEL_NAME = registry.LESION
PROB_FLOOR = 1e-6  # probabilities are clamped here before a log (resizing, the consolidation offset)
ProgressFn = Callable[[int, int], None]


@dataclass
class LesionResult:
    """Per-pixel labels (uint8, 0 bg, 1 GGO, 2 consolidation, 3 other lung) on the input grid.

    ``probabilities`` is float16 ``[..., 4, H, W]`` (None when not kept). ``pixel_counts`` and
    ``soft_counts`` are per slice ``[Z, 4]``: label counts and summed probabilities, from which
    the severity module computes involvement and its uncertainty. ``warnings``: what about the input makes the
    labels less reliable, one line each, as also logged: a CTVolume's reading warnings (``meta.warnings``),
    coloured marks on a colour slice, an array whose shape is a scan's in ``[x, y, z]`` order, a light frame round
    a display slice left out (:func:`ctmodels.preprocessing.frame_box`), a small patient read in a box round the
    body (:func:`ctmodels.body.zoom_box`).
    """

    labels: np.ndarray
    probabilities: Optional[np.ndarray]
    pixel_counts: np.ndarray
    soft_counts: np.ndarray
    spacing: Optional[tuple] = None
    warnings: List[str] = field(default_factory=list)

    @property
    def is_volume(self) -> bool:
        return self.labels.ndim == 3


class LesionSegmenter:
    """Holds the lesion UNet and its preprocessing between calls."""

    def __init__(self, model, preprocessing: Optional[Dict[str, Any]] = None, device: str = "cpu",
                 half: bool = False, backend: str = "auto", channels_last: bool = True):
        """``backend``: "torch", "onnxruntime" (CPU only) or "auto" = ONNX Runtime on CPU when it
        is installed (measured ~2x faster there, same outputs), torch elsewhere. One path per device.
        ``half``: fp16 on a CUDA GPU (ignored elsewhere). ``channels_last``: NHWC memory layout for
        the torch path (cuDNN's fp16 tensor-core convolutions and oneDNN both prefer it)."""
        import torch

        self.torch = torch
        self.preprocessing = dict(DEFAULT_PREPROCESSING, **(preprocessing or {}))
        self.consolidation_offset = float(self.preprocessing.get("consolidation_offset", 0.0))
        if not np.isfinite(self.consolidation_offset):
            raise WeightsError(f"consolidation_offset must be a finite number, got {self.consolidation_offset}")
        self.device = torch.device(device)
        self.half = bool(half and self.device.type == "cuda")
        self.channels_last = bool(channels_last)
        self.model = model.to(self.device).eval()
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.half:
            self.model = self.model.half()
        self.session = None
        if backend not in ("auto", "torch", "onnxruntime"):
            raise InvalidInputError(f"backend must be auto, torch or onnxruntime, got {backend!r}")
        if backend == "onnxruntime" or (backend == "auto" and self.device.type == "cpu" and _has_ort()):
            if self.device.type != "cpu":
                raise InvalidInputError("the onnxruntime backend runs on the CPU only")
            try:
                self.session = _ort_session(self.model, int(self.preprocessing["input_size"]))
            except Exception as exc:  # export or runtime missing/incompatible
                if backend == "onnxruntime":
                    raise WeightsError(f"could not build the ONNX Runtime session: {type(exc).__name__}: "
                                       f"{str(exc).splitlines()[0][:200] if str(exc) else ''}") from None
                log.warning("ONNX Runtime unavailable (%s); using torch on the CPU", type(exc).__name__)
        self.backend = "onnxruntime" if self.session is not None else "torch"
        self.default_batch_size = 16 if self.device.type == "cpu" else 64
        # On a GPU every new batch shape cost seconds the first time (cuDNN picks and builds its
        # kernels per shape: measured 5.9 s cold vs 0.14 s warm for a 300-slice study on an H100).
        # So the network always sees full batches there (the last one padded), warmed up here.
        self.pad_batches = self.device.type == "cuda"
        if self.pad_batches:
            s = int(self.preprocessing["input_size"])
            with torch.inference_mode():
                self._network(torch.zeros(self.default_batch_size, 1, s, s, device=self.device))

    @classmethod
    def from_pretrained(cls, name_or_path: Union[str, Path, None] = None, device: str = "auto",
                        half: Optional[bool] = None, backend: str = "auto", channels_last: bool = True,
                        **hub_kwargs) -> "LesionSegmenter":
        """Load from a local folder, the bundled ``weights/``, the HF cache or the Hub (see ctmodels.hub)."""
        from .device import resolve_device
        from .hub import resolve_model_dir
        from .lesion_model import load_lesion_unet

        folder = resolve_model_dir(name_or_path or MODEL_NAME, optional=("preprocessing.json", "README.md"),
                                   **hub_kwargs)
        dev = resolve_device(device)
        model = load_lesion_unet(folder)
        pre_path = Path(folder) / "preprocessing.json"
        pre = json.loads(pre_path.read_text()) if pre_path.exists() else {}
        if half is None:
            half = dev.type == "cuda"
        seg = cls(model, pre, device=str(dev), half=half, backend=backend, channels_last=channels_last)
        log.info("lesion model loaded from %s on %s (%s)", folder, dev, seg.backend)
        return seg

    # ------------------------------------------------------------------ preprocessing
    def to_display(self, x: np.ndarray, units: str) -> np.ndarray:
        """Array in HU or display units -> uint8 display image(s) in the model's window."""
        if units == HU:
            w = self.preprocessing["hu_window"]
            return window_hu(x, w["center"], w["width"])
        if units == DISPLAY:
            if x.dtype != np.uint8:
                lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
                if not (lo >= 0 and hi <= 255):
                    raise InvalidInputError(f"display image values must be 0..255 (or 0..1 as floats), got {lo}..{hi}")
                x = np.rint(x * 255.0 if hi <= 1 else x).astype(np.uint8)  # 0..1: a float image as torchvision gives
            return x
        raise InvalidInputError(f"units must be 'hu' or 'display', got {units!r}")

    @staticmethod
    def _units_of(x: Any, units: str) -> str:
        if isinstance(x, CTVolume):
            return x.meta.units
        u = units.lower()
        if u == "auto":
            return DISPLAY if np.asarray(x).dtype == np.uint8 else HU
        return {"hu": HU, "display": DISPLAY}.get(u, u)

    # ------------------------------------------------------------------ inference
    def predict(self, x: Union[np.ndarray, CTVolume, str, Path], units: str = "auto", batch_size: Optional[int] = None,
                keep_probabilities: Optional[bool] = None, tta: Optional[bool] = None,
                progress: Optional[ProgressFn] = None, body_only: Optional[bool] = None,
                air_anchor: Optional[bool] = None, zoom: bool = True) -> LesionResult:
        """Segment a 2D slice ``[H, W]`` or a volume ``[Z, H, W]`` (batched over slices).

        ``units`` of an array: ``"auto"`` (uint8 = 8-bit display image, other dtypes HU), ``"hu"`` or
        ``"display"`` (0..255, or 0..1 floats). ``[H, W, 1]`` is a slice with a channel axis. A colour slice
        ``[H, W, 3 or 4]`` is made grey (luma, as :func:`ctmodels.io.read_ct` reads image files; a uint8 one
        with colour drawn on the patient is refused or warned of, :func:`ctmodels.display_colour.colour_note`).
        HU input with nothing below 0 is refused: chest CT in HU shows air at about -1000.

        ``tta``: average the probabilities over horizontal and vertical flips (4 passes; the model
        was trained flip- and rotation-invariant). Default: on for a single slice, off for volumes
        (where it would cost 4x the time). ``batch_size``: slices per network call; default 16 on
        the CPU, 64 on a GPU (see docs/performance.md). ``body_only``: labels only inside the
        body (:mod:`ctmodels.body`; default on: in HU, or in a display image's own grey levels, where the
        table and mattress under a patient would otherwise be called lung); ``air_anchor``: labels only in
        pieces of a slice that hold lung air, and not nearer to stomach or bowel gas than to it
        (:mod:`ctmodels.lung_air`; needs HU and the volume's 3D air, default on for HU input). ``zoom``: where
        the patient spans less than 0.8 of the image's longer side (a slice in a screenshot's black canvas, a thin
        patient in a wide field of view), read a square box round the body in which it spans 0.95, as in the
        training slices, and label the rest background (:func:`ctmodels.body.zoom_box`; one box for a volume).
        A display image of several slices side by side (two or more bodies of about one size,
        :func:`ctmodels.body.body_pieces`) is refused (:class:`NotCTError`).
        """
        if isinstance(x, (str, Path)):  # a file or folder, as read_ct reads it
            from .io import read_ct

            x = read_ct(x)
        elif not isinstance(x, CTVolume):
            x = as_array(x)
        if batch_size is None:
            batch_size = self.default_batch_size
        if int(batch_size) < 1:
            raise InvalidInputError(f"batch_size must be at least 1, got {batch_size}")
        unit = self._units_of(x, units)
        spacing = x.spacing if isinstance(x, CTVolume) else None
        arr = x.voxels if isinstance(x, CTVolume) else without_channel_axis(np.asarray(x))
        notes = list(x.meta.warnings) if isinstance(x, CTVolume) else []  # how it was read (logged by the reader)
        if not isinstance(x, CTVolume):  # a CTVolume's voxels are [z, y, x] whatever their shape
            note = None
            if arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.shape[0] > 4:  # [H, W, RGB(A)]: one slice
                rgb, arr = arr, to_gray(arr)
                if rgb.dtype == np.uint8:  # colour drawn on the patient: refused or warned of, as in an image file
                    note = colour_note(rgb[..., :3], arr)
            else:  # a scan as [x, y, z]?
                note = axis_order_note(arr.shape)
            if note:
                log.warning("%s", note)
                notes.append(note)
        named = f"{Path(x.meta.source).name}: " if isinstance(x, CTVolume) and x.meta.source else ""
        if arr.ndim not in (2, 3):
            raise InvalidInputError(f"expected a slice [H, W] or volume [Z, H, W], got shape {arr.shape}")
        check_values(arr, "input")
        if unit == HU and not float(arr.min()) < 0:
            raise InvalidInputError(
                f"values taken as HU ({arr.dtype}) lie in {arr.min():g}..{arr.max():g}, nothing below 0, "
                "where CT in Hounsfield units shows air at about -1000 HU; for a display image pass uint8 or "
                "units='display' (0..255, or 0..1 as floats)")
        if min(arr.shape[-2:]) < 8:
            raise InvalidInputError(f"image {arr.shape[-2:]} is too small to segment (minimum 8x8)")
        single = arr.ndim == 2 or (arr.ndim == 3 and arr.shape[0] == 1)
        vol = arr[None] if arr.ndim == 2 else arr
        use_tta = single if tta is None else bool(tta)
        if keep_probabilities is None:
            keep_probabilities = single
        body_only = True if body_only is None else bool(body_only)
        air_anchor = unit == HU if air_anchor is None else bool(air_anchor)
        if air_anchor and unit != HU:
            raise InvalidInputError("air_anchor needs HU input: a display image has no HU to find the air in")
        need_body = body_only or air_anchor or zoom
        grid, body = body_grid(vol) if unit == HU and need_body else (None, None)  # computed once for all three
        air = air_on_grid(vol, grid, body) if air_anchor else None  # on the grid: sized up per batch
        disp = self.to_display(vol, unit)
        rows, cols = slice(None), slice(None)
        if unit == DISPLAY:  # HU is put in the lung window here; a display image must come in one
            check_lung_window(disp)
            rows, cols = frame_box(disp)  # a figure's light frame: left out, so that the patient keeps its size
        z, h, w = disp.shape
        if rows != slice(None) or cols != slice(None):
            notes.append(frame_note(disp.shape, rows, cols))
            log.warning("%s%s", named, notes[-1])
        if unit == DISPLAY:  # the body in the image's own grey levels, inside any frame (always: one body or several)
            grid, body = body_grid(disp[:, rows, cols], display=True)
            several = max(body_pieces(b) for b in body)
            if several > 1:  # one body per slice, unless slices were laid out side by side in one image
                raise NotCTError(f"{several} bodies of about one size side by side (a viewer's layout or a figure "
                                 "of several slices): expected one axial slice per image; save each slice as an "
                                 "image of its own", x.meta.source if isinstance(x, CTVolume) else None)
        box = zoom_box(grid.up(body.any(0))) if zoom else (slice(None), slice(None))  # within the frame
        if box != (slice(None), slice(None)):
            rows, cols = _within(rows, box[0], h), _within(cols, box[1], w)
            notes.append(zoom_note(disp.shape, rows, cols))
            log.warning("%s%s", named, notes[-1])
        inner = disp[:, rows, cols]
        rb, cb = box  # the box within the frame, where the body and air masks lie
        boxed = inner.shape != disp.shape
        outer_px = h * w - inner.shape[1] * inner.shape[2]  # outside a frame or the zoomed box: background
        labels = (np.zeros if boxed else np.empty)((z, h, w), np.uint8)
        probs = (np.zeros if boxed else np.empty)((z, 4, h, w), np.float16) if keep_probabilities else None
        if probs is not None and boxed:
            probs[:, 0] = 1
        counts = np.zeros((z, 4), np.int64)
        soft = np.zeros((z, 4), np.float64)
        for start in range(0, z, batch_size):
            stop = min(z, start + batch_size)
            lab, sc, p = self._predict_batch(inner[start:stop], use_tta, probs is not None,
                                             pad_to=batch_size if self.pad_batches else 0,
                                             body=grid.up(body[start:stop])[:, rb, cb] if body_only else None,
                                             air=None if air is None else tuple(grid.up(m[start:stop])[:, rb, cb]
                                                                                for m in air))
            labels[start:stop, rows, cols] = lab.cpu().numpy()
            soft[start:stop] = sc
            soft[start:stop, 0] += outer_px
            if lab.is_cuda:  # count on the GPU: a host-side bincount would cap the rate at ~1000 slices/s
                counts[start:stop] = self.torch.stack([(lab == c).sum((1, 2)) for c in range(4)], 1).cpu().numpy()
                counts[start:stop, 0] += outer_px
            else:  # np.bincount on uint8 measured 3x faster than torch's on the CPU
                for i in range(start, stop):
                    counts[i] = np.bincount(labels[i].ravel(), minlength=4)[:4]
            if probs is not None:
                probs[start:stop, :, rows, cols] = p.to(self.torch.float16).cpu().numpy()
            if progress is not None:
                progress(stop, z)
        if arr.ndim == 2:
            return LesionResult(labels[0], None if probs is None else probs[0], counts, soft, spacing, notes)
        return LesionResult(labels, probs, counts, soft, spacing, notes)

    def assess(self, result: LesionResult):
        """The severity of a :meth:`predict` result (:func:`ctmodels.severity.assess`: % involved, MosMed grade,
        P(extensive) and its class A/B/C) with this model's involvement error as measured on held-out data
        (``preprocessing.json``'s ``involvement_error``: bias and SD in percentage points), as ``ctmodels segment``
        and the app grade a study; ``severity.assess`` on its own assumes an error of 0 +- 10 points."""
        from . import severity

        err = self.preprocessing.get("involvement_error", {})
        return severity.assess(result.pixel_counts, result.soft_counts, float(err.get("bias_pp", 0.0)),
                               float(err.get("sd_pp", 10.0)))

    def _network(self, t, pad_to: int = 0):
        """Model-resolution probabilities [b, 4, s, s] (float32) from a normalised batch; with
        ``pad_to``, the network runs on a batch padded with zeros to that many slices (one shape)."""
        torch = self.torch
        b = t.shape[0]
        if b < pad_to:
            return self._network(torch.cat([t, t.new_zeros((pad_to - b,) + tuple(t.shape[1:]))]))[:b]
        if self.session is not None:
            out = self.session.run(None, {"x": np.ascontiguousarray(t.float().numpy())})[0]
            return torch.softmax(torch.from_numpy(out), 1)
        if self.half:
            t = t.half()
        if self.channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        return torch.softmax(self.model(t).float(), 1)

    def _predict_batch(self, disp: np.ndarray, tta: bool = False, full_probs: bool = False, pad_to: int = 0,
                       body: Optional[np.ndarray] = None, air: Optional[Tuple[np.ndarray, np.ndarray]] = None):
        """-> (labels [b, h, w] on the input grid, soft counts [b, 4], probabilities [b, 4, h, w] or None).
        ``body``: bool [b, h, w]; outside it every pixel is background with probability 1. ``air``: bool
        [b, h, w] masks (lung air, other air); labels that :func:`ctmodels.lung_air.unanchored` finds are
        background too."""
        torch = self.torch
        F = torch.nn.functional
        s = int(self.preprocessing["input_size"])
        mean, std = float(self.preprocessing["mean"]), float(self.preprocessing["std"])
        h, w = disp.shape[-2:]
        with torch.inference_mode():
            t = torch.from_numpy(np.require(disp, requirements=["C", "W"]))
            if self.device.type == "cuda":  # uint8 batch through pinned memory, converted on the GPU
                t = t.pin_memory().to(self.device, non_blocking=True)
            else:
                t = t.to(self.device)
            t = t[:, None]
            t = (t.float() / 255.0 - mean) / std
            if (h, w) != (s, s):
                t = F.interpolate(t, size=(s, s), mode="bilinear", align_corners=False,
                                  antialias=(h > s or w > s))
            if tta:
                flips = [(), (3,), (2,), (2, 3)]
                p = sum(torch.flip(self._network(torch.flip(t, f), pad_to), f) if f else self._network(t, pad_to)
                        for f in flips) / len(flips)
            else:
                p = self._network(t, pad_to)
            outside = None
            if body is not None:
                outside = ~torch.from_numpy(body).to(p.device)  # to the device once per batch
                p = _background_where(p, outside)
            lab, logp = self._input_grid_labels(p, h, w)
            lab = _inside(lab, outside)
            if air is not None:
                drop = unanchored(lab.cpu().numpy(), *air)
                if drop.any():
                    dropped = torch.from_numpy(drop).to(p.device)
                    outside = dropped if outside is None else outside | dropped
                    lab = _inside(lab, dropped)
                    p = _background_where(p, dropped)
                    # the labels are final: the input-grid log-probabilities are redone only to be returned
                    logp = self._input_grid_log_probs(p, h, w) if full_probs and logp is not None else None
            # expected pixel counts per class, scaled from the model grid to the input grid
            soft = (p.sum((2, 3)).double() * (h * w) / (s * s)).cpu().numpy()
            probs = None
            if full_probs:
                probs = _inside(p if logp is None else torch.softmax(logp, 1), outside)
            return lab, soft, probs

    def _input_grid_log_probs(self, p, h: int, w: int):
        """log-probabilities [b, 4, s, s] resized bilinearly to [b, 4, h, w]; their argmax equals that
        of the resized softmax."""
        F = self.torch.nn.functional
        return F.interpolate(self.torch.log(p.clamp_min(PROB_FLOOR)), size=(h, w), mode="bilinear",
                             align_corners=False)

    def _input_grid_labels(self, p, h: int, w: int):
        """-> (labels [b, h, w], the log-probabilities they came from on the input grid, or None where the
        network's grid is the input's and ``p`` serves as it is)."""
        if (h, w) == tuple(p.shape[-2:]):
            lab = _argmax_classes(p)
            if self.consolidation_offset:
                lab = _split_infection(lab, self.torch.log(p.clamp_min(PROB_FLOOR)), self.consolidation_offset)
            return lab, None
        logp = self._input_grid_log_probs(p, h, w)
        lab = _argmax_classes(logp)
        if self.consolidation_offset:
            lab = _split_infection(lab, logp, self.consolidation_offset)
        return lab, logp


def frame_note(shape: Tuple[int, ...], rows: slice, cols: slice) -> str:
    """The line a result carries where :func:`ctmodels.preprocessing.frame_box` found a light frame round a slice."""
    h, w = shape[-2:]
    sides = (rows.start, h - rows.stop, cols.start, w - cols.stop)
    return ("a light frame round the image (top, bottom, left, right: " + ", ".join(f"{n}" for n in sides)
            + " pixels), as a figure or slide puts round a slice, was left out and labelled background, so that "
            "the patient keeps its size in the model's input")


def _within(outer: slice, inner: slice, n: int) -> slice:
    """``inner`` (a slice of the run ``outer`` picks out of ``n``) as a slice of the ``n`` itself."""
    start, stop, _ = outer.indices(n)
    a, b, _ = inner.indices(stop - start)
    return slice(start + a, start + b)


def zoom_note(shape: Tuple[int, ...], rows: slice, cols: slice) -> str:
    """The line a result carries where :func:`ctmodels.body.zoom_box` had the model read a box round a small
    patient (``rows`` and ``cols``: where the box lies in the image of ``shape``)."""
    h, w = shape[-2:]
    return (f"the patient spans less than {100 * ZOOM_BELOW:.0f} % of the image ({w} x {h} pixels; the training "
            f"slices' patients at least 84 %): the model read the {cols.stop - cols.start} x {rows.stop - rows.start} "
            f"pixel box round the body (rows {rows.start}-{rows.stop - 1}, columns {cols.start}-{cols.stop - 1}), "
            "where the patient spans as in its training slices, and labelled the rest background")


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """``[H, W, 3 or 4]`` colour slice -> ``[H, W]`` luma (ITU-R 601, as PIL's ``convert("L")`` and so as
    :func:`ctmodels.io.read_ct` reads colour image files; alpha ignored), in the input's dtype."""
    rgb = np.asarray(rgb)
    y = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return np.rint(y).astype(np.uint8) if rgb.dtype == np.uint8 else y.astype(rgb.dtype, copy=False)


def _background_where(p, outside):
    """Network-grid probabilities [b, 4, s, s] with the share of each network pixel that ``outside`` (bool
    [b, h, w], input grid, on p's device) covers made background."""
    import torch
    import torch.nn.functional as F

    share = (~outside)[:, None].float()  # share of each network pixel that stays
    if tuple(share.shape[-2:]) != tuple(p.shape[-2:]):
        share = F.interpolate(share, size=tuple(p.shape[-2:]), mode="area")
    return torch.cat([p[:, :1] * share + (1 - share), p[:, 1:] * share], 1)


def _inside(t, outside):
    """Labels [b, h, w] or probabilities [b, 4, h, w] with every pixel where ``outside`` (a bool tensor
    [b, h, w] on t's device, input grid; None: nowhere) is true set to background: label 0,
    probabilities (1, 0, 0, 0)."""
    if outside is None:
        return t
    if t.ndim == 3:
        return t.masked_fill(outside, 0)
    t = t.masked_fill(outside[:, None], 0)
    t[:, 0].masked_fill_(outside, 1)
    return t


def _argmax_classes(t):
    """uint8 argmax over the class axis of [b, c, h, w] (first maximum wins, as torch.argmax).
    A loop over the few classes: torch.argmax over dim 1 measured 20x slower on CPU at 512x512."""
    import torch

    best = t[:, 0].clone()
    lab = torch.zeros(best.shape, dtype=torch.uint8, device=t.device)
    for c in range(1, t.shape[1]):
        better = t[:, c] > best
        best = torch.maximum(best, t[:, c])
        lab[better] = c
    return lab


def _split_infection(lab, logp, offset: float):
    """GGO / consolidation pixels of ``lab`` split again at log p2 - log p1 + offset > 0 (torch twin of
    :func:`ctmodels.lesion_offset.split_infection`); other labels are kept."""
    import torch

    inf = (lab == 1) | (lab == 2)
    cons = (logp[:, 2] - logp[:, 1] + offset) > 0
    return torch.where(inf, 1 + cons.to(torch.uint8), lab)


def _has_ort() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def _ort_session(model, size: int):
    """An ONNX Runtime session built in memory from the loaded (safetensors) weights: no file written."""
    import io as _io
    import warnings

    import onnxruntime as ort
    import torch

    buf = _io.BytesIO()
    m = model.float().to(memory_format=torch.contiguous_format).cpu().eval()
    with warnings.catch_warnings(), contextlib.redirect_stdout(_io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(m, torch.zeros(1, 1, size, size), buf, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17, dynamo=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.inter_op_num_threads = 1
    # idle threads sleep rather than spin after a run: the spinning took cores from the resizing and
    # masking between network calls (300-slice study on 2 cores: 15.3 -> 14.8 s)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])


def class_names() -> list:
    return list(SHORT_LABELS)
