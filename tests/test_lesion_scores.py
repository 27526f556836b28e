"""Held-out scoring of the lesion model: per-slice Dice, their summary, and how uncertain the means are."""

from types import SimpleNamespace

import numpy as np
import pytest

from ctmodels import lesion_data as ld
from ctmodels.train_lesion import (bootstrap_interval, evaluate, per_slice_scores, summarise_scores,
                                   uncertainty)

GGO_OR_CONS = ld.BIT[ld.GGO] | ld.BIT[ld.CONSOLIDATION]


def _semiseg():
    """Two multi-class slices at native sizes: one with GGO and consolidation, one with GGO only."""
    a = np.zeros((20, 30), np.uint8)
    a[2:8, 2:8], a[10:14, 10:20] = ld.GGO, ld.CONSOLIDATION
    b = np.zeros((24, 24), np.uint8)
    b[5:15, 5:15] = ld.GGO
    originals = [(np.full(lab.shape, 100, np.uint8), lab) for lab in (a, b)]
    return ld.SliceSet(images=np.zeros((2, 8, 8), np.uint8), allowed=np.zeros((2, 8, 8), np.uint8),
                       names=["1", "2"], groups=np.array([0, 0]), multiclass=True, originals=originals)


def _infection():
    """Three lung-infection slices from volumes 4, 4 and 9: lung {3}, infection {1,2}, outside {0}."""
    bits = np.full((3, 16, 16), ld.BIT[ld.BACKGROUND], np.uint8)
    bits[:, 2:14, 2:14] = ld.BIT[ld.LUNG]
    bits[0, 4:8, 4:8] = bits[1, 4:6, 4:6] = bits[2, 8:12, 8:12] = GGO_OR_CONS
    return ld.SliceSet(images=np.zeros((3, 16, 16), np.uint8), allowed=bits, names=["a", "b", "c"],
                       groups=np.array([4, 4, 9]), multiclass=False)


class _Oracle:
    """Predicts the reference; ``swap`` turns GGO into consolidation and back; ``miss`` drops the
    infection of the lung-infection slices (predicted as other lung)."""

    def __init__(self, semi, inf, swap=False, miss=False):
        self.semi = {id(img): lab for img, lab in semi.originals}
        self.inf, self.swap, self.miss = inf, swap, miss

    def predict(self, x, tta=True, units=None, keep_probabilities=True):
        if x.ndim == 2:
            lab = self.semi[id(x)].copy()
            if self.swap:
                lab = np.where(lab == ld.GGO, ld.CONSOLIDATION, np.where(lab == ld.CONSOLIDATION, ld.GGO, lab))
            return SimpleNamespace(labels=lab)
        bits = self.inf.allowed
        labels = np.select([bits == ld.BIT[ld.LUNG], bits == GGO_OR_CONS], [ld.LUNG, ld.LUNG if self.miss else ld.GGO],
                           ld.BACKGROUND)
        return SimpleNamespace(labels=labels.astype(np.uint8))


def test_perfect_predictions_score_one_and_no_involvement_error():
    semi, inf = _semiseg(), _infection()
    m = evaluate(_Oracle(semi, inf), semi, inf)
    for k in ("semiseg_infection_dice", "semiseg_ggo_dice", "semiseg_consolidation_dice",
              "infection_slices_infection_dice", "infection_slices_lung_dice"):
        assert m[k] == 1.0, k
    assert m["semiseg_slices"] == 2 and m["infection_slices"] == 3
    assert m["involvement_error_bias_pp"] == 0.0 and m["involvement_error_sd_pp"] == 0.0
    # slice 2 has no consolidation, found as none: 1 by the card's rule, left out of *_nonempty, 0 by Inf-Net's tool
    assert m["semiseg_consolidation_dice_nonempty"] == 1.0 and m["semiseg_consolidation_dice_absent_zero"] == 0.5
    assert m["semiseg_ggo_dice_absent_zero"] == 1.0


