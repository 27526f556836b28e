"""Benchmarks: the fast path against the naive path in the same run, one table, JSON.

Naive path (what a first demo does): one slice at a time at its native size, fp32, eager, no
batching, DICOM files read one after another. Fast path: what ctmodels does (slices resized to
the model's 256 px input, batches, ``torch.inference_mode``; on CPU ONNX Runtime, on GPU fp16 and
channels_last). For the breath-hold check the naive path denoises every slice of the series before
searching; the fast path searches a coarse copy and denoises only the trachea crops it keeps.
The app row has no naive counterpart. Each row reports both and their ratio, because absolute times on a shared
machine drift. Peak memory is the peak resident set (VmHWM) of a fresh child process running the task.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

log = logging.getLogger(__name__)

TARGETS = {"study_seconds": 30.0, "study_peak_gb": 3.0, "breath_hold_seconds": 5.0, "speedup": 3.0,
           "gpu_slices_per_second": 1000.0}


def _timeit(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def naive_segment(model, slices: np.ndarray, device: str = "cpu") -> np.ndarray:
    """One slice at a time, native size (padded to /32), fp32, eager autograd-free only via no_grad."""
    import torch

    from .preprocessing import pad_to_multiple, unpad

    out = np.empty(slices.shape, np.uint8)
    model = model.to(device).to(memory_format=torch.contiguous_format).float().eval()
    for i, s in enumerate(slices):
        x, hw = pad_to_multiple((s.astype(np.float32) / 255.0 - 0.5) / 0.25, 32)
        with torch.no_grad():
            y = model(torch.from_numpy(x)[None, None].to(device))
        out[i] = unpad(y[0].argmax(0).cpu().numpy(), hw)
    return out


def lesion_throughput(sizes=(512, 256), batches=(1, 8, 32), n: int = 32, device: str = "cpu") -> List[Dict]:
    import torch

    from .lesion import LesionSegmenter

    seg = LesionSegmenter.from_pretrained(device=device)
    naive_model = LesionSegmenter.from_pretrained(device=device, half=False).model
    rows = []
    rng = np.random.default_rng(0)
    for size in sizes:
        x = (rng.random((n, size, size)) * 255).astype(np.uint8)
        k = max(2, min(n, 8 if device == "cpu" else n))
        t_naive = _timeit(lambda: naive_segment(naive_model, x[:k], device)) / k
        for b in batches:
            seg.predict(x[:b], batch_size=b)  # warm-up
            if device != "cpu":
                torch.cuda.synchronize()
            t = _timeit(lambda: seg.predict(x, batch_size=b), repeat=2) / n
            rows.append({"task": f"lesion slices/s {size}x{size} batch {b}", "fast": 1.0 / t,
                         "naive": 1.0 / t_naive, "unit": "slices/s", "ratio": t_naive / t})
    return rows


STUDY_SPACING = (1.0, 0.7, 0.7)


def study_volume(n: int = 300, size: int = 512, abdomen: bool = False) -> np.ndarray:
    """The benchmark's synthetic chest study, ``n`` x ``size`` x ``size`` int16 HU at ``STUDY_SPACING``."""
    from .phantoms import chest_phantom

    sp = STUDY_SPACING
    vol = chest_phantom(sp, extent_mm=n * sp[0], fov_mm=size * sp[1], seed=0, abdomen=abdomen)
    vol = vol[:n, : size, : size]
    pad = ((0, 0), (0, size - vol.shape[1]), (0, size - vol.shape[2]))
    return np.pad(vol, pad, constant_values=-1000)


def write_study(folder: Path, n: int = 300, size: int = 512) -> Path:
    """A synthetic 300 x 512 x 512 chest study as a DICOM series (made in code)."""
    from pydicom.uid import generate_uid

    from .dicom import ct_slice_dataset

    sp = STUDY_SPACING
    vol = study_volume(n, size)
    series, study = generate_uid(), generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(vol.shape[0]):
        ds = ct_slice_dataset(vol[k].astype(np.int16), (0.0, 0.0, k * sp[0]), sp[1:], sp[0], series, study,
                              Manufacturer="SIEMENS", ConvolutionKernel="B70f", SeriesNumber=1)
        ds.save_as(folder / f"{k:04d}.dcm", enforce_file_format=True)
    return folder


