"""Model cards are generated from each weights folder's training record, and say how the checkpoint was chosen."""

import json
import shutil

import pytest

from conftest import ROOT, bench_script
from ctmodels.modelcard import lesion_card, quality_card

WEIGHTS = ROOT / "weights"


def _bundled_lesion_copy(tmp_path):
    """A copy of the bundled lesion folder and its training record, to edit."""
    folder = tmp_path / "lesion-unet-effb0"
    shutil.copytree(WEIGHTS / "lesion-unet-effb0", folder)
    return folder, json.loads((folder / "training.json").read_text())


def _write_record(folder, rec):
    (folder / "training.json").write_text(json.dumps(rec))


@pytest.mark.parametrize("name,card", [("lesion-unet-effb0", lesion_card), ("breath-hold-logreg", quality_card)])
def test_bundled_cards_match_their_training_records(name, card):
    assert (WEIGHTS / name / "README.md").read_text() == card(WEIGHTS / name)


def test_lesion_card_reports_the_batch_mix_and_the_validation_choice(tmp_path):
    folder, rec = _bundled_lesion_copy(tmp_path)
    for key in ("validation", "recipe_choice", "semiseg_per_batch"):
        rec.pop(key, None)
    _write_record(folder, rec)
    text = lesion_card(folder)
    assert "last\n  checkpoint is the one shipped" in text and "half SemiSeg, half" in text
    assert "Choice of recipe" not in text
    rec["recipe_choice"] = "by 4-fold cross-validation"  # a recipe chosen without a validation split is named too
    _write_record(folder, rec)
    assert "checkpoint is the one shipped.\n* Choice of recipe: by 4-fold cross-validation" in lesion_card(folder)
    rec.pop("recipe_choice")
    rec["semiseg_per_batch"] = 6
    rec["metrics_held_out"]["semiseg_ggo_dice"] = 0.6123
    rec["validation"] = {"covid_semiseg_train": ["5", "67"], "covid_ct_lung_infection_slices_volumes": [2, 10],
                         "covid_ct_lung_infection_slices_count": 150, "score": "mean of three Dice",
                         "history": [{"step": 250, "score": 0.41}, {"step": 500, "score": 0.52}], "best_step": 500}
    _write_record(folder, rec)
    text = lesion_card(folder)
    assert "6 SemiSeg and 2\nlung-infection slices each" in text
    assert "SemiSeg slices 5, 67; lung-infection volumes [2, 10] (150 slices)" in text
    assert "250: 0.410, 500: 0.520" in text and "best on validation (step 500)" in text
    assert "| semiseg_ggo_dice | 0.612 |" in text
    assert "last\n  checkpoint" not in text


def test_lesion_card_says_where_training_started(tmp_path):
    folder, rec = _bundled_lesion_copy(tmp_path)
    rec.pop("init", None)
    _write_record(folder, rec)
    assert "from random weights" in lesion_card(folder)
    rec["init"] = {"folder": "x", "model_sha256": "abcdef0123456789" * 4, "command": "ctmodels train-lesion A",
                   "steps": 2400, "best_step": 1750}
    _write_record(folder, rec)
    text = lesion_card(folder)
    assert "from random weights" not in text
    assert ("continuing from earlier weights (model.safetensors SHA-256 abcdef012345...: 2400 steps of\n"
            "`ctmodels train-lesion A`, its best validation checkpoint, step 1750; to reproduce, run that first") in text


def test_lesion_card_names_the_intensity_augmentation_and_weight_averaging_when_recorded(tmp_path):
    from ctmodels.train_lesion import INTENSITY_AUGMENTATION

    folder, rec = _bundled_lesion_copy(tmp_path)
    rec.pop("ema", None), rec.pop("intensity_augmentation", None), rec.pop("recipe_choice", None)
    _write_record(folder, rec)
    assert "intensity augmentation" not in lesion_card(folder) and "moving average" not in lesion_card(folder)
    rec.update(ema=0.998, intensity_augmentation={"name": "weak", **INTENSITY_AUGMENTATION["weak"]})
    _write_record(folder, rec)
    text = lesion_card(folder)
    assert ("weak intensity augmentation (gamma exp(+-0.1), contrast 0.9-1.1, brightness +-0.03), "
            "exponential moving average of the weights (decay 0.998) used as the result") in text


