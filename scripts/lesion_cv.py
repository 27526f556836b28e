"""Compare lesion training recipes by K-fold cross-validation over the non-held-out slices.

The held-out test split is never loaded here: ``pack`` writes only the training slices (so they can be
carried to a GPU machine without the test split), and ``run`` with ``--data`` drops the held-out groups
first. Each (recipe, fold) run trains a fresh model on the other folds and is scored once, at its last
step, without TTA; a recipe's score pools all folds' validation slices.

    python scripts/lesion_cv.py pack --data ../shared/data --out trainval.npz.xz
    python scripts/lesion_cv.py run --pack trainval.npz.xz --recipes A,B,C --folds 4 --jobs 12 \\
        --device cuda --out cv.json

A cross-validation can be run in parts (``--only-folds 0``, on a 2-core CPU two runs take about two
hours): with an existing ``--out`` file of the same design (folds, steps, recipe settings) the runs it
already holds are kept and skipped, and the pooled table appears once every fold of a recipe is done.
Each unfinished run saves its whole training state every 100 steps in ``<out>.states/``; a run stopped
part-way goes on from its last state when the same command is started again, and ends with the same
model as a run never stopped. A run's state is deleted once its result is in the record.

``offset`` uses the fold models that ``run --save-models DIR`` kept: each non-held-out SemiSeg slice is
predicted (flip TTA, the single-slice default) by the model of the fold that left it out, and a
consolidation / GGO decision offset is fitted on these out-of-fold predictions with a nested estimate of
its gain (``ctmodels.lesion_offset``; rule in PLAN4 of the issue-3 notes):

    python scripts/lesion_cv.py offset --data ../shared/data --models DIR --recipe A --folds 4 \
        --out offset.json

``size`` does the same for the network input size of single slices (``ctmodels.nested_choice``; rule in
PLAN5): every out-of-fold slice is segmented at each size and scored by its infection, GGO and
consolidation Dice.

``paired`` applies plan 8's rule to two arms of one recipe run with the same seeds (records of ``run``):

    python scripts/lesion_cv.py paired --recipe C --base R2400s0.json,R2400s1.json,R2400s2.json \
        --arm R4800s0.json,R4800s1.json,R4800s2.json

and plan 9's, one seed paired, with the SD of one run's pooled score that plan 8 measured:

    python scripts/lesion_cv.py paired --recipe C --base R4800s0.json --arm R9600s0.json --seed-sd 0.0055
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import signal
import sys
import time
from pathlib import Path
from typing import Optional

from ctmodels import lesion_data as ld
from ctmodels import train_lesion as tl
from ctmodels import train_state
from ctmodels.errors import CTModelsError

# Pre-registered in the issue-3 notes before any result; each costs the same CPU time as the default.
RECIPES = {
    "A": {"semiseg_share": 0.75, "lr": 2e-3},
    "B": {"semiseg_share": 0.75, "lr": 2e-3, "ema": 0.998},
    "C": {"semiseg_share": 0.75, "lr": 2e-3, "intensity": "weak"},
}
COMMON = {"batch_size": 8, "crop": 224}  # and the seed, 0 unless `run --seed` (design())
# Pre-registered (PLAN4): a decision offset ships only with a nested gain of at least this much, all folds done.
MIN_GAIN = 0.02
_SETS = {}


def write_record(path, record) -> None:
    """Write ``record`` as JSON to ``path`` atomically: a kill mid-write (SIGTERM ends a run at once) leaves the
    previous record whole, not a truncated file that would lose every fold already done."""
    train_state.write_atomically(path, lambda tmp: tmp.write_text(json.dumps(record, indent=2)))


class WorkerError(RuntimeError):
    """A training worker could not load the data."""


def load_trainval(data=None, pack=None):
    """The non-held-out SemiSeg and lung-infection slices, from the data folder or a pack."""
    if pack:
        semi, inf, _ = tl.load_training_pack(Path(pack))
        return semi, inf
    semi_tr, inf_tr, _, _ = tl.load_split(Path(data))
    return semi_tr, inf_tr


def _init(data, pack, threads):
    import torch

    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s [{os.getpid()}] %(message)s", force=True)
    try:
        _SETS["semi"], _SETS["inf"] = load_trainval(data, pack)
    except Exception as exc:  # kept for the first task: a worker that dies here is restarted forever
        where = "" if isinstance(exc, CTModelsError) else f"{data or pack}: {type(exc).__name__}: "
        _SETS["error"] = f"{where}{exc}"


def design(recipe: str, seed: int = 0) -> dict:
    """A recipe's full settings: the common ones, its own, and the seed (``run --seed``; default 0)."""
    return {**COMMON, **RECIPES[recipe], "seed": seed}


