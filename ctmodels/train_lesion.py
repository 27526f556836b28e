"""Train the lesion UNet on the partially labelled COVID slice sets.

Loss, and why
-------------
Each pixel has a *set* of allowed classes (see :mod:`ctmodels.lesion_data`). The loss is

* **set cross-entropy**: ``-log(sum_{c in allowed} p_c)``. For fully labelled pixels this is
  ordinary cross-entropy; for partial labels (``{0,3}`` = "not a lesion" in COVID-SemiSeg,
  ``{1,2}`` = "infection" in the lung-infection set) it rewards any split of probability inside
  the set, so the model learns GGO vs consolidation only from slices that separate them, and
  lung vs background only from slices with a lung mask. Forcing a guess (e.g. treating
  unlabelled SemiSeg pixels as background) would teach the model that lung is background.
* **soft Dice** on the quantities each set defines: infection ``p1+p2`` everywhere, GGO and
  consolidation on multi-class slices, lung ``p1+p2+p3`` on slices with a lung mask. Dice
  counters the small size of lesions (consolidation covers ~2 % of pixels).

Augmentation: 90-degree rotations and flips (the SemiSeg slices are stored rotated), random
affine (scale 0.7-1.4, anisotropic, rotation +-20 degrees, shift), gamma, contrast, brightness,
Gaussian noise and blur. All on the batch in torch, on the training device. ``--intensity-aug weak``
narrows gamma, contrast and brightness (:data:`INTENSITY_AUGMENTATION`); ``--ema DECAY`` keeps an
exponential moving average of the weights and uses it as the result.

Recipes are compared on validation data only: ``--validate`` (one split carved out of the training
groups) or :func:`cv_fold` / :func:`pool_folds` (K folds over them; ``scripts/lesion_cv.py``).

Run: ``ctmodels train-lesion --data ../shared/data --out runs/lesion``, then
``python scripts/release_weights.py lesion-unet-effb0 runs/lesion ../shared/data`` to bundle the result.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from . import lesion_data as ld
from .errors import InvalidInputError
# the per-slice Dice of the held-out scores (``semiseg_<name>_dice`` for each of SEMISEG_SCORES), shared with
# ``ctmodels score``
from .mask_scores import SEMISEG_SCORES, dice_score, semiseg_dice  # noqa: F401
from .lesion_model import DEFAULT_PREPROCESSING, build_lesion_unet

log = logging.getLogger(__name__)


# Intensity augmentation ranges: gamma exp(+-g), contrast factor, brightness shift (image in [0, 1]).
INTENSITY_AUGMENTATION = {
    "strong": {"gamma": 0.4, "contrast": (0.75, 1.3), "brightness": 0.1},
    "weak": {"gamma": 0.1, "contrast": (0.9, 1.1), "brightness": 0.03},
}


def _augment(torch, img, bits, rng: np.random.Generator, out_size: int, intensity: str = "strong"):
    """img float [B,1,S,S] in [0,1], bits uint8 [B,S,S] -> augmented (img, bits) at out_size, on their device."""
    F = torch.nn.functional
    b = img.shape[0]
    # random 90-degree rotations and flips
    img_l, bits_l = [], []
    for i in range(b):
        k = int(rng.integers(4))
        x, y = torch.rot90(img[i], k, (1, 2)), torch.rot90(bits[i], k, (0, 1))
        if rng.random() < 0.5:
            x, y = torch.flip(x, (2,)), torch.flip(y, (1,))
        img_l.append(x)
        bits_l.append(y)
    img, bits = torch.stack(img_l), torch.stack(bits_l)
    # random affine
    theta = np.zeros((b, 2, 3), np.float32)
    for i in range(b):
        s = math.exp(rng.uniform(math.log(0.7), math.log(1.4)))
        asp = math.exp(rng.uniform(-0.15, 0.15))
        a = math.radians(rng.uniform(-20, 20))
        sx, sy = 1 / (s * asp), asp / s
        theta[i, 0] = [sx * math.cos(a), -sy * math.sin(a), rng.uniform(-0.15, 0.15)]
        theta[i, 1] = [sx * math.sin(a), sy * math.cos(a), rng.uniform(-0.15, 0.15)]
    grid = F.affine_grid(torch.from_numpy(theta).to(img.device), (b, 1, out_size, out_size), align_corners=False)
    img = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    bits_f = F.grid_sample(bits[:, None].float(), grid, mode="nearest", padding_mode="zeros",
                           align_corners=False)
    bits = bits_f[:, 0].round().to(torch.uint8)
    bits = torch.where(bits == 0, ld.BIT[ld.BACKGROUND], bits)  # outside the image: background (no host sync)
    # intensity
    r = INTENSITY_AUGMENTATION[intensity]
    for i in range(b):
        x = img[i].clamp(0, 1)
        x = x ** math.exp(rng.uniform(-r["gamma"], r["gamma"]))
        x = (x - 0.5) * rng.uniform(*r["contrast"]) + 0.5 + rng.uniform(-r["brightness"], r["brightness"])
        if rng.random() < 0.3:
            x = F.avg_pool2d(x[None], 3, 1, 1)[0]
        x = x + torch.randn_like(x) * rng.uniform(0, 0.04)
        img[i] = x.clamp(0, 1)
    return img, bits


def _loss(torch, logits, bits, multiclass):
    """Set cross-entropy + soft Dice (see module docstring). multiclass: bool tensor [B]."""
    p = torch.softmax(logits, 1)
    allowed = torch.stack([(bits >> c) & 1 for c in range(4)], 1).float()
    set_p = (p * allowed).sum(1).clamp_min(1e-6)
    ce = -torch.log(set_p).mean()

    def dice(prob, target, sel):
        if sel.sum() == 0:
            return prob.new_zeros(())
        prob, target = prob[sel], target[sel]
        inter = (prob * target).sum((1, 2))
        den = prob.sum((1, 2)) + target.sum((1, 2))
        return (1 - (2 * inter + 1) / (den + 1)).mean()

    infection_t = ((allowed[:, 0] == 0) & (allowed[:, 3] == 0)).float()
    every = torch.ones_like(multiclass)
    d = dice(p[:, 1] + p[:, 2], infection_t, every)
    d = d + dice(p[:, 1], (bits == ld.BIT[ld.GGO]).float(), multiclass)
    d = d + dice(p[:, 2], (bits == ld.BIT[ld.CONSOLIDATION]).float(), multiclass)
    lung_t = (bits != ld.BIT[ld.BACKGROUND]).float()
    d = d + dice(p[:, 1] + p[:, 2] + p[:, 3], lung_t, ~multiclass)
    return ce + 0.5 * d


def per_slice_scores(segmenter, semiseg_test: ld.SliceSet, infection_test: ld.SliceSet,
                     tta: bool = True) -> Dict[str, np.ndarray]:
    """Dice of every held-out slice, at each slice's native resolution: ``semiseg_<class>`` for
    infection, GGO and consolidation (NaN-free; a slice with neither reference nor prediction scores 1),
    ``semiseg_<class>_present`` (the class is in the reference), ``infection_slices_<infection|lung>``,
    ``involvement_error_pp`` and the lung-infection volume of each slice, ``infection_slices_volume``.
    ``tta``: flip TTA on every slice (the default of a single-slice ``predict``). The lung-infection
    slices (one size) go through the network as one batched stack, the SemiSeg slices (each its own
    size) one by one."""
    rows: Dict[str, list] = {f"semiseg_{k}{p}": [] for k in SEMISEG_SCORES
                             for p in ("", "_present")}
    for img, lab in semiseg_test.originals:
        pred = segmenter.predict(img, tta=tta).labels
        for name, (dice, present) in semiseg_dice(pred, lab).items():
            rows[f"semiseg_{name}"].append(dice)
            rows[f"semiseg_{name}_present"].append(present)
    rows.update(infection_slices_infection=[], infection_slices_lung=[], involvement_error_pp=[])
    stack = segmenter.predict(infection_test.images, units="display", tta=tta, keep_probabilities=False).labels
    for pred, bits in zip(stack, infection_test.allowed):
        ref_inf = bits == (ld.BIT[ld.GGO] | ld.BIT[ld.CONSOLIDATION])
        ref_lung = bits != ld.BIT[ld.BACKGROUND]
        rows["infection_slices_infection"].append(dice_score((pred == 1) | (pred == 2), ref_inf))
        rows["infection_slices_lung"].append(dice_score(pred > 0, ref_lung))
        # involvement error (percentage points of lung), for the severity calibration
        ref_pct = 100.0 * ref_inf.sum() / max(ref_lung.sum(), 1)
        pred_lung = (pred > 0).sum()
        pred_pct = 100.0 * ((pred == 1) | (pred == 2)).sum() / max(pred_lung, 1)
        rows["involvement_error_pp"].append(pred_pct - ref_pct)
    out = {k: np.asarray(v) for k, v in rows.items()}
    out["infection_slices_volume"] = np.asarray(infection_test.groups, dtype=int)
    return out


def summarise_scores(rows: Dict[str, np.ndarray]) -> Dict[str, float]:
    """The metrics of :func:`evaluate` from :func:`per_slice_scores`."""
    out: Dict[str, float] = {}
    for name in SEMISEG_SCORES:
        d, present = rows[f"semiseg_{name}"], rows[f"semiseg_{name}_present"]
        out[f"semiseg_{name}_dice"] = float(np.mean(d))
        out[f"semiseg_{name}_dice_nonempty"] = float(np.mean(d[present])) if present.any() else float("nan")
        out[f"semiseg_{name}_dice_absent_zero"] = float(np.mean(np.where(present, d, 0.0)))  # Inf-Net's tool
    out["semiseg_slices"] = len(rows["semiseg_infection"])
    out["infection_slices_infection_dice"] = float(np.mean(rows["infection_slices_infection"]))
    out["infection_slices_lung_dice"] = float(np.mean(rows["infection_slices_lung"]))
    out["infection_slices"] = len(rows["infection_slices_infection"])
    out["involvement_error_bias_pp"] = float(np.mean(rows["involvement_error_pp"]))
    out["involvement_error_sd_pp"] = float(np.std(rows["involvement_error_pp"]))
    return out


def evaluate(segmenter, semiseg_test: ld.SliceSet, infection_test: ld.SliceSet, tta: bool = True) -> Dict[str, float]:
    """Mean per-slice Dice on held-out slices (see :func:`per_slice_scores`)."""
    return summarise_scores(per_slice_scores(segmenter, semiseg_test, infection_test, tta=tta))


def bootstrap_interval(values, n: int = 10000, seed: int = 0, level: float = 0.95) -> List[float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampled with replacement)."""
    v = np.asarray(values, dtype=float)
    means = v[np.random.default_rng(seed).integers(0, len(v), size=(n, len(v)))].mean(axis=1)
    a = (1.0 - level) / 2.0
    return [float(np.quantile(means, a)), float(np.quantile(means, 1.0 - a))]