_CHILD = r"""
import json, resource, sys, time
import pydicom  # imported before timing in every mode: the naive path imports it up front too
t0 = time.perf_counter()
mode, path, device = sys.argv[1], sys.argv[2], sys.argv[3]
parts = {}  # optional split of the time (reading), by mode
if mode == "study-fast":
    import numpy as np
    from ctmodels.io import read_ct
    from ctmodels.lesion import LesionSegmenter
    from ctmodels.pipeline import segment_study
    seg = LesionSegmenter.from_pretrained(device=device)
    seg.predict(np.zeros((2, 512, 512), np.uint8))  # first use of the kernels: load time, not study time
    t0 = time.perf_counter()
    vol = read_ct(path)
    parts = {"read_seconds": time.perf_counter() - t0}
    rep = segment_study(seg, vol).report  # the CLI's and the app's batch size for the device
elif mode == "study-naive":
    import numpy as np, pydicom
    from pathlib import Path
    from ctmodels.bench import naive_segment
    from ctmodels.lesion import LesionSegmenter
    from ctmodels.preprocessing import window_hu
    from ctmodels import severity
    model = LesionSegmenter.from_pretrained(device=device, half=False).model
    naive_segment(model, np.zeros((1, 512, 512), np.uint8), device)
    t0 = time.perf_counter()
    dss = sorted((pydicom.dcmread(str(p)) for p in Path(path).glob("*.dcm")),
                 key=lambda d: float(d.ImagePositionPatient[2]))
    hu = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in dss])
    parts = {"read_seconds": time.perf_counter() - t0}
    labels = naive_segment(model, window_hu(hu, -600, 1500), device)
    counts = np.stack([np.bincount(l.ravel(), minlength=4) for l in labels])
    rep = severity.assess(counts, counts.astype(float))
elif mode == "quality-naive":
    # the obvious pipeline: denoise the whole series, then look for the trachea
    import numpy as np
    from ctmodels import trachea
    from ctmodels.io import read_ct
    from ctmodels.quality import BreathHoldChecker
    chk = BreathHoldChecker.from_pretrained()
    t0 = time.perf_counter()
    vol = read_ct(path, purpose="quality")
    vol.voxels = np.stack([trachea.denoise(s) for s in vol.voxels])
    rep = chk.predict(vol)
elif mode == "quality":
    from ctmodels.io import read_ct
    from ctmodels.quality import BreathHoldChecker
    chk = BreathHoldChecker.from_pretrained()
    t0 = time.perf_counter()
    rep = chk.predict(read_ct(path, purpose="quality"))
secs = time.perf_counter() - t0
# VmHWM is this process's own peak; ru_maxrss would also count the parent's peak before exec
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")]
peak = int(hwm[0].split()[1]) / 1024**2 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
sys.stdout.write(json.dumps({"seconds": secs, "peak_gb": peak, **parts}) + "\n")
"""


