"""The lesion training code on a tiny synthetic data set in both layouts (no ../shared needed)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ctmodels import lesion_data as ld
from ctmodels.cli import main
from ctmodels.errors import InvalidInputError
from ctmodels.train_lesion import _loss

pytestmark = pytest.mark.slow


def _slice(rng, size=128, lesion=True):
    """A body with two lungs (-850 HU look) and a bright lesion blob, as 8-bit lung-window pixels."""
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size), 10, np.uint8)
    body = ((yy - size / 2) / (0.42 * size)) ** 2 + ((xx - size / 2) / (0.47 * size)) ** 2 < 1
    img[body] = 150
    lungs = np.zeros((size, size), bool)
    for cx in (0.3, 0.7):
        lungs |= ((yy - size / 2) / (0.3 * size)) ** 2 + ((xx - cx * size) / (0.14 * size)) ** 2 < 1
    img[lungs] = 45
    inf = np.zeros((size, size), bool)
    if lesion:
        cy, cx = rng.uniform(0.4, 0.6) * size, rng.choice([0.3, 0.7]) * size
        inf = lungs & (((yy - cy) ** 2 + (xx - cx) ** 2) < (0.08 * size) ** 2)
        img[inf] = 110
    img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    return img, lungs, inf


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    semi = root / "covid_semiseg_train"
    (semi / "images").mkdir(parents=True)
    (semi / "masks").mkdir()
    for k in range(20):  # groups of 5 consecutive numbers; every 4th group (15-19) is held out
        img, _, inf = _slice(rng)
        lab = np.zeros(img.shape, np.uint8)
        lab[inf] = 1 if k % 2 else 2  # GGO or consolidation
        Image.fromarray(img).save(semi / "images" / f"{k}.jpg", quality=95)
        Image.fromarray(lab).save(semi / "masks" / f"{k}.png")
    zen = root / "covid_ct_lung_infection_slices"
    for d in ("ct", "lungs", "covid"):
        (zen / d).mkdir(parents=True)
    k = 0
    for vol in range(5):  # 5 "volumes" of 4 similar slices, each volume a different brightness
        base = 20 * vol
        for _ in range(4):
            img, lungs, inf = _slice(rng, lesion=bool(vol % 2))
            img = np.clip(img.astype(int) + base, 0, 255).astype(np.uint8)
            Image.fromarray(img).save(zen / "ct" / f"{k:04d}.png")
            Image.fromarray((lungs * 255).astype(np.uint8)).save(zen / "lungs" / f"{k:04d}.png")
            Image.fromarray((inf * 255).astype(np.uint8)).save(zen / "covid" / f"{k:04d}.png")
            k += 1
    return root


def test_train_lesion_cli_writes_loadable_weights_and_a_by_group_split(data_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train-lesion", "--data", str(data_root), "--out", str(out), "--steps", "2",
                 "--batch-size", "2", "--threads", "2"]) == 0
    got = capsys.readouterr()
    metrics = json.loads(got.out)
    # a progress bar on stderr while it trains, then what the wait after it is
    assert "training: 100%" in got.err and "2/2" in got.err
    assert got.err.rstrip().endswith("measuring the held-out split ...")
    for f in ("config.json", "model.safetensors", "preprocessing.json", "training.json"):
        assert (out / f).is_file()
    rec = json.loads((out / "training.json").read_text())
    assert rec["steps"] == 2 and "train-lesion" in rec["command"]
    held = set(rec["held_out"]["covid_semiseg_train"])
    train = set(rec["train_slices"]["covid_semiseg_train"])
    assert held and train and not held & train
    # whole groups (5 consecutive numbers) are held out, never single slices of a group
    assert {int(n) // 5 for n in held}.isdisjoint({int(n) // 5 for n in train})
    assert rec["held_out"]["covid_ct_lung_infection_slices_count"] % 4 == 0  # whole volumes
    u = rec["uncertainty_held_out"]  # intervals around the held-out means, one Dice per held-out volume
    for k in ("infection", "ggo", "consolidation"):
        lo, hi = u[f"semiseg_{k}_dice_ci95"]
        assert lo <= round(rec["metrics_held_out"][f"semiseg_{k}_dice"], 4) <= hi
    assert sorted(map(int, u["infection_slices_count_by_volume"])) == \
        rec["held_out"]["covid_ct_lung_infection_slices_volumes"]
    assert sum(u["infection_slices_count_by_volume"].values()) == rec["held_out"]["covid_ct_lung_infection_slices_count"]
    assert rec["lung_infection_volumes"] == {"groups": 5, "single_slice_groups": []}
    assert set(metrics) >= {"semiseg_ggo_dice", "semiseg_consolidation_dice", "infection_slices_lung_dice"}
    assert all(0.0 <= metrics[k] <= 1.0 for k in metrics if k.endswith("_dice"))
    pre = json.loads((out / "preprocessing.json").read_text())
    assert pre["involvement_error"]["sd_pp"] >= 0
    from ctmodels.lesion import LesionSegmenter

    seg = LesionSegmenter.from_pretrained(str(out), device="cpu")
    assert seg.predict(np.zeros((40, 50), np.uint8)).labels.shape == (40, 50)


def test_training_is_deterministic_for_a_seed(data_root, tmp_path):
    from safetensors.numpy import load_file

    from ctmodels.train_lesion import train

    for name in ("a", "b"):
        train(data_root, tmp_path / name, steps=2, batch_size=2, seed=3, threads=2)
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_too_little_data_to_hold_out_is_a_clear_error(data_root, tmp_path):
    import shutil

    from ctmodels.errors import InvalidInputError
    from ctmodels.train_lesion import train

    small = tmp_path / "small"
    shutil.copytree(data_root, small)
    for k in range(12, 20):
        (small / "covid_semiseg_train" / "images" / f"{k}.jpg").unlink()
    with pytest.raises(InvalidInputError, match="too little data to hold out"):
        train(small, tmp_path / "out", steps=1, batch_size=2)
    assert not (tmp_path / "out").exists()


def test_volume_boundaries_find_the_synthetic_volumes(data_root):
    s = ld.load_infection_slices(data_root / "covid_ct_lung_infection_slices")
    assert len(s) == 20 and len(np.unique(s.groups)) == 5
    assert all(len(set(s.groups[i:i + 4])) == 1 for i in range(0, 20, 4))


def test_set_loss_does_not_care_how_an_infection_splits_between_ggo_and_consolidation():
    bits = torch.full((1, 4, 4), ld.BIT[ld.GGO] | ld.BIT[ld.CONSOLIDATION], dtype=torch.uint8)
    bits[0, 0] = ld.BIT[ld.LUNG]
    partial = torch.tensor([False])
    as_ggo = torch.zeros(1, 4, 4, 4)
    as_ggo[:, 1] = 5.0
    as_cons = torch.zeros(1, 4, 4, 4)
    as_cons[:, 2] = 5.0
    as_bg = torch.zeros(1, 4, 4, 4)
    as_bg[:, 0] = 5.0
    for t in (as_ggo, as_cons, as_bg):
        t[0, 3, 0] = 5.0  # the lung row is predicted right in every case
    l_ggo, l_cons, l_bg = (_loss(torch, t, bits, partial).item() for t in (as_ggo, as_cons, as_bg))
    assert l_ggo == pytest.approx(l_cons, abs=1e-6)  # a partial label rewards either split alike
    assert l_bg > l_ggo + 1.0  # but background inside the infection is penalised
    # on a multi-class slice the same GGO/consolidation choice does matter
    full = torch.tensor([True])
    ggo_bits = torch.full((1, 4, 4), ld.BIT[ld.GGO], dtype=torch.uint8)
    assert _loss(torch, as_cons, ggo_bits, full).item() > _loss(torch, as_ggo, ggo_bits, full).item() + 1.0


def test_validation_split_comes_from_the_training_groups_and_picks_the_best_checkpoint(data_root, tmp_path,
                                                                                    monkeypatch):
    from ctmodels import train_lesion

    scores = iter([0.9, 0.1])  # the first checkpoint validates best
    monkeypatch.setattr(train_lesion, "validation_score", lambda metrics: next(scores))
    out = tmp_path / "val"
    train_lesion.train(data_root, out, steps=4, batch_size=2, seed=1, threads=2, checkpoint_every=2, validate=True)
    rec = json.loads((out / "training.json").read_text())
    val = rec["validation"]
    semi_val = set(val["covid_semiseg_train"])
    assert semi_val and semi_val.isdisjoint(rec["train_slices"]["covid_semiseg_train"])
    assert semi_val.isdisjoint(rec["held_out"]["covid_semiseg_train"])
    assert set(val["covid_ct_lung_infection_slices_volumes"]).isdisjoint(
        rec["held_out"]["covid_ct_lung_infection_slices_volumes"])
    assert rec["train_slices"]["covid_ct_lung_infection_slices"] + val["covid_ct_lung_infection_slices_count"] \
        + rec["held_out"]["covid_ct_lung_infection_slices_count"] == 20
    assert val["history"] == [{"step": 2, "score": 0.9}, {"step": 4, "score": 0.1}]
    assert val["best_step"] == 2 and rec["command"].endswith("--validate")
    # the saved weights are the best checkpoint's, and the held-out metrics were measured on them
    again = train_lesion.reevaluate(out, data_root)
    for k, v in rec["metrics_held_out"].items():
        if k.endswith("_dice"):
            assert again[k] == pytest.approx(v, abs=2e-3), k


def test_semiseg_share_sets_how_many_multi_class_slices_each_batch_holds(data_root, tmp_path, monkeypatch):
    from ctmodels import train_lesion
    from ctmodels.errors import InvalidInputError

    seen = []

    def recording_loss(torch_, logits, bits, multiclass):
        seen.append(multiclass.tolist())
        return _loss(torch_, logits, bits, multiclass)

    monkeypatch.setattr(train_lesion, "_loss", recording_loss)
    out = tmp_path / "share"
    assert main(["train-lesion", "--data", str(data_root), "--out", str(out), "--steps", "2",
                 "--batch-size", "4", "--threads", "2", "--semiseg-share", "0.75"]) == 0
    assert seen == [[True, True, True, False]] * 2
    rec = json.loads((out / "training.json").read_text())
    assert rec["semiseg_per_batch"] == 3 and "--semiseg-share 0.75" in rec["command"]
    with pytest.raises(InvalidInputError, match="semiseg-share"):
        train_lesion.train(data_root, tmp_path / "none", steps=1, batch_size=4, semiseg_share=0.9)
    assert not (tmp_path / "none").exists()


def test_init_continues_from_trained_weights_which_compete_as_step_0(data_root, tmp_path, monkeypatch):
    import hashlib

    from safetensors.numpy import load_file

    from ctmodels import train_lesion

    first = tmp_path / "first"
    train_lesion.train(data_root, first, steps=2, batch_size=2, seed=1, threads=2, validate=True)
    scores = iter([0.8, 0.5])  # the starting weights validate best
    monkeypatch.setattr(train_lesion, "validation_score", lambda metrics: next(scores))
    out = tmp_path / "cont"
    assert main(["train-lesion", "--data", str(data_root), "--out", str(out), "--steps", "4", "--batch-size", "2",
                 "--threads", "2", "--validate", "--init", str(first), "--lr", "1e-3", "--seed", "2"]) == 0
    rec = json.loads((out / "training.json").read_text())
    assert [h["step"] for h in rec["validation"]["history"]] == [0, 4]
    assert rec["validation"]["best_step"] == 0
    assert rec["init"]["model_sha256"] == hashlib.sha256((first / "model.safetensors").read_bytes()).hexdigest()
    assert rec["init"]["steps"] == 2 and "--init" in rec["command"] and "--lr 0.001" in rec["command"]
    assert rec["lr"] == 1e-3
    a, b = load_file(str(first / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)  # step 0 was kept


def test_init_refuses_weights_that_may_have_seen_the_held_out_or_validation_slices(data_root, tmp_path):
    from ctmodels.errors import InvalidInputError
    from ctmodels.train_lesion import train

    plain = tmp_path / "plain"  # trained on the slices a --validate run keeps for validation
    train(data_root, plain, steps=1, batch_size=2, threads=2)
    with pytest.raises(InvalidInputError, match="validation"):
        train(data_root, tmp_path / "a", steps=1, batch_size=2, validate=True, init=plain)
    with pytest.raises(InvalidInputError, match="overwritten"):
        train(data_root, plain, steps=1, batch_size=2, init=plain)
    rec = json.loads((plain / "training.json").read_text())
    rec["held_out"]["covid_semiseg_train"] = ["0", "1"]
    (plain / "training.json").write_text(json.dumps(rec))
    with pytest.raises(InvalidInputError, match="held-out"):
        train(data_root, tmp_path / "b", steps=1, batch_size=2, init=plain)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_ema_averages_weights_with_a_warming_up_decay_and_copies_integer_buffers():
    from ctmodels.train_lesion import _Ema

    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = _Ema(net, decay=0.9)
    before = net[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
        net[1].num_batches_tracked += 5
    ema.update(net)  # first update: decay min(0.9, 2/11)
    d = 2 / 11
    assert torch.allclose(ema.model[0].weight, d * before + (1 - d) * net[0].weight)
    assert int(ema.model[1].num_batches_tracked) == int(net[1].num_batches_tracked)
    for _ in range(200):
        ema.update(net)
    assert torch.allclose(ema.model[0].weight, net[0].weight, atol=1e-6)  # converges to a constant model
    assert not any(p.requires_grad for p in ema.model.parameters())


def test_weak_intensity_augmentation_changes_brightness_less_than_strong():
    from ctmodels.train_lesion import _augment

    img = torch.full((64, 1, 32, 32), 0.5)
    bits = torch.full((64, 32, 32), ld.BIT[ld.LUNG], dtype=torch.uint8)
    spread = {}
    for name in ("strong", "weak"):
        out, _ = _augment(torch, img.clone(), bits.clone(), np.random.default_rng(0), 16, name)
        centre = out[:, 0, 6:10, 6:10].mean((1, 2))  # inside the image whatever the affine did
        spread[name] = float(centre.std())
    assert spread["weak"] < 0.5 * spread["strong"]


def test_ema_and_intensity_flags_are_recorded(data_root, tmp_path):
    out = tmp_path / "ema"
    assert main(["train-lesion", "--data", str(data_root), "--out", str(out), "--steps", "2", "--batch-size", "2",
                 "--threads", "2", "--ema", "0.99", "--intensity-aug", "weak"]) == 0
    rec = json.loads((out / "training.json").read_text())
    assert rec["ema"] == 0.99 and rec["intensity_augmentation"]["name"] == "weak"
    assert "--ema 0.99 --intensity-aug weak" in rec["command"]
    assert rec["device"] == "cpu" and rec["device_name"].startswith("2 CPU threads")  # what the card names
    assert main(["train-lesion", "--data", str(data_root), "--out", str(tmp_path / "bad"), "--ema", "1.5"]) == 2
    assert not (tmp_path / "bad").exists()


def test_cross_validation_folds_partition_the_training_groups_and_pool_by_slice_count(data_root):
    from ctmodels import train_lesion as tl

    semi, inf, semi_te, inf_te = tl.load_split(data_root)
    runs = [tl.cv_fold(semi, inf, f, 2, steps=1, batch_size=2, crop=64, log_every=10) for f in range(2)]
    names = [set(r["validation"]["covid_semiseg_train"]) for r in runs]
    assert names[0].isdisjoint(names[1]) and names[0] | names[1] == set(semi.names)
    assert names[0].isdisjoint(semi_te.names)
    vols = [set(r["validation"]["covid_ct_lung_infection_slices_volumes"]) for r in runs]
    assert vols[0].isdisjoint(vols[1]) and vols[0] | vols[1] == set(int(g) for g in inf.groups)
    fake = [{"semiseg_ggo_dice": 1.0, "semiseg_consolidation_dice": 0.0, "semiseg_infection_dice": 1.0,
             "infection_slices_infection_dice": 0.5, "infection_slices_lung_dice": 1.0,
             "semiseg_slices": 3, "infection_slices": 1},
            {"semiseg_ggo_dice": 0.0, "semiseg_consolidation_dice": 1.0, "semiseg_infection_dice": 0.0,
             "infection_slices_infection_dice": 0.0, "infection_slices_lung_dice": 1.0,
             "semiseg_slices": 1, "infection_slices": 3}]
    pooled = tl.pool_folds(fake)
    assert pooled["semiseg_ggo_dice"] == 0.75 and pooled["semiseg_consolidation_dice"] == 0.25
    assert pooled["infection_slices_infection_dice"] == 0.125
    assert pooled["score"] == pytest.approx((0.75 + 0.25 + 0.125) / 3)
    with pytest.raises(InvalidInputError, match="cross-validation"):
        tl.cv_fold(semi, inf, 49, 50, steps=1)
    with pytest.raises(InvalidInputError, match="intensity"):  # the loop itself refuses what it cannot run
        tl.cv_fold(semi, inf, 0, 2, steps=1, intensity="medium")


def test_slice_sets_survive_a_round_trip_through_a_file(data_root, tmp_path):
    semi = ld.load_semiseg(data_root / "covid_semiseg_train")
    ld.save_slice_sets(tmp_path / "s.npz.xz", {"semiseg": semi})
    back = ld.load_slice_sets(tmp_path / "s.npz.xz")["semiseg"]
    assert back.names == semi.names and back.multiclass
    assert np.array_equal(back.images, semi.images) and np.array_equal(back.allowed, semi.allowed)
    assert np.array_equal(back.groups, semi.groups)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
               for a, b in zip(back.originals, semi.originals))
    (tmp_path / "bad.xz").write_bytes(b"not xz")
    with pytest.raises(InvalidInputError, match="bad.xz"):
        ld.load_slice_sets(tmp_path / "bad.xz")


def test_lesion_cv_script_packs_without_the_held_out_split_and_runs_folds(data_root, tmp_path, monkeypatch, capsys):
    from conftest import ROOT

    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import lesion_cv

    from ctmodels.train_lesion import load_split

    pack = tmp_path / "tv.npz.xz"
    lesion_cv.main(["pack", "--data", str(data_root), "--out", str(pack), "--drop-every", "4"])
    sets = ld.load_slice_sets(pack)
    _, inf, semi_te, inf_te = load_split(data_root)
    assert set(sets["semiseg"].names).isdisjoint(semi_te.names)
    assert set(sets["infection"].names) < set(inf.names) and len(sets["infection"]) == len(inf) - len(inf) // 4
    out = tmp_path / "cv.json"
    run = ["run", "--pack", str(pack), "--recipes", "A,C", "--folds", "2", "--steps", "1",
           "--jobs", "2", "--threads", "1", "--out", str(out)]
    models = tmp_path / "models"
    # a first part: no recipe complete, no pooled score yet; the fold models are kept
    lesion_cv.main(run + ["--only-folds", "0", "--save-models", str(models)])
    part = json.loads(out.read_text())
    assert sorted((r["recipe"], r["fold"]) for r in part["results"]) == [("A", 0), ("C", 0)]
    assert part["summary"] == {}
    a0 = next(r for r in part["results"] if r["recipe"] == "A")
    assert sorted(a0["semiseg_per_slice"]) == sorted(a0["validation"]["covid_semiseg_train"])
    assert np.mean([v[1] for v in a0["semiseg_per_slice"].values()]) == pytest.approx(a0["semiseg_ggo_dice"],
                                                                                       abs=1e-4)
    from ctmodels.lesion import LesionSegmenter
    from ctmodels.train_lesion import evaluate

    saved = LesionSegmenter.from_pretrained(str(models / "A-fold0-of2-1steps"), device="cpu", backend="torch")
    semi_va = sets["semiseg"].subset([i for i, n in enumerate(sets["semiseg"].names)
                                      if n in a0["semiseg_per_slice"]])
    inf_va = sets["infection"].subset([i for i, g in enumerate(sets["infection"].groups)
                                       if int(g) in a0["validation"]["covid_ct_lung_infection_slices_volumes"]])
    again = evaluate(saved, semi_va, inf_va, tta=False)  # the saved model is the one that was scored
    for k in ("semiseg_ggo_dice", "semiseg_infection_dice", "infection_slices_lung_dice"):
        assert again[k] == pytest.approx(a0[k], abs=2e-3), k
    lesion_cv.main(run)  # the rest: the fold-0 runs are kept, not trained again
    rec = json.loads(out.read_text())
    assert sorted((r["recipe"], r["fold"]) for r in rec["results"]) == [("A", 0), ("A", 1), ("C", 0), ("C", 1)]
    assert [r for r in rec["results"] if r["fold"] == 0] == part["results"]
    assert sorted(rec["summary"]) == ["A", "C"] and rec["results"][0]["device"] == "cpu"
    assert len(rec["summary"]["A"]["fold_scores"]) == 2 and rec["recipes"]["C"]["intensity"] == "weak"
    assert "| A |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="another design"):  # other steps into the same record: refused
        lesion_cv.main([*run, "--steps", "2"])
    assert json.loads(out.read_text()) == rec
    with pytest.raises(SystemExit) as bad:  # argparse: one line, exit status 2
        lesion_cv.main([*run, "--only-folds", "first"])
    assert bad.value.code == 2 and "expected fold numbers" in capsys.readouterr().err
    import signal

    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the run's kill handler is gone again


def _alive(pid):
    """True while ``pid`` runs (a zombie left for its new parent to reap counts as ended)."""
    from pathlib import Path

    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _descendants(pid):
    from pathlib import Path

    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:  # the thread or process has just ended
            continue
        for child in children:
            out += [int(child), *_descendants(int(child))]
    return out


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/task"), reason="needs Linux /proc")
def test_killing_a_cross_validation_ends_its_training_workers(data_root, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT

    script = str(ROOT / "scripts" / "lesion_cv.py")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    pack = tmp_path / "tv.npz.xz"
    subprocess.run([sys.executable, script, "pack", "--data", str(data_root), "--out", str(pack)], check=True,
                   env=env, capture_output=True)
    log, workers = tmp_path / "log.txt", []
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, script, "run", "--pack", str(pack), "--recipes", "A", "--folds", "2",
                                 "--only-folds", "0", "--steps", "100000", "--threads", "1",
                                 "--out", str(tmp_path / "cv.json")], env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while "step 1/100000" not in log.read_text() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert "step 1/100000" in log.read_text(), log.read_text()
        workers = _descendants(proc.pid)
        assert workers
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) != 0
        deadline = time.time() + 30
        while any(_alive(w) for w in workers) and time.time() < deadline:
            time.sleep(0.2)
        assert not [w for w in workers if _alive(w)]
    finally:
        for w in {proc.pid, *workers, *(_descendants(proc.pid) if _alive(proc.pid) else [])}:
            if _alive(w):
                os.kill(w, signal.SIGKILL)


def test_lesion_cv_offset_fits_on_out_of_fold_predictions_of_the_saved_fold_models(data_root, tmp_path, monkeypatch,
                                                                                  capsys):
    from conftest import ROOT

    monkeypatch.syspath_prepend(str(ROOT / "scripts"))  # also for the pool's spawned workers
    import lesion_cv

    from ctmodels import lesion_offset as lo
    from ctmodels.lesion import LesionSegmenter
    from ctmodels.train_lesion import load_split

    models, off = tmp_path / "models", tmp_path / "offset.json"
    run = ["run", "--data", str(data_root), "--recipes", "A", "--folds", "2", "--steps", "1", "--jobs", "1",
           "--threads", "1", "--out", str(tmp_path / "cv.json"), "--save-models", str(models)]
    offset = ["offset", "--data", str(data_root), "--models", str(models), "--folds", "2", "--steps", "1",
              "--out", str(off)]
    lesion_cv.main(run + ["--only-folds", "0"])
    with pytest.raises(SystemExit, match="found the models of 1 fold"):  # one fold: no nested estimate
        lesion_cv.main(offset)
    assert not off.exists()
    lesion_cv.main(run)
    lesion_cv.main(offset)
    rec = json.loads(off.read_text())
    semi, *_ = load_split(data_root)
    assert rec["folds_found"] == [0, 1] and rec["complete"] and rec["recipe"] == "A"
    assert sorted(rec["per_slice_plain"]) == sorted(semi.names)  # every training slice, none held out
    assert rec["nested"]["slices"] == len(semi)
    assert rec["nested"]["plain"] == pytest.approx(np.mean(list(rec["per_slice_plain"].values())), abs=1e-3)
    assert rec["mean_split_score_by_offset"]["0.0"] == pytest.approx(rec["nested"]["plain"], abs=1e-4)
    # a slice of fold 1 is scored by the fold-1 model, which did not train on it
    _, va = ld.split_by_group(semi, every=2, offset=1)
    seg = LesionSegmenter.from_pretrained(str(models / "A-fold1-of2-1steps"), device="cpu", backend="torch")
    img, lab = va.originals[0]
    assert rec["per_slice_plain"][va.names[0]] == pytest.approx(lo.split_score(seg.predict(img).labels, lab),
                                                                abs=1e-4)
    assert rec["ship"] == (rec["nested"]["gain"] >= 0.02 and rec["nested"]["offset"] != 0)
    out = capsys.readouterr().out
    assert "| +0.00 |" in out and "nested: fitted" in out and "verdict: " in out

    # `size`: the same out-of-fold slices, each segmented at every input size by its fold's model
    sized = tmp_path / "size.json"
    lesion_cv.main(["size", "--data", str(data_root), "--models", str(models), "--folds", "2", "--steps", "1",
                    "--sizes", "192,320", "--out", str(sized)])
    rec = json.loads(sized.read_text())
    assert rec["baseline"] == 256 and sorted(rec["per_slice"]) == ["192", "256", "320"]  # 256 always compared
    assert all(sorted(v) == sorted(semi.names) for v in rec["per_slice"].values())
    assert rec["nested"]["plain"] == pytest.approx(np.mean(list(rec["per_slice"]["256"].values())), abs=1e-3)
    at_256 = seg.predict(img).labels
    seg.preprocessing["input_size"] = 320
    at_320 = seg.predict(img).labels
    assert not np.array_equal(at_256, at_320)  # the size reaches the network
    assert rec["per_slice"]["320"][va.names[0]] == pytest.approx(lesion_cv.lesion_score(at_320, lab), abs=1e-4)
    assert rec["per_slice"]["256"][va.names[0]] == pytest.approx(lesion_cv.lesion_score(at_256, lab), abs=1e-4)
    assert rec["ship"] == (rec["nested"]["gain"] >= 0.02 and rec["nested"]["choice"] != 256)
    out = capsys.readouterr().out
    assert "| 320 |" in out and "px" in out and "verdict: " in out
    with pytest.raises(SystemExit) as bad:
        lesion_cv.main(["size", "--data", str(data_root), "--models", str(models), "--sizes", "big"])
    assert bad.value.code == 2 and "expected sizes in pixels separated by commas" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="expected multiples of 32 pixels"):
        lesion_cv.main(["size", "--data", str(data_root), "--models", str(models), "--sizes", "300"])


def test_lesion_score_averages_infection_ggo_and_consolidation_dice(monkeypatch):
    from conftest import ROOT

    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import lesion_cv

    ref = np.array([[1, 1, 2, 0], [3, 3, 0, 0]], np.uint8)
    assert lesion_cv.lesion_score(ref, ref) == 1.0
    swapped = np.array([[2, 2, 1, 0], [3, 3, 0, 0]], np.uint8)  # infection right, GGO / consolidation swapped
    assert lesion_cv.lesion_score(swapped, ref) == pytest.approx(1 / 3)
    assert lesion_cv.lesion_score(np.zeros_like(ref), np.zeros_like(ref)) == 1.0  # nothing to find, nothing found


def test_lesion_cv_with_unreadable_data_stops_with_one_line_instead_of_hanging(tmp_path):
    """A worker that cannot load the data used to die and be restarted by the pool forever."""
    import os
    import signal
    import subprocess
    import sys

    from conftest import ROOT

    script, missing = str(ROOT / "scripts" / "lesion_cv.py"), tmp_path / "no-data"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for cmd in (["run", "--data", str(missing), "--recipes", "A", "--folds", "2", "--only-folds", "0",
                 "--threads", "1", "--out", str(tmp_path / "cv.json")],
                ["offset", "--data", str(missing), "--models", str(tmp_path), "--out", str(tmp_path / "o.json")]):
        proc = subprocess.Popen([sys.executable, script, *cmd], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            pytest.fail(f"lesion_cv.py {cmd[0]} hung on a data folder that does not exist")
        assert proc.returncode == 1 and "Traceback" not in err, err
        assert err.strip().splitlines() == [f"{missing / 'covid_semiseg_train'}: no images/*.jpg found "
                                            "(expected the COVID-SemiSeg layout)"], err
        assert not list(tmp_path.glob("*.json"))  # nothing written


def test_a_run_killed_while_writing_its_record_keeps_the_folds_already_done(tmp_path, monkeypatch):
    from conftest import ROOT

    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import lesion_cv

    out = tmp_path / "cv.json"
    done = {"results": [{"recipe": "A", "fold": 0}]}
    lesion_cv.write_record(out, done)
    assert json.loads(out.read_text()) == done and [p.name for p in tmp_path.iterdir()] == ["cv.json"]

    def killed(*_):  # SIGTERM's handler raises SystemExit wherever the run is, here just before the rename
        raise SystemExit(143)

    monkeypatch.setattr(lesion_cv.os, "replace", killed)
    with pytest.raises(SystemExit):
        lesion_cv.write_record(out, {"results": [*done["results"], {"recipe": "A", "fold": 1}]})
    assert json.loads(out.read_text()) == done  # the earlier folds are still there, whole
    assert [p.name for p in tmp_path.iterdir()] == ["cv.json"]  # and no half-written file is left beside it


class _Stopped(Exception):
    """Stands for a kill in the middle of a training run."""


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_a_stopped_training_run_goes_on_from_its_state_and_ends_with_the_same_weights(data_root, tmp_path, ema):
    from ctmodels import train_lesion as tl

    semi, inf, _, _ = tl.load_split(data_root)
    recipe = dict(steps=6, batch_size=2, crop=64, seed=1, ema=ema, log_every=100)

    def run(**kw):
        torch.manual_seed(0)
        net, seconds = tl.fit(tl.build_lesion_unet(), semi, inf, **recipe, **kw)
        return net.state_dict(), seconds

    straight, _ = run()

    def stop_at_3(step, net):
        if step == 3:
            raise _Stopped

    state = tmp_path / "states" / "run.safetensors"
    with pytest.raises(_Stopped):  # stopped at step 3; the last state saved is that of step 2
        run(state_path=state, state_every=2, checkpoint_every=3, on_checkpoint=stop_at_3)
    assert state.is_file() and not [p for p in state.parent.iterdir() if p != state]  # no temporary file left
    seen = []
    resumed, _ = run(state_path=state, state_every=2, checkpoint_every=1, on_checkpoint=lambda i, _: seen.append(i))
    assert seen == [3, 4, 5, 6]  # it went on from step 2, it did not train again from the start
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in straight), "resumed run differs from a straight one"


def test_a_training_state_of_another_run_or_a_broken_one_is_refused_not_mixed_in(data_root, tmp_path):
    from ctmodels import train_lesion as tl

    semi, inf, _, _ = tl.load_split(data_root)
    state = tmp_path / "run.safetensors"
    kw = dict(steps=2, batch_size=2, crop=64, log_every=100, state_path=state)
    tl.fit(tl.build_lesion_unet(), semi, inf, lr=1e-3, **kw)
    saved = state.read_bytes()
    with pytest.raises(InvalidInputError, match=f"{state}: holds the state of another training run"):
        tl.fit(tl.build_lesion_unet(), semi, inf, lr=2e-3, **kw)
    assert state.read_bytes() == saved  # left as it was
    state.write_bytes(b"not a safetensors file")
    with pytest.raises(InvalidInputError, match=f"{state}: cannot read the training state"):
        tl.fit(tl.build_lesion_unet(), semi, inf, lr=1e-3, **kw)


def test_lesion_cv_goes_on_from_a_stopped_runs_state_and_deletes_it_once_recorded(data_root, tmp_path, monkeypatch):
    from safetensors import safe_open
    from safetensors.torch import save_file

    from conftest import ROOT

    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import lesion_cv

    from ctmodels import train_lesion as tl

    out = tmp_path / "cv.json"
    state = lesion_cv.fold_state_path(out, "A", 0, 2, 3)
    semi, inf = lesion_cv.load_trainval(data=str(data_root))

    def stop_at_3(step, net):
        if step == 3:
            raise _Stopped

    with pytest.raises(_Stopped):  # a fold run stopped in step 3, as a kill would leave it: step 2's state
        tl.cv_fold(semi, inf, 0, 2, steps=3, state_path=state, state_every=1, checkpoint_every=1,
                   on_checkpoint=stop_at_3, log_every=100, **lesion_cv.design("A"))
    with safe_open(str(state), framework="pt") as f:  # mark the state: its run had trained for 1000 s
        meta = json.loads(f.metadata()["state"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    assert meta["step"] == 2
    save_file(tensors, str(state), metadata={"state": json.dumps({**meta, "seconds": 1000.0})})
    lesion_cv.main(["run", "--data", str(data_root), "--recipes", "A", "--folds", "2", "--only-folds", "0",
                    "--steps", "3", "--jobs", "1", "--threads", "1", "--out", str(out)])
    (result,) = json.loads(out.read_text())["results"]
    assert result["train_seconds"] >= 1000  # the run went on from the state, not from the start
    assert not state.exists()  # recorded, so its state is gone


def test_a_stopped_train_lesion_run_goes_on_and_ends_with_the_same_weights_and_record(data_root, tmp_path,
                                                                                     monkeypatch, capsys):
    from safetensors.numpy import load_file

    from ctmodels import train_lesion as tl

    scores = []

    def score(metrics):  # the checkpoints' validation scores, in order; a None stops the run there
        value = scores.pop(0)
        if value is None:
            raise _Stopped
        return value

    monkeypatch.setattr(tl, "validation_score", score)
    kw = dict(steps=6, batch_size=2, seed=1, threads=2, checkpoint_every=2, validate=True, state_every=2)
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    scores[:] = [0.9, 0.1, 0.5]  # steps 2, 4, 6: step 2 is best
    tl.train(data_root, straight, **kw)
    scores[:] = [0.9, 0.1, None]  # stopped at step 6: the last state saved is step 4's
    with pytest.raises(_Stopped):
        tl.train(data_root, stopped, **kw)
    state = stopped / tl.STATE_FILE
    assert state.is_file() and not (stopped / "training.json").exists()
    scores[:] = [0.5]  # only step 6 is left to score
    calls = []
    tl.train(data_root, stopped, **kw, log_every=5, progress=lambda *a: calls.append(a))
    assert scores == [] and not state.exists()
    assert [c[:2] for c in calls] == [(4, 6), (5, 6), (6, 6)]  # a progress bar starts where the run goes on
    assert calls[0][2] is None and calls[1][2] > 0 and calls[2][2] is None  # the loss where it is logged
    a, b = (json.loads((d / "training.json").read_text()) for d in (straight, stopped))
    assert b["validation"]["history"] == [{"step": 2, "score": 0.9}, {"step": 4, "score": 0.1},
                                          {"step": 6, "score": 0.5}]
    assert b["validation"]["best_step"] == 2
    a.pop("train_seconds"), b.pop("train_seconds")
    assert json.dumps(a).replace(str(straight), "OUT") == json.dumps(b).replace(str(stopped), "OUT")
    wa, wb = (load_file(str(d / "model.safetensors")) for d in (straight, stopped))
    assert wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)  # step 2's, in both

    # a state left by a run with other settings is refused by the CLI in one line, and kept
    scores[:] = [0.9, None]
    with pytest.raises(_Stopped):
        tl.train(data_root, stopped, **kw)
    kept = state.read_bytes()
    assert main(["train-lesion", "--data", str(data_root), "--out", str(stopped), "--steps", "6", "--batch-size",
                 "2", "--seed", "2", "--threads", "2", "--validate"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {state}: holds the state of another training run (other settings or data); delete it " \
                  "to start this run from the beginning"
    assert state.read_bytes() == kept


def test_training_from_a_pack_gives_the_same_weights_and_release_measures_the_held_out_split(data_root, tmp_path,
                                                                                               capsys):
    """A GPU machine gets the training slices as a pack (no data folder, no held-out slices): the same
    command on the pack trains the same model, and reevaluate measures what the data run measured."""
    from safetensors.numpy import load_file

    from ctmodels import train_lesion as tl

    pack = tmp_path / "train.npz.xz"
    semi_tr, inf_tr = tl.save_training_pack(data_root, pack)
    _, _, semi_te, inf_te = tl.load_split(data_root)
    semi_p, inf_p, held = tl.load_training_pack(pack)
    assert semi_p.names == semi_tr.names and np.array_equal(inf_p.images, inf_tr.images)
    assert set(semi_p.names).isdisjoint(held["covid_semiseg_train"])
    assert held == tl._split_record(semi_te, inf_te)

    by_data, by_pack = tmp_path / "data", tmp_path / "pack"
    kw = ["--steps", "2", "--batch-size", "2", "--seed", "4", "--threads", "2"]
    assert main(["train-lesion", "--data", str(data_root), "--out", str(by_data)] + kw) == 0
    capsys.readouterr()
    assert main(["train-lesion", "--pack", str(pack), "--out", str(by_pack), "--device", "cpu:0"] + kw) == 0
    assert "release_weights.py" in capsys.readouterr().out  # nothing measured: the held-out split is not there
    wa, wb = (load_file(str(d / "model.safetensors")) for d in (by_data, by_pack))
    assert wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)
    a, b = (json.loads((d / "training.json").read_text()) for d in (by_data, by_pack))
    assert "metrics_held_out" not in b and b["held_out"] == a["held_out"]
    assert b["command"].startswith(f"ctmodels train-lesion --pack {pack} ") and b["command"].endswith(" --device cpu:0")
    assert "--device" not in a["command"]  # the default, cpu, is left out
    assert "involvement_error" not in json.loads((by_pack / "preprocessing.json").read_text())

    measured = tl.reevaluate(by_pack, data_root)
    assert measured == tl.reevaluate(by_data, data_root)
    b = json.loads((by_pack / "training.json").read_text())
    assert b["metrics_held_out"] == measured and "uncertainty_held_out" in b
    assert json.loads((by_pack / "preprocessing.json").read_text())["involvement_error"]["sd_pp"] >= 0

    # a pack without a held-out record (or not a pack) is refused in one line
    ld.save_slice_sets(tmp_path / "bare.xz", {"semiseg": semi_tr, "infection": inf_tr})
    assert main(["train-lesion", "--pack", str(tmp_path / "bare.xz"), "--out", str(tmp_path / "o")] + kw) == 2
    assert "expected a training pack" in capsys.readouterr().err


def test_lesion_cv_seed_is_part_of_the_design_and_of_the_saved_models_names(data_root, tmp_path, monkeypatch):
    from conftest import ROOT
    from safetensors.numpy import load_file

    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import lesion_cv

    pack = tmp_path / "tv.npz.xz"
    lesion_cv.main(["pack", "--data", str(data_root), "--out", str(pack)])
    models = tmp_path / "models"
    run = ["run", "--pack", str(pack), "--recipes", "A", "--folds", "2", "--only-folds", "0", "--steps", "1",
           "--jobs", "1", "--threads", "1", "--save-models", str(models)]
    lesion_cv.main(run + ["--out", str(tmp_path / "s0.json")])
    lesion_cv.main(run + ["--seed", "1", "--out", str(tmp_path / "s1.json")])
    rec = json.loads((tmp_path / "s1.json").read_text())
    assert rec["recipes"]["A"] == {**lesion_cv.COMMON, **lesion_cv.RECIPES["A"], "seed": 1}
    assert json.loads((tmp_path / "s0.json").read_text())["recipes"]["A"]["seed"] == 0
    w0, w1 = (load_file(str(d / "model.safetensors"))
              for d in (models / "A-fold0-of2-1steps", models / "A-fold0-of2-1steps-seed1"))
    assert any(not np.array_equal(w0[k], w1[k]) for k in w0)  # another seed trained another model
    with pytest.raises(SystemExit, match="another design"):  # seed 0 into seed 1's record: refused
        lesion_cv.main(run + ["--out", str(tmp_path / "s1.json")])