def uncertainty(rows: Dict[str, np.ndarray]) -> Dict:
    """How far the held-out means can be trusted: a 95 % bootstrap interval over the SemiSeg slices
    (it treats them as independent, which slices of one patient are not, so it is if anything too
    narrow), and the lung-infection Dice of each held-out volume (slices of one volume are too alike
    for a per-slice interval to mean much)."""
    out: Dict = {"method": "95 % percentile bootstrap of the per-slice mean, 10000 resamples of the SemiSeg "
                           "slices, seed 0; lung-infection Dice per held-out volume"}
    for name in SEMISEG_SCORES:
        out[f"semiseg_{name}_dice_ci95"] = [round(x, 4) for x in bootstrap_interval(rows[f"semiseg_{name}"])]
    vols = rows["infection_slices_volume"]
    ids = sorted(set(vols.tolist()))
    out["infection_slices_count_by_volume"] = {str(v): int((vols == v).sum()) for v in ids}
    for name in ("infection", "lung"):
        d = rows[f"infection_slices_{name}"]
        out[f"infection_slices_{name}_dice_by_volume"] = {str(v): round(float(np.mean(d[vols == v])), 4) for v in ids}
    return out


def validation_score(metrics: Dict[str, float]) -> float:
    """One number to choose checkpoints and recipes by: the three lesion Dice scores, equally weighted."""
    return float(np.mean([metrics["semiseg_ggo_dice"], metrics["semiseg_consolidation_dice"],
                          metrics["infection_slices_infection_dice"]]))


