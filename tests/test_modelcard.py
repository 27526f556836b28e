"""Model cards are generated from each weights folder's training record, and say how the checkpoint was chosen."""

import json
import shutil

import pytest

from conftest import ROOT
from ctmodels.modelcard import lesion_card, quality_card

WEIGHTS = ROOT / "weights"


@pytest.mark.parametrize("name,card", [("lesion-unet-effb0", lesion_card), ("breath-hold-logreg", quality_card)])
def test_bundled_cards_match_their_training_records(name, card):
    assert (WEIGHTS / name / "README.md").read_text() == card(WEIGHTS / name)


def test_lesion_card_reports_the_batch_mix_and_the_validation_choice(tmp_path):
    folder = tmp_path / "lesion-unet-effb0"
    shutil.copytree(WEIGHTS / "lesion-unet-effb0", folder)
    rec = json.loads((folder / "training.json").read_text())
    for key in ("validation", "recipe_choice", "semiseg_per_batch"):
        rec.pop(key, None)
    (folder / "training.json").write_text(json.dumps(rec))
    text = lesion_card(folder)
    assert "last\n  checkpoint is the one shipped" in text and "half SemiSeg, half" in text
    rec["semiseg_per_batch"] = 6
    rec["metrics_held_out"]["semiseg_ggo_dice"] = 0.6123
    rec["validation"] = {"covid_semiseg_train": ["5", "67"], "covid_ct_lung_infection_slices_volumes": [2, 10],
                         "covid_ct_lung_infection_slices_count": 150, "score": "mean of three Dice",
                         "history": [{"step": 250, "score": 0.41}, {"step": 500, "score": 0.52}], "best_step": 500}
    (folder / "training.json").write_text(json.dumps(rec))
    text = lesion_card(folder)
    assert "6 SemiSeg and 2\nlung-infection slices each" in text
    assert "SemiSeg slices 5, 67; lung-infection volumes [2, 10] (150 slices)" in text
    assert "250: 0.410, 500: 0.520" in text and "best on validation (step 500)" in text
    assert "| semiseg_ggo_dice | 0.612 |" in text
    assert "last\n  checkpoint" not in text


def test_lesion_card_says_where_training_started(tmp_path):
    folder = tmp_path / "lesion-unet-effb0"
    shutil.copytree(WEIGHTS / "lesion-unet-effb0", folder)
    rec = json.loads((folder / "training.json").read_text())
    rec.pop("init", None)
    (folder / "training.json").write_text(json.dumps(rec))
    assert "from random weights" in lesion_card(folder)
    rec["init"] = {"folder": "x", "model_sha256": "abcdef0123456789" * 4, "command": "ctmodels train-lesion A",
                   "steps": 2400, "best_step": 1750}
    (folder / "training.json").write_text(json.dumps(rec))
    text = lesion_card(folder)
    assert "from random weights" not in text
    assert ("continuing from earlier weights (model.safetensors SHA-256 abcdef012345...: 2400 steps of\n"
            "`ctmodels train-lesion A`, its best validation checkpoint, step 1750; to reproduce, run that first") in text


def test_lesion_card_names_the_intensity_augmentation_and_weight_averaging_when_recorded(tmp_path):
    from ctmodels.train_lesion import INTENSITY_AUGMENTATION

    folder = tmp_path / "lesion-unet-effb0"
    shutil.copytree(WEIGHTS / "lesion-unet-effb0", folder)
    rec = json.loads((folder / "training.json").read_text())
    assert "intensity augmentation" not in lesion_card(folder) and "moving average" not in lesion_card(folder)
    rec.update(ema=0.998, intensity_augmentation={"name": "weak", **INTENSITY_AUGMENTATION["weak"]})
    (folder / "training.json").write_text(json.dumps(rec))
    text = lesion_card(folder)
    assert ("weak intensity augmentation (gamma exp(+-0.1), contrast 0.9-1.1, brightness +-0.03), "
            "exponential moving average of the weights (decay 0.998) used as the result") in text
