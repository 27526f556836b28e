"""GPU checks in one run, for a lent GPU machine (where ../shared is not available).

    python bench/gpu_check.py --pack .gpudata/heldout.npz          # here: pack the held-out slices
    python bench/gpu_check.py --heldout .gpudata/heldout.npz --out DIR   # there: check and time

1. fp16 against fp32 on the GPU, on the lesion model's held-out slices (the ones its training
   record lists): the held-out metrics of each and the share of pixels whose label agrees.
2. Lesion throughput through ``LesionSegmenter.predict`` for fp16/fp32 x channels_last on/off,
   at 512x512 and 256x256, plus the network alone (CUDA events), so the table shows where time goes.

Prints one table and writes ``gpu_check.json``. ``ctmodels bench --device cuda`` gives the
benchmark's own rows (fast against naive) and is run next to this.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ctmodels import lesion_data as ld  # noqa: E402

RECORD = ROOT / "weights" / "lesion-unet-effb0" / "training.json"


def pack(dest: Path, data_root: Path) -> None:
    """The held-out slices of the training record, as one npz (the data does not travel otherwise)."""
    rec = json.loads(RECORD.read_text())
    semi = ld.load_semiseg(data_root / "covid_semiseg_train")
    held = set(rec["held_out"]["covid_semiseg_train"])
    semi_te = semi.subset([i for i, n in enumerate(semi.names) if n in held])
    infs = ld.load_infection_slices(data_root / "covid_ct_lung_infection_slices")
    vols = set(rec["held_out"]["covid_ct_lung_infection_slices_volumes"])
    inf_te = infs.subset([i for i, g in enumerate(infs.groups) if int(g) in vols])
    arrays = {"inf_images": inf_te.images, "inf_allowed": inf_te.allowed}
    for k, (img, lab) in enumerate(semi_te.originals):
        arrays[f"semi_img_{k}"], arrays[f"semi_lab_{k}"] = img, lab
    dest.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(dest, **arrays)
    print(f"packed {len(semi_te)} semiseg + {len(inf_te)} infection held-out slices into {dest}")


def unpack(path: Path):
    z = np.load(path)
    k = sum(1 for n in z.files if n.startswith("semi_img_"))
    originals = [(z[f"semi_img_{i}"], z[f"semi_lab_{i}"]) for i in range(k)]
    semi = ld.SliceSet(np.zeros((k, 1, 1), np.uint8), np.zeros((k, 1, 1), np.uint8), [str(i) for i in range(k)],
                       np.arange(k), True, originals)
    n = len(z["inf_images"])
    inf = ld.SliceSet(z["inf_images"], z["inf_allowed"], [str(i) for i in range(n)], np.zeros(n), False)
    return semi, inf


def precision_check(heldout: Path, device: str = "cuda") -> dict:
    from ctmodels.lesion import LesionSegmenter
    from ctmodels.train_lesion import evaluate

    class Recording:  # keeps the labels of the predictions evaluate() scores: no second pass
        def __init__(self, seg):
            self.seg, self.labels = seg, []

        def predict(self, x, **kw):
            r = self.seg.predict(x, **kw)
            self.labels.extend(r.labels if r.labels.ndim == 3 else [r.labels])
            return r

    semi, inf = unpack(heldout)
    out = {}
    labels = {}
    for name, half in (("fp32", False), ("fp16", True)):
        rec = Recording(LesionSegmenter.from_pretrained(device=device, half=half))
        out[name] = evaluate(rec, semi, inf)
        labels[name] = rec.labels
    same = sum(int((a == b).sum()) for a, b in zip(labels["fp32"], labels["fp16"]))
    total = sum(a.size for a in labels["fp32"])
    out["label_agreement_fp16_vs_fp32"] = same / total
    out["cpu_record"] = json.loads(RECORD.read_text())["metrics_held_out"]
    return out


def _median_seconds(fn, x, repeat: int = 10) -> float:
    """Median GPU time of ``fn(x)`` measured with CUDA events (after one call already made)."""
    import torch

    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeat):
        a.record()
        fn(x)
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / 1000)
    return float(np.median(times))


def throughput(n: int = 1024, batch: int = 256, device: str = "cuda", fp16_only: bool = False) -> list:
    import torch

    from ctmodels.lesion import LesionSegmenter

    rows = []
    rng = np.random.default_rng(0)
    data = {s: (rng.random((n, s, s)) * 255).astype(np.uint8) for s in (512, 256)}
    for half in ((True,) if fp16_only else (True, False)):
        for cl in (True, False):
            seg = LesionSegmenter.from_pretrained(device=device, half=half, channels_last=cl, backend="torch")
            for size, x in data.items():
                seg.predict(x[:batch], batch_size=batch)
                if device != "cpu":
                    torch.cuda.synchronize()
                best = float("inf")
                for _ in range(3):
                    t = time.perf_counter()
                    seg.predict(x, batch_size=batch)
                    best = min(best, time.perf_counter() - t)
                rows.append({"what": f"predict {size}x{size} batch {batch}", "fp16": half, "channels_last": cl,
                             "slices_per_s": n / best})
            # the network alone at the model's 256 px input
            if device == "cpu":
                continue
            t = torch.randn(batch, 1, 256, 256, device=device)
            t = t.half() if half else t
            t = t.contiguous(memory_format=torch.channels_last) if cl else t
            with torch.inference_mode():
                for _ in range(3):
                    seg.model(t)
                seconds = _median_seconds(seg.model, t)
            rows.append({"what": f"network only 256x256 batch {batch}", "fp16": half, "channels_last": cl,
                         "slices_per_s": batch / seconds})
            del seg
            torch.cuda.empty_cache()
    return rows


def compiled_network(batch: int = 256) -> dict:
    """The network alone under torch.compile (fp16, channels_last): is compiling worth its start-up?"""
    import torch

    from ctmodels.lesion import LesionSegmenter

    seg = LesionSegmenter.from_pretrained(device="cuda")
    t = torch.randn(batch, 1, 256, 256, device="cuda").half().contiguous(memory_format=torch.channels_last)
    t0 = time.perf_counter()
    fn = torch.compile(seg.model)
    with torch.inference_mode():
        fn(t)
        torch.cuda.synchronize()
        compile_s = time.perf_counter() - t0
        seconds = _median_seconds(fn, t)
    return {"compile_seconds": compile_s, "slices_per_s": batch / seconds}


def study_profile(device: str = "cuda", n: int = 300) -> dict:
    """Where a 300 x 512 x 512 study's seconds go on the device: each stage timed after a sync,
    and the same prediction cold (first use of its batch shapes) and warm."""
    import tempfile

    import torch

    from ctmodels.bench import write_study
    from ctmodels.io import read_ct
    from ctmodels.lesion import LesionSegmenter
    from ctmodels.pipeline import segment_study

    sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)
    out = {}

    def timed(name, fn):
        t = time.perf_counter()
        r = fn()
        sync()
        out[name] = time.perf_counter() - t
        print(f"  {name:44s} {out[name]:7.3f} s", flush=True)
        return r

    with tempfile.TemporaryDirectory() as tmp:
        study = write_study(Path(tmp) / "s", n, 512)
        seg = timed("load model", lambda: LesionSegmenter.from_pretrained(device=device))
        timed("first predict, 2 slices (context, kernels)", lambda: seg.predict(np.zeros((2, 512, 512), np.uint8)))
        vol = timed("read_ct", lambda: read_ct(study))
        disp = timed("window to 8 bits (numpy)", lambda: seg.to_display(vol.voxels, vol.meta.units))
        timed("predict, cold batch shapes", lambda: seg.predict(disp))
        timed("predict, warm", lambda: seg.predict(disp))
        timed("segment_study (window + predict + grade), warm", lambda: segment_study(seg, vol))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pack", type=Path)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--heldout", type=Path)
    ap.add_argument("--out", type=Path, default=Path("."))
    ap.add_argument("--device", default="cuda", help="cpu only to try the script itself")
    ap.add_argument("--fp16-only", action="store_true", help="time the fp16 variants only")
    ap.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN autotune per input shape")
    ap.add_argument("--study-profile", action="store_true", help="only time a study's stages")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (network only)")
    ap.add_argument("-n", type=int, default=1024, help="slices per throughput run")
    a = ap.parse_args()
    if a.pack:
        pack(a.pack, a.data)
        return 0
    import torch

    torch.backends.cudnn.benchmark = a.cudnn_benchmark
    res = {"device": torch.cuda.get_device_name(0) if a.device != "cpu" else "cpu", "torch": torch.__version__,
           "cudnn_benchmark": a.cudnn_benchmark}
    print(res, flush=True)
    if a.study_profile:
        res["study_profile"] = study_profile(a.device)
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "study_profile.json").write_text(json.dumps(res, indent=2, default=float))
        return 0
    if a.heldout and a.heldout.exists():
        res["precision"] = precision_check(a.heldout, a.device)
        p = res["precision"]
        keys = ["semiseg_infection_dice", "semiseg_ggo_dice", "semiseg_consolidation_dice",
                "infection_slices_infection_dice", "infection_slices_lung_dice"]
        print(f"{'held-out metric':34s} {'cpu card':>9s} {'gpu fp32':>9s} {'gpu fp16':>9s}")
        for k in keys:
            print(f"{k:34s} {p['cpu_record'][k]:9.4f} {p['fp32'][k]:9.4f} {p['fp16'][k]:9.4f}")
        print(f"label agreement fp16 vs fp32: {p['label_agreement_fp16_vs_fp32']:.5f}", flush=True)
    res["throughput"] = throughput(a.n, min(256, a.n), a.device, a.fp16_only)
    print(f"{'what':34s} {'fp16':>5s} {'NHWC':>5s} {'slices/s':>10s}")
    for r in res["throughput"]:
        print(f"{r['what']:34s} {str(r['fp16']):>5s} {str(r['channels_last']):>5s} {r['slices_per_s']:10.0f}")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "gpu_check.json").write_text(json.dumps(res, indent=2, default=float))
    if a.compile:
        res["compiled"] = compiled_network()
        print(f"torch.compile network only 256x256 batch 256 fp16 NHWC: {res['compiled']['slices_per_s']:.0f} "
              f"slices/s after {res['compiled']['compile_seconds']:.0f} s of compiling", flush=True)
    (a.out / "gpu_check.json").write_text(json.dumps(res, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