def with_involvement_error(pre: Dict, metrics: Dict[str, float]) -> Dict:
    """Preprocessing settings plus the held-out involvement error the severity module uses."""
    return {**pre, "involvement_error": {"bias_pp": round(metrics["involvement_error_bias_pp"], 3),
                                         "sd_pp": round(metrics["involvement_error_sd_pp"], 3),
                                         "measured_on": "held-out lung-infection volumes, per slice"}}


def check_recipe(batch_size: int, semiseg_share: float, ema: float, intensity: str) -> int:
    """Refuse settings the training loop cannot run; return how many COVID-SemiSeg slices each batch
    holds (both data sets must be in every batch)."""
    n_semi = int(round(batch_size * semiseg_share))
    if not 0 < n_semi < batch_size:
        raise InvalidInputError(f"--semiseg-share {semiseg_share} with batch size {batch_size} leaves one "
                                "data set out of every batch (expected a share that keeps both)")
    if intensity not in INTENSITY_AUGMENTATION:
        raise InvalidInputError(f"unknown intensity augmentation {intensity!r} (expected one of "
                                f"{', '.join(INTENSITY_AUGMENTATION)})")
    if not 0 <= ema < 1:
        raise InvalidInputError(f"--ema {ema} is not a decay in [0, 1) (0 = off)")
    return n_semi


class _Ema:
    """Exponential moving average of a model's weights and buffers (timm-style warm-up of the decay)."""

    def __init__(self, model, decay: float):
        import copy

        self.decay, self.updates = decay, 0
        self.model = copy.deepcopy(model).eval()
        for prm in self.model.parameters():
            prm.requires_grad_(False)

    def update(self, model) -> None:
        import torch

        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        with torch.no_grad():
            pairs = list(zip(self.model.state_dict().values(), model.state_dict().values()))
            floats = [(e, m) for e, m in pairs if e.dtype.is_floating_point]
            torch._foreach_lerp_([e for e, _ in floats], [m for _, m in floats], 1 - d)  # e += (1-d)(m-e)
            for e, m in pairs:
                if not e.dtype.is_floating_point:
                    e.copy_(m)


def _stateful(obj):
    """``obj`` if its state can be saved and restored (``state_dict``/``load_state_dict``), else None."""
    return obj if hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict") else None