def test_lesion_card_shows_how_uncertain_the_held_out_means_are(tmp_path):
    folder, rec = _bundled_lesion_copy(tmp_path)
    rec.pop("uncertainty_held_out", None)
    _write_record(folder, rec)
    assert "95 % interval" not in lesion_card(folder)
    rec["metrics_held_out"].update(semiseg_infection_dice=0.8, semiseg_ggo_dice=0.5, semiseg_consolidation_dice=0.3)
    rec["uncertainty_held_out"] = {
        "method": "bootstrap", "semiseg_infection_dice_ci95": [0.75, 0.85], "semiseg_ggo_dice_ci95": [0.4, 0.7],
        "semiseg_consolidation_dice_ci95": [0.2, 0.4],
        "infection_slices_infection_dice_by_volume": {"4": 0.61, "9": 0.8},
        "infection_slices_lung_dice_by_volume": {"4": 0.97, "9": 0.99},
        "infection_slices_count_by_volume": {"4": 116, "9": 1}}
    _write_record(folder, rec)
    text = lesion_card(folder)
    assert "| infection | 0.800 | 0.750 - 0.850 | 0.739 (below the interval) |" in text
    assert "| GGO | 0.500 | 0.400 - 0.700 | 0.646 (inside the interval) |" in text
    assert "| consolidation | 0.300 | 0.200 - 0.400 | 0.458 (above the interval) |" in text
    assert "Lung-infection infection Dice per held-out volume: volume 4 (116 slices): 0.610, volume 9 (1 slice): 0.800." in text


def test_lesion_card_names_single_slice_volume_groups(tmp_path):
    folder, rec = _bundled_lesion_copy(tmp_path)
    rec["lung_infection_volumes"] = {"groups": 20, "single_slice_groups": []}
    _write_record(folder, rec)
    assert "group of one" not in lesion_card(folder)
    rec["lung_infection_volumes"] = {"groups": 22, "single_slice_groups": ["0007", "0100"]}
    _write_record(folder, rec)
    assert "the jumps give 22 groups, and slices 0007, 0100 each form a group of one" in lesion_card(folder)


def test_readme_quotes_the_bundled_lesion_records_held_out_figures():
    rec = json.loads((WEIGHTS / "lesion-unet-effb0" / "training.json").read_text())
    m, u = rec["metrics_held_out"], rec["uncertainty_held_out"]
    readme = " ".join((ROOT / "README.md").read_text().split())
    for k, label in (("infection", "infection"), ("ggo", "GGO"), ("consolidation", "consolidation")):
        lo, hi = u[f"semiseg_{k}_dice_ci95"]
        assert f"{label} {m[f'semiseg_{k}_dice']:.3f} ({lo:.3f}-{hi:.3f})" in readme, k
    assert f"{m['semiseg_slices']} held-out COVID-SemiSeg slices" in readme
    err = json.loads((WEIGHTS / "lesion-unet-effb0" / "preprocessing.json").read_text())["involvement_error"]
    assert f"bias {err['bias_pp']:.1f}, SD {err['sd_pp']:.1f} percentage points" in readme  # what seg.assess uses
    assert (f"On {m['infection_slices']} held-out lung-infection slices: infection "
            f"{m['infection_slices_infection_dice']:.3f}, lung {m['infection_slices_lung_dice']:.3f}.") in readme
    if "every one of the three figures lies inside our intervals" in readme:
        from ctmodels.modelcard import INF_NET

        for k, ref in INF_NET.items():
            lo, hi = u[f"semiseg_{k}_dice_ci95"]
            assert lo <= ref <= hi, k


