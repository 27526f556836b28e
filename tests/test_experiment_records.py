"""The cross-validation records in docs/records are what the code makes, on the folds it makes, and the
experiment log quotes them as they are."""
import json

import pytest
from conftest import ROOT

RECORDS = sorted((ROOT / "docs" / "records").glob("*.json"))


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