def fit(model, semi_tr: ld.SliceSet, inf_tr: ld.SliceSet, *, steps: int, batch_size: int = 8, crop: int = 224,
        lr: float = 2e-3, seed: int = 0, device: str = "cpu", semiseg_share: float = 0.5, ema: float = 0.0,
        intensity: str = "strong", log_every: int = 25, checkpoint_every: int = 250,
        on_checkpoint: Optional[Callable] = None, state_path: Optional[Path] = None, state_every: int = 100,
        run_tag: str = "", progress: Optional[Callable] = None):
    """The training loop: AdamW, linear warm-up then cosine decay, mixed batches, the set loss.

    Returns ``(net, seconds)``: the trained model (its weight average with ``ema``), on ``device``, in
    eval mode. ``on_checkpoint(step, net)`` is called every ``checkpoint_every`` steps and at the end.
    The caller seeds torch (the model's initial weights); ``seed`` drives the batches and augmentation.
    ``state_path``: the run's whole state is saved there every ``state_every`` steps and at the end
    (:mod:`ctmodels.train_state`); a run started again with a state there goes on from it and ends
    with the same weights as a run never stopped. The caller deletes the file once it is done with it.
    An ``on_checkpoint`` with ``state_dict()``/``load_state_dict()`` has its own state saved and restored
    with the run's; ``run_tag`` names anything else outside these arguments that makes a run another
    one (say, its initial weights), so that no other run's state is resumed.
    ``progress(step, steps, loss)`` is called once where the run starts (step 0, or the step a resumed run goes
    on from; loss None) and after every step, with the loss on the steps that log it (else None), for a
    progress bar."""
    import torch

    from . import train_state

    n_semi = check_recipe(batch_size, semiseg_share, ema, intensity)
    tag = {"tag": run_tag} if run_tag else {}  # no tag: the key of runs saved before tags existed
    key = train_state.fingerprint(steps=steps, batch_size=batch_size, crop=crop, lr=lr, seed=seed,
                                  semiseg_share=semiseg_share, ema=ema, intensity=intensity,
                                  semiseg=semi_tr.names, infection=inf_tr.names, **tag)
    rng = np.random.default_rng(seed)
    model = model.to(device).to(memory_format=torch.channels_last)
    averaged = _Ema(model, ema) if ema else None
    net = averaged.model if averaged is not None else model  # what checkpoints see and fit returns
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(  # linear warm-up, then cosine decay to 2 %
        opt, lambda i: min(1.0, (i + 1) / warm) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps))))
    mean, std = DEFAULT_PREPROCESSING["mean"], DEFAULT_PREPROCESSING["std"]
    mc = torch.tensor([True] * n_semi + [False] * (batch_size - n_semi), device=device)
    done, before = 0, 0.0
    extra = _stateful(on_checkpoint)  # saved and restored with the run's state
    if state_path is not None:
        done, before = train_state.load_state(state_path, model=model, opt=opt, sched=sched, rng=rng,
                                              ema=averaged, key=key, extra=extra) or (0, 0.0)
    t0 = time.time() - before
    if progress is not None:
        progress(done, steps, None)
    model.train()
    for step in range(done + 1, steps + 1):
        i_s = rng.integers(len(semi_tr), size=n_semi)
        i_i = rng.integers(len(inf_tr), size=batch_size - n_semi)
        imgs = np.concatenate([semi_tr.images[i_s], inf_tr.images[i_i]])
        bits = np.concatenate([semi_tr.allowed[i_s], inf_tr.allowed[i_i]])
        x = torch.from_numpy(imgs).to(device).float()[:, None] / 255.0
        y = torch.from_numpy(bits).to(device)
        x, y = _augment(torch, x, y, rng, crop, intensity)
        x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
        loss = _loss(torch, model(x), y, mc)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if averaged is not None:
            averaged.update(model)
        shown = None
        if step % log_every == 0 or step == 1:
            shown = loss.item()
            log.info("step %d/%d loss %.4f lr %.2e %.0fs", step, steps, shown, sched.get_last_lr()[0], time.time() - t0)
        if progress is not None:
            progress(step, steps, shown)
        if on_checkpoint is not None and (step % checkpoint_every == 0 or step == steps):
            on_checkpoint(step, net)  # before the state is saved, so that the state holds what it did
            model.train()
        if state_path is not None and (step % state_every == 0 or step == steps):
            train_state.save_state(state_path, step=step, seconds=time.time() - t0, model=model, opt=opt,
                                   sched=sched, rng=rng, ema=averaged, key=key, extra=extra)
    return net.eval(), time.time() - t0


def load_sets(data_root: Path):
    """Both slice sets at the model's input size: ``(semiseg, lung_infection)``."""
    size = DEFAULT_PREPROCESSING["input_size"]
    return (ld.load_semiseg(Path(data_root) / "covid_semiseg_train", size),
            ld.load_infection_slices(Path(data_root) / "covid_ct_lung_infection_slices", size))