def test_lesion_card_states_a_decision_offset_only_when_the_model_has_one(tmp_path):
    folder, _ = _bundled_lesion_copy(tmp_path)
    assert "consolidation_offset" not in lesion_card(folder)
    pre = json.loads((folder / "preprocessing.json").read_text())
    (folder / "preprocessing.json").write_text(json.dumps({**pre, "consolidation_offset": 0.5}))
    assert "log p(consolidation) - log p(GGO) +0.50 > 0" in lesion_card(folder)


def test_lesion_card_names_the_gpu_a_model_trained_on(tmp_path):
    folder, rec = _bundled_lesion_copy(tmp_path)
    rec.pop("device_name", None), rec.pop("train_time_note", None)
    rec.update(device="cpu", train_seconds=4200)
    _write_record(folder, rec)
    assert "70 min on cpu." in lesion_card(folder)  # records from before CPU runs were named
    rec.update(device_name="2 CPU threads (AMD EPYC)")
    _write_record(folder, rec)
    assert "70 min on 2 CPU threads (AMD EPYC)." in lesion_card(folder)
    rec.update(device="cuda", device_name="NVIDIA H200", train_seconds=221)
    _write_record(folder, rec)
    assert "4 min on NVIDIA H200. Loss:" in lesion_card(folder)
    rec.update(train_time_note="Trained in three parts, resumed from its saved state.")
    _write_record(folder, rec)
    assert "4 min on NVIDIA H200.\nTrained in three parts, resumed from its saved state. Loss:" in lesion_card(folder)


def test_lesion_card_states_the_recorded_behaviour_on_lesion_free_inputs_or_that_it_was_not_measured(tmp_path):
    """The card's limitations take their figures from the record (the tests that measure them check the record);
    weights released before anyone measured them say so instead of carrying another model's figures."""
    folder, rec = _bundled_lesion_copy(tmp_path)
    rec["behaviour"]["padding_phantom_ggo_pct"] = 12
    rec["behaviour"]["clear_lung_ct"].update(involved_pct=2.5, grade="CT-1", lowest_quarter_share=0.4)
    _write_record(folder, rec)
    text = lesion_card(folder)
    assert "it finds 2.5 % of the lung involved (CT-1, not CT-0), 40 % of it" in text
    assert "still came out 12 % GGO" in text and "not been measured" not in text
    rec.pop("behaviour")
    _write_record(folder, rec)
    text = lesion_card(folder)
    assert "has not been measured yet" in text and "GGO:" not in text and "% of the lung involved" not in text


def test_releasing_the_same_weights_again_keeps_their_measured_behaviour_and_new_weights_do_not_inherit_it(
        tmp_path, monkeypatch):
    import sys

    release = bench_script("release_weights", "scripts")
    monkeypatch.setattr(release, "ROOT", tmp_path)
    (tmp_path / "ctmodels").mkdir()
    shutil.copytree(WEIGHTS / "lesion-unet-effb0", tmp_path / "weights" / "lesion-unet-effb0")
    run, rec = _bundled_lesion_copy(tmp_path / "run")  # a run folder: its record has no behaviour
    rec.pop("behaviour")
    _write_record(run, rec)
    monkeypatch.setattr(sys, "argv", ["release_weights.py", "lesion-unet-effb0", str(run)])
    release.main("lesion-unet-effb0", str(run))
    dst = tmp_path / "weights" / "lesion-unet-effb0"
    assert json.loads((dst / "training.json").read_text())["behaviour"]["padding_phantom_ggo_pct"] == 44
    assert "still came out 44 % GGO" in (dst / "README.md").read_text()
    pinned = json.loads((tmp_path / "ctmodels" / "weights_sha256.json").read_text())["lesion-unet-effb0"]["files"]
    assert pinned["training.json"] == release.sha256_file(dst / "training.json")
    weights = bytearray((run / "model.safetensors").read_bytes())
    weights[-1] ^= 1  # other weights
    (run / "model.safetensors").write_bytes(bytes(weights))
    release.main("lesion-unet-effb0", str(run))
    assert "behaviour" not in json.loads((dst / "training.json").read_text())
    assert "has not been measured yet" in (dst / "README.md").read_text()