def _run_name(recipe: str, fold: int, folds: int, steps: int, seed: int) -> str:
    return f"{recipe}-fold{fold}-of{folds}-{steps}steps" + (f"-seed{seed}" if seed else "")


def fold_model_dir(models, recipe: str, fold: int, folds: int, steps: int, seed: int = 0) -> Path:
    """Where ``run --save-models`` keeps a fold's model and ``offset`` looks for it."""
    return Path(models) / _run_name(recipe, fold, folds, steps, seed)


def fold_state_path(out, recipe: str, fold: int, folds: int, steps: int, seed: int = 0) -> Path:
    """Where a fold run keeps its training state until its result is in the record at ``out``: a run
    stopped before (a kill, the machine taken back) goes on from there when started again."""
    return Path(f"{out}.states") / f"{_run_name(recipe, fold, folds, steps, seed)}.safetensors"


def _task(job):
    if "error" in _SETS:
        raise WorkerError(_SETS["error"])
    name, fold, folds, steps, seed, device, log_every, save_models, out = job
    logging.getLogger("ctmodels").info("recipe %s fold %d/%d starts", name, fold, folds)
    save_dir = fold_model_dir(save_models, name, fold, folds, steps, seed) if save_models else None
    m = tl.cv_fold(_SETS["semi"], _SETS["inf"], fold, folds, steps=steps, device=device, save_dir=save_dir,
                   state_path=fold_state_path(out, name, fold, folds, steps, seed), log_every=log_every,
                   **design(name, seed))
    return name, m


def summarise(results, folds):
    """Pooled metrics per recipe whose folds are all done."""
    out = {}
    for name in sorted({r["recipe"] for r in results}):
        rs = sorted((r for r in results if r["recipe"] == name), key=lambda r: r["fold"])
        if len(rs) == folds:
            out[name] = {**tl.pool_folds(rs), "fold_scores": [round(tl.validation_score(r), 4) for r in rs]}
    return out