def load_split(data_root: Path):
    """Load both slice sets and split off the held-out test groups: ``(semi_tr, inf_tr, semi_te, inf_te)``.

    Held out: every fourth SemiSeg group of five slice numbers (offset 3), every fifth lung-infection
    volume (offset 4). Everything that trains or chooses anything uses only the first two."""
    semi, infs = load_sets(data_root)
    semi_tr, semi_te = ld.split_by_group(semi, every=4, offset=3)
    inf_tr, inf_te = ld.split_by_group(infs)
    for name, s, need in (("covid_semiseg_train", semi_te, "4 groups of 5 consecutive slice numbers"),
                          ("covid_ct_lung_infection_slices", inf_te, "5 volumes")):
        if len(s) == 0:
            raise InvalidInputError(f"too little data to hold out a test split by group: at least {need} "
                                    "are needed", Path(data_root) / name)
    return semi_tr, inf_tr, semi_te, inf_te


def save_training_pack(data_root: Path, dest: Path, drop_every: int = 0):
    """Write the training slices of ``data_root`` (``load_split``'s first two) to one file, with the record
    of the held-out split but not its slices: ``train(pack=dest)`` trains from it on a machine without the
    data folder (a lent GPU), and :func:`reevaluate` measures the result on the held-out split here.
    ``drop_every`` N > 0 leaves out every N-th lung-infection slice (to fit a size limit; adjacent slices of
    a volume are nearly alike). Returns the training sets written."""
    semi_tr, inf_tr, semi_te, inf_te = load_split(data_root)
    if drop_every:
        inf_tr = inf_tr.subset([i for i in range(len(inf_tr)) if i % drop_every != drop_every - 1])
    ld.save_slice_sets(Path(dest), {"semiseg": semi_tr, "infection": inf_tr},
                       meta={"held_out": _split_record(semi_te, inf_te), "drop_every": drop_every})
    return semi_tr, inf_tr


def load_training_pack(path: Path):
    """``(semi_tr, inf_tr, held_out_record)`` from a :func:`save_training_pack` file."""
    sets, meta = ld.load_slice_sets(Path(path), with_meta=True)
    if "held_out" not in meta or not {"semiseg", "infection"} <= set(sets):
        raise InvalidInputError("expected a training pack written by save_training_pack (scripts/lesion_cv.py "
                                "pack), with the record of its held-out split", path)
    return sets["semiseg"], sets["infection"], meta["held_out"]


STATE_FILE = "training-state.safetensors"  # in the output folder while a run is unfinished


class _BestCheckpoint:
    """The best-scoring checkpoint so far by ``score(net)`` (ties keep the earlier) and every score; without
    a ``score`` it keeps nothing (the run's result is then its last weights). Its state, best weights
    included, travels with the run's state (:func:`fit`)."""

    def __init__(self, score: Optional[Callable] = None):
        self.score, self.history, self.best = score, [], None

    def __call__(self, step: int, net) -> None:
        if self.score is None:
            return
        value = self.score(net)
        self.history.append({"step": step, "score": round(value, 4)})
        log.info("step %d validation score %.4f", step, value)
        if self.best is None or value > self.best["score"]:
            self.best = {"score": value, "step": step,
                         "weights": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}}

    def state_dict(self) -> Dict:
        if self.best is None:
            return {"history": self.history}
        return {"history": self.history, "best_score": self.best["score"], "best_step": self.best["step"],
                **{f"best/{k}": v for k, v in self.best["weights"].items()}}

    def load_state_dict(self, state: Dict) -> None:
        self.history = list(state["history"])
        self.best = None
        if "best_step" in state:
            self.best = {"score": state["best_score"], "step": state["best_step"],
                         "weights": {k[5:]: v for k, v in state.items() if k.startswith("best/")}}


