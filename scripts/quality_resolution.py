"""Session 30's resolution and slice-spacing looks, session 36's patient-rotation look and session 37's slice-tilt
look (docs/quality-experiments.md): down to what in-plane pixel size, up to what slice spacing, up to what rotation
of the patient about the body's long axis and up to what tilt of the axial slices does the breath-hold verdict hold?

    python scripts/quality_resolution.py ../shared/data [--axis xy|z|rot|tilt] [--slope] [--phantoms 30]
        [--held-out 20]

Each base volume gets simulated area losses (mild 0, 0.05, 0.1; severe 0.4, 0.5, 0.6) with scanner variation at
its own spacing, is block-averaged in-plane (``xy``) or along z (``z``) to the spacing nearest each target, or
turned in-plane by each target angle in degrees (``rot``: linear interpolation, air outside), or resliced with its
axial slices tilted about the left-right axis by each target angle (``tilt``: in mm about the volume's centre, same
grid, linear interpolation, the part outside the source filled as ``--fill`` says), and is judged by the bundled
model. Prints, per cohort and target, the mean spacing reached, the mild pass rate and the severe caught rate (an
undetermined case counts against both), and the undetermined share. The training phantoms choose; the held-out
phantoms and chest_cta_crop are reported only.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ctmodels import quality as Q  # noqa: E402
from ctmodels.preprocessing import block_mean  # noqa: E402
from ctmodels.train_quality import random_phantom, real_volumes  # noqa: E402
from ctmodels.types import CTVolume  # noqa: E402

TARGETS = {"xy": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "z": [1.25, 2.5, 5.0, 7.5, 10.0], "rot": [0, 5, 10, 15, 20, 30],
           "tilt": [-30, -20, -10, 0, 10, 20, 30]}
UNIT = {"xy": "pixel mm", "z": "slice spacing mm", "rot": "rotation degrees", "tilt": "tilt degrees"}
MILD, SEVERE = [0.0, 0.05, 0.1], [0.4, 0.5, 0.6]


def block_mean_z(hu: np.ndarray, k: int) -> np.ndarray:
    """Mean over groups of k whole slices (the top slices that do not fill a group are dropped)."""
    if k == 1:
        return hu
    z = hu.shape[0] // k * k
    return hu[:z].reshape(z // k, k, *hu.shape[1:]).mean(axis=1)


def tilted(hu: np.ndarray, spacing, deg: float, fill: str = "nearest") -> np.ndarray:
    """``hu[z, y, x]`` resliced on the same grid with its axial slices tilted by ``deg`` about the left-right (x)
    axis, in mm about the volume's centre, with linear interpolation; what lies outside the source is the nearest
    source voxel (``fill="nearest"``) or air (``"air"``, -1000 HU: the first run of the look, which made air next to
    the trachea on the top slices)."""
    from scipy import ndimage

    t = np.radians(deg)
    rot = np.array([[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0], [0.0, 0.0, 1.0]])
    s = np.asarray(spacing, dtype=float)
    m = np.diag(1 / s) @ rot @ np.diag(s)  # output index -> input index, through mm
    c = (np.asarray(hu.shape) - 1) / 2
    mode = {"air": "constant", "nearest": "nearest"}[fill]
    return ndimage.affine_transform(hu.astype(np.float32), m, offset=c - m @ c, order=1, mode=mode, cval=-1000.0)


def judge(checker, hu, spacing, rng, axis="xy", fill="nearest"):
    """One row per (loss, target): the spacing reached and the verdict."""
    rows = []
    track = Q.locate_trachea(hu, spacing)
    for loss in MILD + SEVERE:
        sim = Q.acquisition(Q.simulate_expiration(hu, spacing, loss, track), rng)
        for t in TARGETS[axis]:
            if axis == "rot":  # the patient turned about the body's long axis: the image turned in its plane
                from scipy import ndimage

                turned = ndimage.rotate(sim, t, axes=(1, 2), reshape=False, order=1, cval=-1000.0) if t else sim
                vol, reached = CTVolume(turned.astype(np.float32), spacing), t
            elif axis == "tilt":  # an oblique series, a tilted gantry: the slices cut the body aslant
                vol, reached = CTVolume(tilted(sim, spacing, t, fill) if t else sim.astype(np.float32), spacing), t
            elif axis == "xy":
                k = max(1, int(round(t / spacing[1])))
                vol = CTVolume(block_mean(sim, k, k), (spacing[0], spacing[1] * k, spacing[2] * k))
                reached = spacing[1] * k
            else:
                k = max(1, int(round(t / spacing[0])))
                vol = CTVolume(block_mean_z(sim, k).astype(np.float32), (spacing[0] * k, spacing[1], spacing[2]))
                reached = spacing[0] * k
            r = checker.predict(vol)
            rows.append({"loss": loss, "target": t, "reached": reached, "verdict": r.verdict,
                         "p": r.probability_fail})
    return rows


def table(name, rows, axis):
    print(f"\n{name}")
    print(f"| target | mean {UNIT[axis]} | mild pass rate | severe caught rate | undetermined | n |")
    print("| --- | --- | --- | --- | --- | --- |")
    for t in TARGETS[axis]:
        sub = [r for r in rows if r["target"] == t]
        mild = [r["verdict"] == Q.PASS for r in sub if r["loss"] in MILD]
        severe = [r["verdict"] == Q.FAIL for r in sub if r["loss"] in SEVERE]
        und = [r["verdict"] == Q.UNDETERMINED for r in sub]
        print(f"| {t:g} | {np.mean([r['reached'] for r in sub]):.2f} | {np.mean(mild):.3f} | {np.mean(severe):.3f} "
              f"| {np.mean(und):.3f} | {len(sub)} |")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("--phantoms", type=int, default=30)
    ap.add_argument("--held-out", type=int, default=20)
    ap.add_argument("--axis", choices=("xy", "z", "rot", "tilt"), default="xy",
                    help="coarsen the pixels or the slices, turn the patient, or tilt the slices")
    ap.add_argument("--slope", action="store_true", help="phantoms' trachea slopes backwards by 10-25 degrees")
    ap.add_argument("--fill", choices=("nearest", "air"), default="nearest",
                    help="tilt: what fills the part outside the source (air: the first run, which made air)")
    args = ap.parse_args(argv)
    checker = Q.BreathHoldChecker.from_pretrained()
    rng = np.random.default_rng(0)
    train = []
    def phantom(seed):
        slope = float(np.random.default_rng([seed, 1]).uniform(10, 25)) if args.slope else 0.0
        return random_phantom(seed, slope_deg=slope)

    for s in range(args.phantoms):
        hu, sp = phantom(s)
        train += judge(checker, hu, sp, rng, args.axis, args.fill)
        print(f"phantom {s} done", file=sys.stderr)
    table("training phantoms (choose)", train, args.axis)
    held = []
    for s in range(1000, 1000 + args.held_out):
        hu, sp = phantom(s)
        held += judge(checker, hu, sp, rng, args.axis, args.fill)
    table("held-out phantoms (report only)", held, args.axis)
    real = real_volumes(args.data)
    if "chest_cta_crop" in real:
        rows = []
        for _ in range(5):
            rows += judge(checker, *real["chest_cta_crop"], rng, args.axis, args.fill)
        table("chest_cta_crop, 5 draws (report only)", rows, args.axis)


if __name__ == "__main__":
    main()