def table(summary):
    lines = ["| recipe | GGO | consolidation | infection (SemiSeg) | infection (lung-inf.) | lung | score | "
             "per-fold scores |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, s in summary.items():
        lines.append(f"| {name} | {s['semiseg_ggo_dice']:.3f} | {s['semiseg_consolidation_dice']:.3f} | "
                     f"{s['semiseg_infection_dice']:.3f} | {s['infection_slices_infection_dice']:.3f} | "
                     f"{s['infection_slices_lung_dice']:.3f} | {s['score']:.4f} | "
                     f"{', '.join(f'{x:.3f}' for x in s['fold_scores'])} |")
    return "\n".join(lines)


def cmd_pack(args):
    semi, inf = tl.save_training_pack(Path(args.data), Path(args.out), drop_every=args.drop_every)
    print(f"{args.out}: {len(semi)} SemiSeg + {len(inf)} lung-infection training slices "
          f"({Path(args.out).stat().st_size / 1e6:.1f} MB)")


def earlier_record(path: Path, folds: int, steps: int, seed: int = 0) -> dict:
    """The record of an earlier part of the same cross-validation at ``path``, or an empty one.

    Refuses (SystemExit) a record of another design: other folds, steps, seed or recipe settings."""
    fresh = {"recipes": {}, "folds": folds, "steps": steps, "results": [], "summary": {}}
    if not path.exists():
        return fresh
    try:
        rec = json.loads(path.read_text())
        same = rec["folds"] == folds and rec["steps"] == steps and all(
            rec["recipes"][n] == design(n, seed) for n in rec["recipes"])
    except (ValueError, KeyError, TypeError):
        raise SystemExit(f"{path}: not a cross-validation record of this script; choose another --out")
    if not same:
        raise SystemExit(f"{path}: holds a cross-validation of another design (folds, steps, seed or recipe "
                         "settings differ); choose another --out")
    return rec


def cmd_run(args):
    names = args.recipes.split(",")
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise SystemExit(f"unknown recipe(s) {unknown}; expected some of {sorted(RECIPES)}")
    fold_ids = range(args.folds) if args.only_folds is None else args.only_folds
    if any(not 0 <= f < args.folds for f in fold_ids):
        raise SystemExit(f"--only-folds must name folds 0..{args.folds - 1}")
    record = earlier_record(Path(args.out), args.folds, args.steps, args.seed)
    done = {(r["recipe"], r["fold"]) for r in record["results"]}
    jobs = [(n, f, args.folds, args.steps, args.seed, args.device, args.log_every, args.save_models, args.out)
            for n in names for f in fold_ids if (n, f) not in done]
    print(f"{len(done)} run(s) already in {args.out}; {len(jobs)} to do", flush=True)
    if not jobs:
        print(table(record["summary"]))
        return
    record["recipes"].update({n: design(n, args.seed) for n in names})
    threads = args.threads or max(1, (os.cpu_count() or 1) // max(1, args.jobs))
    # a kill of this process ends its workers too (the pool's context exit terminates them)
    before = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        _run_pool(args, jobs, threads, record)
    except WorkerError as exc:
        raise SystemExit(str(exc)) from None
    finally:
        signal.signal(signal.SIGTERM, before)
    print(table(record["summary"]))


def _run_pool(args, jobs, threads, record):
    """Run the jobs in worker processes; write ``record`` to ``--out`` as each one ends."""
    t0 = t_last = time.time()
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.jobs, initializer=_init, initargs=(args.data, args.pack, threads)) as pool:
        for name, m in pool.imap_unordered(_task, jobs):
            record["results"].append({"recipe": name, "device": args.device, **m})
            record["summary"] = summarise(record["results"], args.folds)
            record["seconds"] = round(record.get("seconds", 0) + time.time() - t_last, 1)
            t_last = time.time()
            write_record(args.out, record)
            fold_state_path(args.out, name, m["fold"], args.folds, args.steps, args.seed).unlink(missing_ok=True)
            print(f"done {name} fold {m['fold']}: score {tl.validation_score(m):.4f} "
                  f"({m['train_seconds']:.0f} s training, {time.time() - t0:.0f} s so far)", flush=True)


def fold_models(semi, models: Path, recipe: str, folds: int, steps: int):
    """-> ``(fold, segmenter, the SemiSeg slices of semi that fold left out)`` for every fold whose saved
    model exists (torch backend: its input size can be changed)."""
    from ctmodels.lesion import LesionSegmenter

    for f in range(folds):
        folder = fold_model_dir(models, recipe, f, folds, steps)
        if (folder / "model.safetensors").exists():
            seg = LesionSegmenter.from_pretrained(str(folder), device="cpu", backend="torch")
            yield f, seg, ld.split_by_group(semi, every=folds, offset=f)[1]


def out_of_fold_slices(semi, models: Path, recipe: str, folds: int, steps: int):
    """Each SemiSeg slice of ``semi`` predicted by the saved model of the fold that left it out, as
    ``lesion_offset.ScoredSlice``; folds whose model is missing are skipped. -> (slices, folds found)."""
    from ctmodels import lesion_offset as lo

    slices, found = [], []
    for f, seg, semi_va in fold_models(semi, models, recipe, folds, steps):
        found.append(f)
        for name, (img, lab) in zip(semi_va.names, semi_va.originals):
            r = seg.predict(img, keep_probabilities=True)
            slices.append(lo.ScoredSlice(name, f, r.labels, lo.log_ratio(r.probabilities), lab))
    return slices, found


def lesion_score(labels, reference) -> float:
    """(infection Dice + GGO Dice + consolidation Dice) / 3 of one slice (a class absent from both scores 1)."""
    return sum(dice for dice, _ in tl.semiseg_dice(labels, reference).values()) / 3


def out_of_fold_size_scores(semi, models: Path, recipe: str, folds: int, steps: int, sizes):
    """:func:`lesion_score` of each SemiSeg slice of ``semi`` segmented at every network input size in
    ``sizes`` (the single-slice default, flip TTA) by the fold model that left it out.
    -> ``({size: [score per slice]}, [fold per slice], [slice names], folds found)``."""
    scores = {s: [] for s in sizes}
    fold_of, names, found = [], [], []
    for f, seg, semi_va in fold_models(semi, models, recipe, folds, steps):
        found.append(f)
        for size in sizes:
            seg.preprocessing["input_size"] = size
            scores[size] += [lesion_score(seg.predict(img).labels, lab) for img, lab in semi_va.originals]
        fold_of += [f] * len(semi_va)
        names += semi_va.names
    return scores, fold_of, names, found


def _enough_folds(args, found):
    if len(found) < 2:
        raise SystemExit(f"{args.models}: found the models of {len(found)} fold(s) of recipe {args.recipe} "
                         f"({args.folds} folds, {args.steps} steps); the nested estimate needs at least 2")
    return len(found) == args.folds


def cmd_offset(args):
    import torch

    from ctmodels import lesion_offset as lo

    torch.set_num_threads(args.threads)
    semi, _ = load_trainval(data=args.data)
    slices, found = out_of_fold_slices(semi, Path(args.models), args.recipe, args.folds, args.steps)
    complete = _enough_folds(args, found)
    nested = lo.nested_gain(slices)
    grid_means = nested["by_offset"]
    record = {"recipe": args.recipe, "folds": args.folds, "steps": args.steps, "folds_found": found,
              "complete": complete, "min_gain": MIN_GAIN, "nested": nested,
              "mean_split_score_by_offset": {str(d): round(m, 4) for d, m in grid_means.items()},
              "per_slice_plain": {s.name: round(lo.split_score(s.labels, s.reference), 4) for s in slices}}
    record["ship"] = bool(complete and nested["gain"] >= MIN_GAIN and nested["offset"] != 0)
    write_record(args.out, record)
    _report("offset d | mean (GGO + consolidation Dice) / 2", {f"{d:+.2f}": m for d, m in grid_means.items()},
            f"{len(slices)} out-of-fold slices from folds {found} of {args.folds}; nested: fitted "
            f"{nested['fitted']:.4f} vs plain {nested['plain']:.4f}, gain {nested['gain']:+.4f} (offsets by fold "
            f"{[v['offset'] for v in nested['folds'].values()]}); fitted on all: d = {nested['offset']:+.2f}",
            complete, record["ship"] and f"ship d = {nested['offset']:+.2f}")


def _report(header: str, means: dict, summary: str, complete: bool, ship) -> None:
    """Print a look's table of means, its nested summary and the verdict (``ship``: what ships, or False)."""
    print(f"| {header} |\n| --- | --- |")
    for k, m in means.items():
        print(f"| {k} | {m:.4f} |")
    print(summary)
    print("verdict: " + ("none (not all folds done)" if not complete else ship or "nothing ships"))


def cmd_size(args):
    import torch

    from ctmodels.lesion_model import DEFAULT_PREPROCESSING
    from ctmodels.nested_choice import nested_choice

    torch.set_num_threads(args.threads)
    base = int(DEFAULT_PREPROCESSING["input_size"])
    sizes = sorted({base, *args.sizes})
    if any(s < 32 or s % 32 for s in sizes):  # the UNet halves its input five times
        raise SystemExit(f"--sizes: expected multiples of 32 pixels, e.g. 224,288, not {args.sizes}")
    semi, _ = load_trainval(data=args.data)
    scores, fold_of, names, found = out_of_fold_size_scores(semi, Path(args.models), args.recipe, args.folds,
                                                            args.steps, sizes)
    complete = _enough_folds(args, found)
    nested = nested_choice(scores, fold_of, base, prefer=lambda s: (abs(s - base), s))  # ties: nearest the model's
    record = {"recipe": args.recipe, "folds": args.folds, "steps": args.steps, "folds_found": found,
              "complete": complete, "min_gain": MIN_GAIN, "baseline": base, "nested": nested,
              "per_slice": {str(s): dict(zip(names, (round(v, 4) for v in scores[s]))) for s in sizes}}
    record["ship"] = bool(complete and nested["gain"] >= MIN_GAIN and nested["choice"] != base)
    write_record(args.out, record)
    _report("input size | mean (infection + GGO + consolidation Dice) / 3", nested["by_setting"],
            f"{len(names)} out-of-fold slices from folds {found} of {args.folds}; nested: fitted "
            f"{nested['fitted']:.4f} vs {base} px {nested['plain']:.4f}, gain {nested['gain']:+.4f} (sizes by fold "
            f"{[v['choice'] for v in nested['folds'].values()]}); chosen on all: {nested['choice']} px",
            complete, record["ship"] and f"ship {nested['choice']} px for single slices")


def paired_by_seed(base: list, arm: list, recipe: str, min_gain: float = 0.02,
                   seed_sd: Optional[float] = None) -> dict:
    """Plan 8's rule (docs/lesion-experiments.md), for two arms of one recipe run with the same seeds: each
    record is a ``run --out`` record; they are paired by their seed. ``g_s`` = arm score - base score (pooled,
    all folds) per seed; the arm wins only if every ``g_s > 0`` and their mean is at least ``max(min_gain,
    2 SE)``, ``SE = sqrt(sd_arm^2 / n + sd_base^2 / n)`` from the sample SDs of each arm's n pooled scores.
    ``seed_sd``: plan 9's rule, for arms of one seed or more: the SD of one run's pooled score, measured by
    an earlier plan, stands for both arms' SDs, ``SE = seed_sd * sqrt(2 / n)``.

    Refuses (SystemExit) records of another recipe, fold count or pairing, and fewer than 2 seeds without
    ``seed_sd`` (no SD)."""
    import statistics

    def by_seed(records, what):
        out = {}
        for r in records:
            if recipe not in r.get("summary", {}):
                raise SystemExit(f"{what}: a record without a finished recipe {recipe}")
            seed = r["recipes"][recipe]["seed"]
            if seed in out:
                raise SystemExit(f"{what}: two records of seed {seed}")
            out[seed] = r
        return out

    b, a = by_seed(base, "base"), by_seed(arm, "arm")
    least = 2 if seed_sd is None else 1
    if sorted(a) != sorted(b) or len(a) < least:
        raise SystemExit(f"the arms must hold the same seeds, at least {least} (base {sorted(b)}, arm {sorted(a)})")
    folds = {r["folds"] for r in base + arm}
    if len(folds) != 1:
        raise SystemExit(f"records of different fold counts: {sorted(folds)}")
    seeds = sorted(a)
    sb = [b[s]["summary"][recipe]["score"] for s in seeds]
    sa = [a[s]["summary"][recipe]["score"] for s in seeds]
    gains = [y - x for x, y in zip(sb, sa)]
    n = len(seeds)
    if seed_sd is None:
        se = (statistics.stdev(sa) ** 2 / n + statistics.stdev(sb) ** 2 / n) ** 0.5
    else:
        se = seed_sd * (2 / n) ** 0.5
    mean = sum(gains) / n
    bar = max(min_gain, 2 * se)
    return {"recipe": recipe, "seeds": seeds, "base_scores": sb, "arm_scores": sa, "gains": gains,
            "mean_gain": mean, "se": se, "bar": bar, "steps": {"base": sorted({b[s]["steps"] for s in seeds}),
                                                                 "arm": sorted({a[s]["steps"] for s in seeds})},
            "wins": all(g > 0 for g in gains) and mean >= bar}


def cmd_paired(args):
    load = lambda paths: [json.loads(Path(p).read_text()) for p in paths.split(",")]  # noqa: E731
    r = paired_by_seed(load(args.base), load(args.arm), args.recipe, args.min_gain, args.seed_sd)
    for s, x, y, g in zip(r["seeds"], r["base_scores"], r["arm_scores"], r["gains"]):
        print(f"seed {s}: base {x:.4f}  arm {y:.4f}  gain {g:+.4f}")
    sd = "" if args.seed_sd is None else f" (from a run's SD {args.seed_sd})"
    print(f"mean gain {r['mean_gain']:+.4f}; SE {r['se']:.4f}{sd}; bar max({args.min_gain}, 2 SE) = {r['bar']:.4f}; "
          f"every gain > 0: {all(g > 0 for g in r['gains'])}")
    print("the arm wins: it ships" if r["wins"] else "the arm does not win: nothing ships")
    if args.out:
        Path(args.out).write_text(json.dumps(r, indent=2) + "\n")


def _numbers(what: str, example: str):
    """An argparse type: whole numbers separated by commas (``what`` and ``example`` for the error)."""
    def parse(text: str):
        try:
            return [int(f) for f in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} separated by commas, e.g. {example}, not {text!r}")
    return parse


def _look(sub, name: str, help: str, func, out: str):
    """A subcommand judging a choice on the saved fold models' out-of-fold predictions."""
    s = sub.add_parser(name, help=help)
    s.add_argument("--data", required=True)
    s.add_argument("--models", required=True, metavar="DIR", help="the --save-models folder of `run`")
    s.add_argument("--recipe", default="A", choices=sorted(RECIPES))
    s.add_argument("--folds", type=int, default=4)
    s.add_argument("--steps", type=int, default=2400)
    s.add_argument("--threads", type=int, default=1, help="torch threads")
    s.add_argument("--out", default=out)
    s.set_defaults(func=func)
    return s


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("pack", help="write the non-held-out training slices to one file")
    s.add_argument("--data", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--drop-every", type=int, default=0, metavar="N",
                   help="leave out every Nth lung-infection slice (default 0: keep all)")
    s.set_defaults(func=cmd_pack)
    s = sub.add_parser("run", help="cross-validate recipes")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--data")
    g.add_argument("--pack")
    s.add_argument("--recipes", default="A,B,C")
    s.add_argument("--folds", type=int, default=4)
    s.add_argument("--only-folds", default=None, metavar="F,G", type=_numbers("fold numbers", "0,2"),
                   help="run only these folds (0-based); the rest can follow later into the same --out")
    s.add_argument("--steps", type=int, default=2400)
    s.add_argument("--seed", type=int, default=0, help="the runs' seed (default %(default)s); another seed is "
                   "another design: give it its own --out (its saved models are named ...-seedN)")
    s.add_argument("--jobs", type=int, default=1, help="runs at once (processes)")
    s.add_argument("--threads", type=int, default=None, help="torch threads per run")
    s.add_argument("--device", default="cpu")
    s.add_argument("--log-every", type=int, default=400)
    s.add_argument("--out", default="cv.json")
    s.add_argument("--save-models", default=None, metavar="DIR",
                   help="also save each fold's model in DIR/<recipe>-fold<k>-of<K>-<steps>steps/")
    s.set_defaults(func=cmd_run)
    s = _look(sub, "offset", "fit a consolidation / GGO decision offset on the fold models' out-of-fold predictions",
              cmd_offset, "offset.json")
    s = _look(sub, "size", "network input size for single slices, chosen on the fold models' out-of-fold "
              "predictions", cmd_size, "size.json")
    s.add_argument("--sizes", type=_numbers("sizes in pixels", "256,320"), default=[256, 288, 320, 352],
                   metavar="S,T", help="input sizes to compare (the model's own, 256, is always one)")
    s = sub.add_parser("paired", help="plans 8 and 9's rule: two arms of one recipe paired by seed (records of `run`)")
    s.add_argument("--recipe", default="C", choices=sorted(RECIPES))
    s.add_argument("--base", required=True, metavar="R1,R2,...", help="the records of the arm to beat")
    s.add_argument("--arm", required=True, metavar="R1,R2,...", help="the records of the arm that may ship")
    s.add_argument("--min-gain", type=float, default=0.02)
    s.add_argument("--seed-sd", type=float, default=None, metavar="SD",
                   help="plan 9: the SD of one run's pooled score from an earlier plan, for both arms (one seed will do)")
    s.add_argument("--out", default=None, help="also write the numbers and the verdict as JSON")
    s.set_defaults(func=cmd_paired)
    args = p.parse_args(argv)
    try:
        args.func(args)
    except CTModelsError as exc:  # bad data or models: one line, no traceback
        raise SystemExit(str(exc)) from None


if __name__ == "__main__":
    sys.exit(main())
