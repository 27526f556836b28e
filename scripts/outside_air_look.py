"""Session 28's look (docs/lesion-experiments.md): does the lesion model's labelling of labelled 8-bit
lung-infection slices change when the air outside the body is set to another grey?

    python scripts/outside_air_look.py ../shared/data [WEIGHTS]

Only the volumes the model trained on (the held-out ones of its training.json are left out), so what it
measures is in-sample: how much the model leans on the outside grey where it knows the slices, not its accuracy.
The outside is the dark (< 80) area connected to the image's edge, minus the lung mask. Prints one row per grey:
mean per-slice infection and lung Dice, the share of lung labels outside the body, and the pooled % involved.
"""

import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ctmodels import lesion_data as ld  # noqa: E402
from ctmodels.lesion import LesionSegmenter  # noqa: E402
from ctmodels.train_lesion import dice_score as dice  # noqa: E402

GREYS = [("as stored", None), ("outside 0 (padding black)", 0), ("outside 30 (the slices' own median)", 30),
         ("outside 55 (-1024 HU in the HU window)", 55)]


def outside(img: np.ndarray, lung: np.ndarray, dark: int = 80) -> np.ndarray:
    lab, _ = ndi.label(img < dark)
    edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    return np.isin(lab, edge[edge > 0]) & ~lung


def main(data: str, weights: str = "lesion-unet-effb0") -> None:
    seg = LesionSegmenter.from_pretrained(weights)
    folder = Path(weights) if Path(weights).is_dir() else ROOT / "weights" / weights
    held = json.loads((folder / "training.json").read_text())["held_out"]  # the volumes it did not train on
    s = ld.load_infection_slices(Path(data) / "covid_ct_lung_infection_slices")
    s = s.subset(np.flatnonzero(~np.isin(s.groups, held["covid_ct_lung_infection_slices_volumes"])))
    lung_t = s.allowed != ld.BIT[ld.BACKGROUND]
    inf_t = s.allowed == (ld.BIT[ld.GGO] | ld.BIT[ld.CONSOLIDATION])
    out = np.stack([outside(im, lt) for im, lt in zip(s.images, lung_t)])
    print(f"{len(s)} slices of {len(np.unique(s.groups))} training volumes; outside the body: "
          f"{100 * out.mean():.1f} % of the pixels, median grey {np.median(s.images[out]):.0f}")
    print(f"{'outside':40s} {'infection Dice':>14s} {'lung Dice':>9s} {'lung labels outside':>19s} {'involved':>8s}")
    for name, grey in GREYS:
        x = s.images.copy()
        if grey is not None:
            x[out] = grey
        lab = seg.predict(x, units="display", batch_size=32).labels
        inf_p, lung_p = (lab == 1) | (lab == 2), lab > 0
        print(f"{name:40s} {np.mean([dice(p, t) for p, t in zip(inf_p, inf_t)]):14.4f} "
              f"{np.mean([dice(p, t) for p, t in zip(lung_p, lung_t)]):9.4f} "
              f"{100 * (lung_p & out).sum() / max(lung_p.sum(), 1):18.2f}% "
              f"{100 * inf_p.sum() / max(lung_p.sum(), 1):7.1f}%")
    print(f"{'truth':40s} {'':14s} {'':9s} {'':19s} {100 * inf_t.sum() / lung_t.sum():7.1f}%")


if __name__ == "__main__":
    main(*sys.argv[1:])
