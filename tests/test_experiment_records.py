"""The cross-validation records in docs/records are what the code makes, on the folds it makes, and the
experiment log quotes them as they are."""
import json

import pytest
from conftest import ROOT

RECORDS = sorted((ROOT / "docs" / "records").glob("*.json"))


# plan 8's two arms, recipe C with seeds 0, 1 and 2: 2400 steps (plans 3 and 7) and 4800 steps (plans 7 and 8)
PLAN8_BASE = ("plan3-cv-h200", "plan7-cv-C2400-seed1-h200", "plan7-cv-C2400-seed2-h200")
PLAN8_ARM = ("plan7-cv-C4800-h200", "plan8-cv-C4800-seed1-h200", "plan8-cv-C4800-seed2-h200")


def _records(*names):
    return [json.loads((ROOT / "docs" / "records" / f"{n}.json").read_text()) for n in names]


@pytest.fixture(scope="module")
def lesion_cv():
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import lesion_cv
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return lesion_cv


def test_there_are_records_to_check():
    assert len(RECORDS) >= 4


@pytest.mark.parametrize("path", RECORDS, ids=[p.name for p in RECORDS])
def test_a_record_matches_the_design_and_pooling_of_the_code(path, lesion_cv):
    record = json.loads(path.read_text())
    for name, settings in record["recipes"].items():
        assert settings == lesion_cv.design(name, settings["seed"]), f"{path.name}: recipe {name}"
    again = lesion_cv.summarise(record["results"], record["folds"])
    assert set(again) == set(record["summary"])
    for name, summary in record["summary"].items():
        for key, value in summary.items():
            assert again[name][key] == pytest.approx(value, abs=1e-12), f"{path.name}: {name} {key}"


def test_records_validate_on_the_same_folds_and_never_on_the_held_out_split():
    card = json.loads((ROOT / "weights" / "lesion-unet-effb0" / "training.json").read_text())
    held_names = set(card["held_out"]["covid_semiseg_train"])
    held_volumes = set(card["held_out"]["covid_ct_lung_infection_slices_volumes"])
    folds = {}
    for path in RECORDS:
        record = json.loads(path.read_text())
        for result in record["results"]:
            val = result["validation"]
            names, volumes = val["covid_semiseg_train"], val["covid_ct_lung_infection_slices_volumes"]
            assert not held_names & set(names) and not held_volumes & set(volumes), path.name
            folds.setdefault((record["folds"], result["fold"]), set()).add((tuple(names), tuple(volumes)))
    assert all(len(ways) == 1 for ways in folds.values()), "one fold number, one validation set"
    four = [next(iter(ways)) for (k, _), ways in sorted(folds.items()) if k == 4]
    all_names = [n for names, _ in four for n in names]
    all_volumes = [v for _, volumes in four for v in volumes]
    assert len(all_names) == len(set(all_names)) == 39  # every training SemiSeg slice validated once
    assert len(all_volumes) == len(set(all_volumes)) == 17


def test_the_experiment_log_quotes_every_pooled_score_as_recorded():
    log = (ROOT / "docs" / "lesion-experiments.md").read_text()
    for path in RECORDS:
        for summary in json.loads(path.read_text())["summary"].values():
            assert f"{summary['score']:.4f}" in log, path.name


def test_readme_quotes_plan8s_cross_validated_semiseg_dice_of_the_shipped_recipe_as_recorded():
    """README's Accuracy gives, beside the held-out split, the out-of-fold SemiSeg Dice of the shipped recipe and
    steps for each of plan 8's three seeds, from their records."""
    readme = (ROOT / "README.md").read_text()
    accuracy = " ".join(readme[readme.index("## Accuracy"):readme.index("## Performance")].split())
    runs = _records(*PLAN8_ARM)
    summaries = [r["summary"]["C"] for r in runs]
    assert [r["steps"] for r in runs] == [json.loads(
        (ROOT / "weights" / "lesion-unet-effb0" / "training.json").read_text())["steps"]] * 3
    for key, name in (("semiseg_infection_dice", "infection"), ("semiseg_ggo_dice", "GGO"),
                      ("semiseg_consolidation_dice", "consolidation")):
        quoted = f"{name} " + " / ".join(f"{s[key]:.3f}" for s in summaries)
        assert quoted in accuracy, quoted
    assert all(s["semiseg_slices"] == 39 for s in summaries) and "each of the 39 training SemiSeg slices" in accuracy