def train(
    data_root: Optional[Path],
    out_dir: Path,
    steps: int = 2400,
    batch_size: int = 8,
    crop: int = 224,
    lr: float = 2e-3,
    seed: int = 0,
    threads: Optional[int] = None,
    device: str = "cpu",
    log_every: int = 25,
    checkpoint_every: int = 250,
    validate: bool = False,
    semiseg_share: float = 0.5,
    init: Optional[Path] = None,
    ema: float = 0.0,
    intensity: str = "strong",
    state_every: int = 100,
    pack: Optional[Path] = None,
    progress: Optional[Callable] = None,
) -> Dict[str, float]:
    """Train and save ``out_dir`` (config.json, model.safetensors, preprocessing.json, training.json).

    ``validate``: also carve a validation split out of the *training* groups (one SemiSeg group of
    five slice numbers, every eighth lung-infection volume), score it at every checkpoint (mean of
    GGO, consolidation and infection Dice, without TTA) and keep the best checkpoint. This is what
    comparing training recipes must use: the held-out test split is measured once, at the end.

    ``semiseg_share``: the share of each batch drawn from COVID-SemiSeg, the only slices that
    separate GGO from consolidation (the rest come from the lung-infection set).

    ``init``: a trained folder (safetensors) to continue from instead of random weights - longer
    training in stages. It must have held out the same slices (and, with ``validate``, the same
    validation slices), so that neither split was ever trained on; with ``validate`` its weights
    are scored first (step 0) and stay the result if no later checkpoint beats them.

    ``ema``: keep an exponential moving average of the weights with this decay (0 = off) and use the
    average as the result (checkpoints, validation and the saved weights).

    ``intensity``: ``"strong"`` or ``"weak"`` intensity augmentation (:data:`INTENSITY_AUGMENTATION`).

    A stopped run goes on from where it was: its whole state, the best checkpoint so far included, is
    saved every ``state_every`` steps in ``out_dir``/:data:`STATE_FILE` and resumed by the same call
    (:func:`fit`); the file is deleted once the run is done.

    ``pack``: train on the slices of a :func:`save_training_pack` file instead of ``data_root`` (the same
    slices, on a machine without the data folder). The held-out split is not in it, so nothing is measured:
    the record names the split and :func:`reevaluate` (``scripts/release_weights.py``) measures it later.
    ``progress``: passed to :func:`fit` (the CLI's progress bar).
    Returns the held-out metrics, or ``{}`` with ``pack``."""
    import torch

    from .lesion import LesionSegmenter

    n_semi = check_recipe(batch_size, semiseg_share, ema, intensity)  # before any data is loaded
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    if pack is not None:
        source = f"--pack {pack}"
        semi_tr, inf_tr, held = load_training_pack(Path(pack))
        semi_te = inf_te = None
    else:
        source = f"--data {data_root}"
        data_root = Path(data_root)
        semi_tr, inf_tr, semi_te, inf_te = load_split(data_root)
        held = _split_record(semi_te, inf_te)
    semi_va = inf_va = None
    if validate:
        semi_tr, semi_va = ld.split_by_group(semi_tr, every=8, offset=1)
        inf_tr, inf_va = ld.split_by_group(inf_tr, every=8, offset=2)
        if len(semi_va) == 0 or len(inf_va) == 0:
            raise InvalidInputError("too little data to carve a validation split out of the training groups",
                                    pack or data_root)
        log.info("validation: %d semiseg + %d infection slices", len(semi_va), len(inf_va))
    log.info("train: %d semiseg + %d infection slices; held out: %d + %d", len(semi_tr), len(inf_tr),
             len(held["covid_semiseg_train"]), held["covid_ct_lung_infection_slices_count"])

    model = build_lesion_unet()
    init_record = None
    if init is not None:
        init_record = _load_init(model, Path(init), Path(out_dir), held, semi_va, inf_va)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / STATE_FILE
    score = None
    if validate:
        def score(net) -> float:
            return validation_score(evaluate(LesionSegmenter(net, DEFAULT_PREPROCESSING, device=device,
                                                             backend="torch"), semi_va, inf_va, tta=False))
    keeper = _BestCheckpoint(score)
    if validate and init_record is not None and not state_path.exists():
        keeper(0, model)  # the starting weights compete too (a resumed run has their score in its state)
    run_tag = json.dumps({"init": init_record and init_record["model_sha256"], "validate": validate,
                          "checkpoint_every": checkpoint_every})
    model, train_seconds = fit(model, semi_tr, inf_tr, steps=steps, batch_size=batch_size, crop=crop, lr=lr,
                               seed=seed, device=device, semiseg_share=semiseg_share, ema=ema,
                               intensity=intensity, log_every=log_every, checkpoint_every=checkpoint_every,
                               on_checkpoint=keeper, state_path=state_path, state_every=state_every,
                               run_tag=run_tag, progress=progress)
    if keeper.best is not None:
        model.load_state_dict(keeper.best["weights"])
    model = model.cpu()  # saved and measured from host memory, wherever it trained
    model.save_pretrained(str(out_dir))
    model.eval()
    record = {
        "command": f"ctmodels train-lesion {source} --out {out_dir} --steps {steps} "
                   f"--batch-size {batch_size} --seed {seed} --semiseg-share {semiseg_share:g} --lr {lr:g}"
                   f" --ema {ema:g} --intensity-aug {intensity}" + (f" --init {init}" if init is not None else "")
                   + (f" --device {device}" if device != "cpu" else ""),
        "steps": steps, "batch_size": batch_size, "semiseg_per_batch": n_semi, "crop": crop, "lr": lr, "seed": seed,
        "ema": ema, "intensity_augmentation": {"name": intensity, **INTENSITY_AUGMENTATION[intensity]},
        "device": device, **_device_name(device), "train_seconds": round(train_seconds, 1),
        "loss": "set cross-entropy over allowed classes + 0.5 x soft Dice (infection, GGO, "
                "consolidation, lung)",
        "train_slices": {"covid_semiseg_train": semi_tr.names,
                         "covid_ct_lung_infection_slices": len(inf_tr)},
        "held_out": held,
    }
    metrics = {}
    if semi_te is not None:
        rows = per_slice_scores(LesionSegmenter(model, DEFAULT_PREPROCESSING, device="cpu"), semi_te, inf_te)
        metrics = summarise_scores(rows)
        record.update(metrics_held_out=metrics, uncertainty_held_out=uncertainty(rows),
                      lung_infection_volumes=volume_record(*(s for s in (inf_tr, inf_va, inf_te) if s is not None)))
    if init_record is not None:
        record["init"] = init_record
    if validate:
        record["command"] += " --validate"
        record["validation"] = {
            **_split_record(semi_va, inf_va),
            "score": "mean of SemiSeg GGO, SemiSeg consolidation and lung-infection Dice, without TTA",
            "history": keeper.history, "best_step": keeper.best["step"]}
    (out_dir / "training.json").write_text(json.dumps(record, indent=2))
    pre = with_involvement_error(DEFAULT_PREPROCESSING, metrics) if metrics else DEFAULT_PREPROCESSING
    (out_dir / "preprocessing.json").write_text(json.dumps(pre, indent=2))
    state_path.unlink(missing_ok=True)  # the run is complete: nothing to go on from
    if metrics:
        log.info("held-out metrics: %s", json.dumps(metrics))
    else:
        log.info("trained from a pack: measure the held-out split with scripts/release_weights.py")
    return metrics