def _child(mode: str, path: Path, device: str = "cpu", timeout: int = 3600) -> Dict[str, float]:
    r = subprocess.run([sys.executable, "-c", _CHILD, mode, str(path), device], capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{mode} failed: {r.stderr[-500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def study_rows(n: int = 300, size: int = 512, naive: bool = True, device: str = "cpu",
               quality: bool = True) -> List[Dict]:
    """The study row on ``device``; the breath-hold rows (CPU code, no network) when ``quality``."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="ctmodels-bench-") as tmp:
        study = write_study(Path(tmp) / "study", n, size)
        fast = _child("study-fast", study, device)
        slow = _child("study-naive", study, device) if naive else {"seconds": float("nan"), "peak_gb": float("nan")}
        rows.append({"task": f"{n}-slice {size}x{size} study: read DICOM + segment + grade", "fast": fast["seconds"],
                     "naive": slow["seconds"], "unit": "s", "ratio": slow["seconds"] / fast["seconds"],
                     "peak_gb": fast["peak_gb"], "naive_peak_gb": slow["peak_gb"],
                     "read_seconds": fast.get("read_seconds"), "naive_read_seconds": slow.get("read_seconds")})
        if not quality:
            return rows
        q = _child("quality", study)
        qn = _child("quality-naive", study) if naive else {"seconds": float("nan")}
        rows.append({"task": f"breath-hold verdict, {n}-slice study: read DICOM + check", "fast": q["seconds"],
                     "naive": qn["seconds"], "unit": "s", "ratio": qn["seconds"] / q["seconds"],
                     "peak_gb": q["peak_gb"]})
    return rows


def app_first_result() -> Optional[Dict]:
    """Runs bench/app_first_result.py of the checkout in a fresh process (None outside a checkout)."""
    script = Path(__file__).resolve().parent.parent / "bench" / "app_first_result.py"
    if not script.exists():
        return None
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise RuntimeError(f"app timing failed: {r.stderr[-500:]}")
    d = json.loads(r.stdout.strip().splitlines()[-1])
    return {"task": "app: open Lesions page to first grade (synthetic example)", "fast": d["seconds"],
            "naive": float("nan"), "unit": "s", "ratio": float("nan"), "ok": d["ok"]}


def run(tiny: bool = False, device: str = "cpu", out: Optional[Path] = None, naive: bool = True) -> Dict:
    import torch

    from .device import resolve_device

    dev = resolve_device(device)
    info = {"device": torch.cuda.get_device_name(0) if dev.type == "cuda" else f"cpu x{os.cpu_count()}",
            "torch_threads": torch.get_num_threads(), "tiny": tiny, "targets": TARGETS}
    rows: List[Dict] = []
    if tiny:
        rows += lesion_throughput(sizes=(64,), batches=(2,), n=4, device=str(dev))
        rows += study_rows(n=6, size=64, naive=naive)
    elif dev.type == "cpu":
        rows += lesion_throughput(device="cpu", n=32, batches=(1, 8, 32))
        rows += study_rows(naive=naive)
        app = app_first_result()
        if app:
            rows.append(app)
    else:  # the breath-hold check and the app's timing run on the CPU whatever the device: not repeated
        rows += lesion_throughput(device=str(dev), n=1024, batches=(1, 64, 256))
        rows += study_rows(naive=naive, device=str(dev), quality=False)
    result = {"info": info, "rows": rows}
    result["targets"] = check_targets(result)
    if out:
        Path(out).write_text(json.dumps(result, indent=2, default=float))
    return result


def check_targets(result: Dict) -> List[Dict]:
    """Each target of the benchmark with the measured value and whether it is met (full runs only)."""
    if result["info"].get("tiny"):
        return []
    rows = result["rows"]
    out = []

    def add(name, value, limit, higher_is_better=False):
        if value == value:  # not NaN
            out.append({"target": name, "value": value, "limit": limit, "higher_is_better": higher_is_better,
                        "met": value >= limit if higher_is_better else value <= limit})

    on_cpu = "cpu" in result["info"]["device"]
    study = next((r for r in rows if "study: read DICOM + segment" in r["task"]), None)
    if study and on_cpu:  # the study, memory, speedup and verdict targets are set for 2 CPU cores
        add("study seconds (300 x 512x512, read + segment + grade)", study["fast"], TARGETS["study_seconds"])
        add("study peak memory GB", study.get("peak_gb", float("nan")), TARGETS["study_peak_gb"])
        add("study speedup over the naive path", study["ratio"], TARGETS["speedup"], True)
    bh = next((r for r in rows if r["task"].startswith("breath-hold verdict")), None)
    if bh and on_cpu:
        add("breath-hold verdict seconds", bh["fast"], TARGETS["breath_hold_seconds"])
    if not on_cpu:
        best = max((r["fast"] for r in rows if r["unit"] == "slices/s"), default=float("nan"))
        add("GPU lesion slices/s", best, TARGETS["gpu_slices_per_second"], True)
    return out


def format_table(result: Dict) -> str:
    lines = [f"device: {result['info']['device']} (torch threads {result['info']['torch_threads']})",
             f"{'task':62s} {'fast':>10s} {'naive':>10s} {'unit':>9s} {'speedup':>8s} {'peak GB':>8s}"]
    for r in result["rows"]:
        sp = r["ratio"]
        lines.append(f"{r['task']:62s} {r['fast']:10.2f} {r['naive']:10.2f} {r['unit']:>9s} "
                     f"{'' if sp != sp else f'{sp:.1f}x':>8s} {r.get('peak_gb', float('nan')):8.2f}")
    targets = check_targets(result)
    if targets:
        lines.append("targets:")
        for t in targets:
            lines.append(f"  {t['target']:60s} {t['value']:10.2f} {'>=' if t['higher_is_better'] else '<='} "
                         f"{t['limit']:<8g} {'met' if t['met'] else 'NOT MET'}")
    return "\n".join(lines)