def test_plan8s_rule_pairs_arms_by_seed(lesion_cv):
    """`lesion_cv.py paired`, on the three recorded 2400-step seeds of recipe C as the base (pooled 0.5396,
    0.5048, 0.5129: sample SD 0.0182) and arms made from them with known gains: SE = sqrt(2 * 0.0182^2 / 3) =
    0.0149, so the bar is 2 SE = 0.0297."""
    import copy

    base = _records(*PLAN8_BASE)

    def arm(*gains):
        out = []
        for record, g in zip(base, gains):
            r = copy.deepcopy(record)
            r["steps"], r["summary"]["C"]["score"] = 4800, record["summary"]["C"]["score"] + g
            out.append(r)
        return out

    r = lesion_cv.paired_by_seed(base, arm(0.04, 0.04, 0.04), "C")
    assert r["seeds"] == [0, 1, 2] and r["gains"] == pytest.approx([0.04] * 3)
    assert r["se"] == pytest.approx(0.01486, abs=1e-4) and r["bar"] == pytest.approx(0.0297, abs=2e-4)
    assert r["wins"]
    assert not lesion_cv.paired_by_seed(base, arm(0.025, 0.025, 0.025), "C")["wins"]  # all > 0, under 2 SE
    assert not lesion_cv.paired_by_seed(base, arm(0.07, 0.07, -0.001), "C")["wins"]  # one seed lost
    # the one pair already known: 4800 against 2400 steps with seed 0, g_0 = +0.0243
    four, = _records(PLAN8_ARM[0])
    r = lesion_cv.paired_by_seed(base[:2], [four] + arm(0.0, 0.01)[1:2], "C")
    assert round(r["gains"][0], 4) == 0.0243
    with pytest.raises(SystemExit, match="same seeds"):
        lesion_cv.paired_by_seed(base, arm(0.04, 0.04), "C")
    with pytest.raises(SystemExit, match="at least 2"):
        lesion_cv.paired_by_seed(base[:1], [four], "C")


def test_plan9s_rule_pairs_one_seed_with_the_sd_plan8_measured(lesion_cv):
    """Plan 9 (one GPU lease holds one seed's four folds at 9600 steps): the arm of seed 0 against plan 7's seed-0
    run at 4800 steps, with the SD of one run's pooled score taken from plan 8's three 4800-step runs, as the
    experiment log states it: SE = 0.0055 * sqrt(2) = 0.0078, bar max(0.02, 2 SE) = 0.02."""
    import copy
    import statistics

    arm8 = _records(*PLAN8_ARM)
    sd = round(statistics.stdev(r["summary"]["C"]["score"] for r in arm8), 4)
    log = (ROOT / "docs" / "lesion-experiments.md").read_text()
    assert sd == 0.0055 and f"--seed-sd {sd}" in log
    base = arm8[:1]

    def arm(gain):
        r = copy.deepcopy(base[0])
        r["steps"], r["summary"]["C"]["score"] = 9600, base[0]["summary"]["C"]["score"] + gain
        return [r]

    r = lesion_cv.paired_by_seed(base, arm(0.025), "C", seed_sd=sd)
    assert r["seeds"] == [0] and r["se"] == pytest.approx(0.00778, abs=1e-5) and r["bar"] == 0.02 and r["wins"]
    assert not lesion_cv.paired_by_seed(base, arm(0.015), "C", seed_sd=sd)["wins"]  # under 0.02
    assert not lesion_cv.paired_by_seed(base, arm(0.025), "C", seed_sd=0.02)["wins"]  # a noisier run: bar 0.057
    with pytest.raises(SystemExit, match="at least 2"):
        lesion_cv.paired_by_seed(base, arm(0.025), "C")  # plan 8's rule needs two seeds for its SDs


def test_plan8s_recorded_runs_decide_for_4800_steps(lesion_cv):
    """Plan 8's rule applied to its six recorded runs (recipe C with seeds 0, 1 and 2, at 2400 and 4800 steps, the
    same recipe but for the steps) decides as docs/lesion-experiments.md says: 4800 steps win."""
    base = _records(*PLAN8_BASE)
    arm = _records(*PLAN8_ARM)
    assert [a["steps"] for a in arm] == [4800] * 3 and [b["steps"] for b in base] == [2400] * 3
    strip = [{k: v for k, v in r["recipes"]["C"].items() if k != "seed"} for r in base + arm]
    assert all(s == strip[0] for s in strip)
    r = lesion_cv.paired_by_seed(base, arm, "C")
    assert r["seeds"] == [0, 1, 2] and [round(g, 4) for g in r["gains"]] == [0.0243, 0.0627, 0.0439]
    assert r["bar"] == pytest.approx(0.0220, abs=1e-4) and r["wins"]


def test_the_bundled_lesion_weights_follow_plan8s_recorded_decision(lesion_cv):
    """Plan 8's rule on its six recorded runs picks the step count of the bundled weights, trained with the plan's
    recipe and seed 0."""
    base = _records(*PLAN8_BASE)
    arm = _records(*PLAN8_ARM)
    r = lesion_cv.paired_by_seed(base, arm, "C")
    shipped = json.loads((ROOT / "weights" / "lesion-unet-effb0" / "training.json").read_text())
    recipe = arm[0]["recipes"]["C"]
    assert shipped["steps"] == (arm[0]["steps"] if r["wins"] else base[0]["steps"])
    assert (shipped["seed"], shipped["batch_size"], shipped["lr"], shipped["crop"], shipped["ema"]) == \
        (0, recipe["batch_size"], recipe["lr"], recipe["crop"], 0.0)
    assert shipped["intensity_augmentation"]["name"] == recipe["intensity"]
    assert shipped["semiseg_per_batch"] == round(recipe["semiseg_share"] * recipe["batch_size"])