def _device_name(device: str) -> Dict[str, str]:
    """What trained, for the training record and its card: the GPU's name, or on the CPU how many threads
    torch used (``--threads``) and the processor's model where the system says it."""
    import torch

    if str(device).startswith("cuda"):
        return {"device_name": torch.cuda.get_device_name(torch.device(device))}
    if str(device).startswith("mps"):
        return {"device_name": "Apple GPU (MPS)"}
    n = torch.get_num_threads()
    model = _cpu_model()
    return {"device_name": f"{n} CPU thread{'s' if n > 1 else ''}" + (f" ({model})" if model else "")}


def _cpu_model() -> str:
    """The processor's model name from /proc/cpuinfo (Linux), else platform's; "" when neither says."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name") and ":" in line:
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor().strip()


def cv_fold(semi: ld.SliceSet, inf: ld.SliceSet, fold: int, folds: int, *, steps: int, seed: int = 0,
            device: str = "cpu", save_dir: Optional[Path] = None, state_path: Optional[Path] = None,
            **recipe) -> Dict[str, float]:
    """Cross-validation: train a fresh model on every fold of ``semi`` and ``inf`` but ``fold`` (folds are
    whole groups: fold ``f`` holds the groups whose rank mod ``folds`` is ``f``) and score it on ``fold``,
    at its last step, without TTA. Pass only non-held-out slices (``load_split``'s first two).

    The result also holds each validation SemiSeg slice's Dice (``semiseg_per_slice``: name -> infection,
    GGO, consolidation). ``save_dir``: also save the fold's model there (config.json, model.safetensors,
    preprocessing.json; loadable with ``LesionSegmenter.from_pretrained``), for out-of-fold analyses.
    ``state_path``: where the run keeps its state to go on after a stop (see :func:`fit`)."""
    import torch

    from .lesion import LesionSegmenter

    semi_tr, semi_va = ld.split_by_group(semi, every=folds, offset=fold)
    inf_tr, inf_va = ld.split_by_group(inf, every=folds, offset=fold)
    if not (len(semi_tr) and len(semi_va) and len(inf_tr) and len(inf_va)):
        raise InvalidInputError(f"too few groups for {folds}-fold cross-validation (fold {fold} or the rest is "
                                "empty)")
    torch.manual_seed(seed)
    net, seconds = fit(build_lesion_unet(), semi_tr, inf_tr, steps=steps, seed=seed, device=device,
                       state_path=state_path, **recipe)
    seg = LesionSegmenter(net, DEFAULT_PREPROCESSING, device=device, backend="torch")
    rows = per_slice_scores(seg, semi_va, inf_va, tta=False)
    metrics = summarise_scores(rows)
    metrics.update(fold=fold, train_seconds=round(seconds, 1), validation=_split_record(semi_va, inf_va),
                   semiseg_per_slice={n: [round(float(rows[f"semiseg_{k}"][i]), 4)
                                          for k in SEMISEG_SCORES]
                                      for i, n in enumerate(semi_va.names)})
    if save_dir is not None:
        save_dir = Path(save_dir)
        net.cpu().save_pretrained(str(save_dir))
        (save_dir / "preprocessing.json").write_text(json.dumps(DEFAULT_PREPROCESSING, indent=2))
    return metrics


def pool_folds(results: List[Dict]) -> Dict[str, float]:
    """Per-slice means over all folds' validation slices (folds weighted by their slice counts) and the
    validation score of the pooled means."""
    def pooled(key, count):
        n = sum(r[count] for r in results)
        return float(sum(r[key] * r[count] for r in results) / n)

    out = {f"semiseg_{k}_dice": pooled(f"semiseg_{k}_dice", "semiseg_slices")
           for k in SEMISEG_SCORES}
    out["infection_slices_infection_dice"] = pooled("infection_slices_infection_dice", "infection_slices")
    out["infection_slices_lung_dice"] = pooled("infection_slices_lung_dice", "infection_slices")
    out["semiseg_slices"] = sum(r["semiseg_slices"] for r in results)
    out["infection_slices"] = sum(r["infection_slices"] for r in results)
    out["score"] = validation_score(out)
    return out


def volume_record(*parts: ld.SliceSet) -> Dict:
    """How the lung-infection slices (all of them, in any number of parts) were grouped into volumes (the
    source documents 20 volumes; the groups come from jumps between consecutive slices): group count
    and the slices that form a group of one."""
    groups = np.concatenate([p.groups for p in parts])
    names = [n for p in parts for n in p.names]
    ids, counts = np.unique(groups, return_counts=True)
    single = sorted(names[int(np.flatnonzero(groups == g)[0])] for g, c in zip(ids, counts) if c == 1)
    return {"groups": int(len(ids)), "single_slice_groups": single}


def _split_record(semi: ld.SliceSet, inf: ld.SliceSet) -> Dict:
    """How training.json names a split (held-out or validation); compared again by ``--init``."""
    return {"covid_semiseg_train": semi.names,
            "covid_ct_lung_infection_slices_volumes": sorted(set(int(g) for g in inf.groups)),
            "covid_ct_lung_infection_slices_count": len(inf)}


def _same_split(recorded: Dict, expected: Dict) -> bool:
    return all(recorded.get(k) == v for k, v in expected.items())


def _load_init(model, folder: Path, out_dir: Path, held: Dict, semi_va, inf_va) -> Dict:
    """Load ``folder``'s weights into ``model`` (safetensors only) after checking that they were
    never trained on this run's held-out or validation slices; return what the record keeps."""
    from safetensors.torch import load_file

    from .hub import sha256_file

    weights, rec_path = folder / "model.safetensors", folder / "training.json"
    if not weights.is_file() or not rec_path.is_file():
        raise InvalidInputError("expected a trained lesion folder with model.safetensors and training.json",
                                folder)
    if out_dir.resolve() == folder.resolve():
        raise InvalidInputError("--out must differ from --init (the starting weights would be overwritten)",
                                folder)
    rec = json.loads(rec_path.read_text())
    if not _same_split(rec.get("held_out", {}), held):
        raise InvalidInputError("these weights held out other slices than this run does, so they may have "
                                "been trained on its held-out split", folder)
    if semi_va is not None and not _same_split(rec.get("validation", {}), _split_record(semi_va, inf_va)):
        raise InvalidInputError("these weights were not trained with the same --validate split, so they may "
                                "have been trained on its validation slices", folder)
    try:
        model.load_state_dict(load_file(str(weights)))
    except Exception as exc:  # missing/unexpected keys, wrong shapes, not safetensors
        raise InvalidInputError(f"not weights of this architecture ({type(exc).__name__})", weights) from None
    log.info("continuing from %s", folder)
    return {"folder": str(folder), "model_sha256": sha256_file(weights),
            "command": rec.get("command"), "steps": rec.get("steps"),
            "best_step": rec.get("validation", {}).get("best_step")}


