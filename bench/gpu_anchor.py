"""What the body mask and the lung-air anchor cost on a GPU (both run on the host): a 300 x 512 x 512 HU
study held in memory (the bench's phantom, with an abdomen), segmented and graded with each of them on and
off. Prints a table of the median of 3 runs. Usage: python bench/gpu_anchor.py [--device cuda]"""

import argparse
import statistics
import time

import numpy as np

from ctmodels.bench import STUDY_SPACING, study_volume
from ctmodels.lesion import LesionSegmenter
from ctmodels.pipeline import segment_study
from ctmodels.types import CTVolume, VolumeMeta


def study(slices: int = 300) -> CTVolume:
    """The bench's 300 x 512 x 512 phantom, with an abdomen, as HU in memory."""
    return CTVolume(study_volume(slices, abdomen=True), STUDY_SPACING, VolumeMeta(units="HU"))


def timings(seg: LesionSegmenter, vol: CTVolume, repeat: int = 3):
    """Median seconds of segment_study with the body mask and the air anchor off, body only, and both."""
    rows = []
    for body, anchor in [(False, False), (True, False), (True, True)]:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            rep = segment_study(seg, vol, body_only=body, air_anchor=anchor).report
            times.append(time.perf_counter() - t0)
        rows.append({"body_mask": body, "air_anchor": anchor, "seconds": statistics.median(times),
                     "involved_pct": rep.involved_pct})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--slices", type=int, default=300)
    args = ap.parse_args()
    vol = study(args.slices)
    seg = LesionSegmenter.from_pretrained(device=args.device)
    seg.predict(np.zeros((2, 512, 512), np.uint8))  # first use of the kernels
    print(f"device {seg.device}, half {seg.half}, study {vol.shape}")
    print("| body mask | air anchor | seconds (median of 3) | involved % |")
    print("| --- | --- | --- | --- |")
    for r in timings(seg, vol):
        print(f"| {r['body_mask']} | {r['air_anchor']} | {r['seconds']:.3f} | {r['involved_pct']:.2f} |")


if __name__ == "__main__":
    main()
