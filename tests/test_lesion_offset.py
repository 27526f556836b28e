"""The consolidation / GGO decision offset: splitting, fitting with a known answer, nested gain,
and the segmenter applying a model's offset the same way (no ../shared needed)."""

import numpy as np
import pytest

from ctmodels import lesion_offset as lo
from ctmodels.errors import InvalidInputError, WeightsError


def _cohort(bias, n=12, folds=4, seed=0, gap=0.3):
    """Slices whose truth is consolidation where a hidden margin m > 0, else GGO (a disc of infection
    on background and lung). The model's log-ratio is m - bias: a model biased against
    consolidation by ``bias``. |m| >= ``gap`` everywhere, so any offset within ``gap`` of ``bias``
    splits perfectly."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        yy, xx = np.mgrid[:48, :48]
        inf = (yy - 24) ** 2 + (xx - 24) ** 2 < 15 ** 2
        m = rng.uniform(gap, 2.5, inf.shape) * np.where(xx < rng.integers(14, 34), 1, -1)
        ref = np.where(inf, np.where(m > 0, 2, 1), np.where(xx < 4, 0, 3)).astype(np.uint8)
        ratio = (m - bias).astype(np.float32)
        labels = np.where(inf, np.where(ratio > 0, 2, 1), ref).astype(np.uint8)
        out.append(lo.ScoredSlice(f"s{k}", k % folds, labels, ratio, ref))
    return out


def test_split_moves_only_the_ggo_consolidation_boundary():
    labels = np.array([[0, 1, 2, 3], [1, 1, 2, 2]], np.uint8)
    ratio = np.array([[5, -0.4, 0.2, 5], [-1.5, 0.6, -0.1, 3]], np.float32)
    assert np.array_equal(lo.split_infection(labels, ratio, 0.0), labels)  # d = 0: the labels as they are
    up = lo.split_infection(labels, ratio, 0.5)
    assert up.tolist() == [[0, 2, 2, 3], [1, 2, 2, 2]]
    down = lo.split_infection(labels, ratio, -2.0)
    assert down.tolist() == [[0, 1, 1, 3], [1, 1, 1, 2]]
    for out in (up, down):  # background, lung and the infection mask never change
        assert np.array_equal((out == 1) | (out == 2), (labels == 1) | (labels == 2))
        assert np.array_equal(out[(labels == 0) | (labels == 3)], labels[(labels == 0) | (labels == 3)])
    with pytest.raises(InvalidInputError, match="differ in shape"):
        lo.split_infection(labels, ratio[:1], 0.5)


def test_log_ratio_of_probabilities():
    p = np.zeros((4, 1, 3), np.float32)
    p[1] = [[0.5, 0.2, 0.0]]
    p[2] = [[0.5, 0.4, 0.3]]
    r = lo.log_ratio(p)
    assert r.shape == (1, 3)
    assert r[0, 0] == pytest.approx(0.0) and r[0, 1] == pytest.approx(np.log(2))
    assert np.isfinite(r[0, 2]) and r[0, 2] > 10  # p(GGO) = 0 is floored, not -inf


def test_fit_finds_the_bias_of_a_biased_model_and_the_nested_estimate_shows_the_gain():
    slices = _cohort(bias=1.0, gap=0.1)  # only d = 1 splits every slice perfectly
    assert lo.fit_offset(slices) == 1.0
    plain, fitted = lo.slice_scores(slices, 0.0).mean(), lo.slice_scores(slices, 1.0).mean()
    assert fitted == pytest.approx(1.0) and plain < 0.9
    nested = lo.nested_gain(slices)
    assert nested["offset"] == 1.0 and [v["offset"] for v in nested["folds"].values()] == [1.0] * 4
    assert nested["plain"] == pytest.approx(plain) and nested["fitted"] == pytest.approx(1.0)
    assert nested["gain"] == pytest.approx(1.0 - plain) and nested["slices"] == len(slices)


def test_an_unbiased_model_keeps_offset_zero_on_ties_and_gains_nothing():
    slices = _cohort(bias=0.0, gap=0.3)  # -0.25 .. +0.25 all split perfectly: the tie goes to 0
    assert lo.fit_offset(slices) == 0.0
    nested = lo.nested_gain(slices)
    assert nested["gain"] == 0.0 and nested["plain"] == pytest.approx(1.0)
    assert lo.fit_offset(_cohort(bias=-0.5, gap=0.1)) == -0.5  # biased towards consolidation: a negative offset


def test_nested_estimate_needs_two_folds_and_fitting_needs_slices():
    with pytest.raises(InvalidInputError, match="at least 2 folds"):
        lo.nested_gain(_cohort(bias=1.0, folds=1))
    with pytest.raises(InvalidInputError, match="no slices"):
        lo.fit_offset([])


@pytest.mark.parametrize("size", [(256, 256), (200, 310)])
def test_segmenter_applies_a_models_offset_like_split_infection(size):
    import torch

    from ctmodels.lesion import LesionSegmenter
    from ctmodels.lesion_model import build_lesion_unet

    torch.manual_seed(0)
    net = build_lesion_unet()
    img = np.random.default_rng(1).integers(0, 256, size).astype(np.uint8)
    plain = LesionSegmenter(net, device="cpu", backend="torch").predict(img)
    moved = LesionSegmenter(net, {"consolidation_offset": 0.3}, device="cpu", backend="torch").predict(img)
    expected = lo.split_infection(plain.labels, lo.log_ratio(plain.probabilities), 0.3)
    assert (moved.labels != plain.labels).sum() > 50  # the offset does move the split here
    assert (moved.labels == expected).mean() > 0.999  # float16 probabilities differ only at ties
    inf = lambda a: (a == 1) | (a == 2)  # noqa: E731
    assert np.array_equal(inf(moved.labels), inf(plain.labels))
    assert np.array_equal(moved.probabilities, plain.probabilities)
    assert np.array_equal(moved.soft_counts, plain.soft_counts)
    with pytest.raises(WeightsError, match="finite"):
        LesionSegmenter(net, {"consolidation_offset": float("nan")}, device="cpu", backend="torch")