def reevaluate(folder: Path, data_root: Path) -> Dict[str, float]:
    """Measure a trained folder again on its recorded held-out split with the current inference
    code (default: flip TTA on single slices) and without TTA; update training.json."""
    from .lesion import LesionSegmenter

    folder = Path(folder)
    rec = json.loads((folder / "training.json").read_text())
    semi, infs = load_sets(data_root)
    held = set(rec["held_out"]["covid_semiseg_train"])
    semi_te = semi.subset([i for i, n in enumerate(semi.names) if n in held])
    vols = set(rec["held_out"]["covid_ct_lung_infection_slices_volumes"])
    inf_te = infs.subset([i for i, g in enumerate(infs.groups) if int(g) in vols])
    seg = LesionSegmenter.from_pretrained(str(folder), device="cpu")
    rows = per_slice_scores(seg, semi_te, inf_te)
    metrics = summarise_scores(rows)
    no_tta = evaluate(seg, semi_te, inf_te, tta=False)
    rec["metrics_held_out"] = metrics
    rec["uncertainty_held_out"] = uncertainty(rows)
    rec["lung_infection_volumes"] = volume_record(infs)
    rec["metrics_held_out_without_tta"] = no_tta
    rec["evaluation"] = ("mean per-slice Dice at each slice's native size; flip TTA (4 passes) on single "
                         "slices is the default of LesionSegmenter.predict and was chosen before measuring")
    (folder / "training.json").write_text(json.dumps(rec, indent=2))
    pre = json.loads((folder / "preprocessing.json").read_text()) if (folder / "preprocessing.json").exists() \
        else dict(DEFAULT_PREPROCESSING)
    pre.pop("involvement_error", None)
    # studies (volumes) are segmented without TTA: their involvement error is the one without it
    (folder / "preprocessing.json").write_text(json.dumps(with_involvement_error(pre, no_tta), indent=2))
    return metrics