def test_swapped_classes_keep_infection_and_lose_ggo_and_consolidation():
    semi, inf = _semiseg(), _infection()
    rows = per_slice_scores(_Oracle(semi, inf, swap=True), semi, inf)
    assert rows["semiseg_infection"].tolist() == [1.0, 1.0]
    assert rows["semiseg_ggo"].tolist() == [0.0, 0.0]
    # slice 2 has no consolidation: its reference is empty but the prediction is not -> 0
    assert rows["semiseg_consolidation"].tolist() == [0.0, 0.0]
    assert rows["semiseg_consolidation_present"].tolist() == [True, False]
    m = summarise_scores(rows)
    assert m["semiseg_consolidation_dice_nonempty"] == 0.0 and m["semiseg_ggo_dice_nonempty"] == 0.0


def test_missed_infection_is_counted_per_slice_with_its_involvement_error():
    semi, inf = _semiseg(), _infection()
    rows = per_slice_scores(_Oracle(semi, inf, miss=True), semi, inf)
    assert rows["infection_slices_infection"].tolist() == [0.0, 0.0, 0.0]
    assert rows["infection_slices_lung"].tolist() == [1.0, 1.0, 1.0]
    # each slice's infection share of its 144-pixel lung, missed entirely
    assert rows["involvement_error_pp"] == pytest.approx([-100 * 16 / 144, -100 * 4 / 144, -100 * 16 / 144])
    assert rows["infection_slices_volume"].tolist() == [4, 4, 9]


def test_bootstrap_interval_of_a_mean():
    assert bootstrap_interval([0.4] * 7) == pytest.approx([0.4, 0.4])
    x = np.random.default_rng(1).normal(0.5, 0.2, 400)
    lo, hi = bootstrap_interval(x)
    half = 1.96 * x.std() / np.sqrt(len(x))  # normal approximation
    assert lo < x.mean() < hi
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)
    assert bootstrap_interval(x) == [lo, hi]  # seeded: the card does not change from one run to the next
    lo3, hi3 = bootstrap_interval(x[:25])
    assert hi3 - lo3 > 3 * (hi - lo)  # fewer slices, wider interval


def test_uncertainty_gives_intervals_for_semiseg_and_a_dice_per_held_out_volume():
    rows = {"semiseg_infection": np.array([0.9, 0.7, 0.8]), "semiseg_ggo": np.array([0.2, 0.9, 0.5]),
            "semiseg_consolidation": np.array([0.0, 1.0, 0.3]),
            "infection_slices_infection": np.array([0.5, 0.7, 0.9, 0.8]),
            "infection_slices_lung": np.array([1.0, 0.9, 0.95, 0.97]),
            "infection_slices_volume": np.array([4, 4, 9, 14])}
    u = uncertainty(rows)
    for k in ("infection", "ggo", "consolidation"):
        lo, hi = u[f"semiseg_{k}_dice_ci95"]
        assert min(rows[f"semiseg_{k}"]) <= lo <= rows[f"semiseg_{k}"].mean() <= hi <= max(rows[f"semiseg_{k}"])
    assert u["infection_slices_infection_dice_by_volume"] == {"4": 0.6, "9": 0.9, "14": 0.8}
    assert u["infection_slices_count_by_volume"] == {"4": 2, "9": 1, "14": 1}
    assert u["infection_slices_lung_dice_by_volume"] == {"4": 0.95, "9": 0.95, "14": 0.97}


def test_volume_record_counts_groups_and_names_single_slice_ones():
    from ctmodels.train_lesion import volume_record

    s = _infection()
    assert volume_record(s) == {"groups": 2, "single_slice_groups": ["c"]}
    # the same slices in parts (as train() holds them after its splits)
    assert volume_record(s.subset([2]), s.subset([0, 1])) == {"groups": 2, "single_slice_groups": ["c"]}
    assert volume_record(s.subset([0]), s.subset([2])) == {"groups": 2, "single_slice_groups": ["a", "c"]}
