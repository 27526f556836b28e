"""Training the breath-hold classifier on a small simulated cohort, and fine-tuning it on labelled folders."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from ctmodels import io
from ctmodels import quality as Q
from ctmodels.cli import main
from ctmodels.phantoms import chest_phantom
from ctmodels.train_quality import train
from ctmodels.types import CTVolume, VolumeMeta

pytestmark = pytest.mark.slow

SP = (2.5, 0.8, 0.8)


def test_train_on_a_small_cohort_writes_a_loadable_model_that_separates_the_cases(tmp_path):
    rec = train(None, tmp_path / "m", n_train=2, n_test=1, seed=0)
    assert rec["train_cases"] == 2 * 10 and rec["train_measured"] >= 18 and rec["train_sources"] == []
    m = rec["metrics_held_out"]
    assert m["n_cases"] == 6 and m["severe_caught_rate"] == 1.0 and m["mild_pass_rate"] == 1.0
    assert rec["coefficients"]["posterior_bowing"] > 0 and rec["coefficients"]["circularity"] < 0
    feats = load_file(str(tmp_path / "m" / "training_features.safetensors"))
    assert feats["X"].shape == (rec["train_measured"], 4) and set(np.unique(feats["y"])) == {0.0, 1.0}
    chk = Q.BreathHoldChecker.from_pretrained(tmp_path / "m")
    base = chest_phantom(SP, extent_mm=75, seed=41)
    expired = Q.simulate_expiration(base, SP, 0.5).astype(np.int16)
    assert chk.predict(CTVolume(base, SP, VolumeMeta(units="HU"))).verdict == Q.PASS
    assert chk.predict(CTVolume(expired, SP, VolumeMeta(units="HU"))).verdict == Q.FAIL


def _labelled(root, losses, seeds):
    root.mkdir()
    for loss, seed in zip(losses, seeds):
        vol = chest_phantom(SP, extent_mm=75, seed=seed)
        if loss:
            vol = Q.simulate_expiration(vol, SP, loss).astype(np.int16)
        io.write_volume_nifti(vol, SP, root / f"study-{seed}.nii.gz")
    return root


def test_fine_tune_on_labelled_folders_keeps_names_out_of_the_model(tmp_path, capsys):
    """Fine-tuning a QA site's labelled studies: bad entries are reported, not fatal; the model folder
    holds counts, never study names (they can be patient names); it can be fine-tuned again."""
    passed = _labelled(tmp_path / "pass", [0.0, 0.0], [51, 52])
    failed = _labelled(tmp_path / "fail", [0.3, 0.5], [53, 54])
    (failed / "Doe_Jane.zip").write_bytes(b"PK\x03\x04 not really")
    (passed / "notes.txt").write_text("not a study")
    out = tmp_path / "tuned"
    assert main(["train-quality", "--pass-dir", str(passed), "--fail-dir", str(failed), "--out", str(out)]) == 0
    used = json.loads(capsys.readouterr().out)
    assert used["pass"] == 2 and used["fail"] == 2 and len(used["skipped"]) == 2
    assert any(s.startswith("Doe_Jane.zip: ") for s in used["skipped"])
    assert any("not checked" in s and "notes.txt" in s for s in used["skipped"])
    config = (out / "config.json").read_text()
    assert json.loads(config)["fine_tuned_on"] == {"pass": 2, "fail": 2, "skipped": 2}
    assert "Doe" not in config and "study-" not in config
    base = Q.LogisticShapeModel.load(_bundled())
    tuned = Q.LogisticShapeModel.load(out)
    assert not np.allclose(tuned.weight, base.weight)  # the labelled studies moved the fit
    n_base = len(load_file(str(_bundled() / "training_features.safetensors"))["y"])
    assert len(load_file(str(out / "training_features.safetensors"))["y"]) == n_base + 4 * 5
    again = tmp_path / "again"
    assert main(["train-quality", "--pass-dir", str(passed), "--fail-dir", str(failed), "--out", str(again),
                 "--base", str(out)]) == 0
    capsys.readouterr()
    assert len(load_file(str(again / "training_features.safetensors"))["y"]) == n_base + 8 * 5


def _bundled():
    from ctmodels.hub import resolve_model_dir

    return resolve_model_dir(Q.MODEL_NAME)


def test_fine_tune_errors_are_one_line(tmp_path, capsys):
    passed = _labelled(tmp_path / "pass", [0.0], [51])
    assert main(["train-quality", "--pass-dir", str(passed), "--out", str(tmp_path / "o")]) == 2
    assert "give both --pass-dir and --fail-dir" in capsys.readouterr().err
    bare = tmp_path / "bare"
    Q.BreathHoldChecker.from_pretrained().model.save_pretrained(bare)  # no training features beside it
    assert main(["train-quality", "--pass-dir", str(passed), "--fail-dir", str(passed), "--out",
                 str(tmp_path / "o"), "--base", str(bare)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no training_features.safetensors" in err and str(bare) in err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    assert main(["train-quality", "--pass-dir", str(empty), "--fail-dir", str(empty), "--out",
                 str(tmp_path / "o")]) == 2
    assert "no measurable studies" in capsys.readouterr().err


def test_fine_tuning_into_the_model_it_starts_from_is_refused(tmp_path, capsys):
    """--out the same folder as --base (the bundled model's, by default) wrote the fine-tuned model over the one it
    started from: the bundled weights then failed their SHA-256 check, and every later load looked for them on the
    Hub. Refused now, before anything is measured or written."""
    import shutil

    from ctmodels import hub

    base = tmp_path / "base"
    shutil.copytree(hub.weights_root() / "breath-hold-logreg", base)
    before = {p.name: p.read_bytes() for p in base.iterdir()}
    passed = _labelled(tmp_path / "pass", [0.0], [51])
    failed = _labelled(tmp_path / "fail", [0.5], [52])
    assert main(["train-quality", "--pass-dir", str(passed), "--fail-dir", str(failed), "--out",
                 str(base / "."), "--base", str(base)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out must differ from the model fine-tuned" in err
    assert {p.name: p.read_bytes() for p in base.iterdir()} == before
