"""Choosing a setting on labelled slices and the nested estimate of what it gains (pure numpy)."""

import numpy as np
import pytest

from ctmodels.errors import InvalidInputError
from ctmodels.nested_choice import nested_choice, pick


def test_pick_takes_the_best_mean_and_breaks_ties_by_preference():
    assert pick({256: 0.5, 320: 0.7, 352: 0.6}) == 320
    assert pick({256: 0.7, 320: 0.7}) == 256  # tie: the smallest setting
    assert pick({-0.5: 0.7, 0.5: 0.7, 1.0: 0.6}, prefer=lambda d: (abs(d), d)) == -0.5
    with pytest.raises(InvalidInputError, match="no settings"):
        pick({})


def test_a_setting_better_everywhere_is_chosen_in_every_fold_and_its_gain_is_exact():
    folds = np.repeat([0, 1, 2], 4)
    base = np.linspace(0.3, 0.6, 12)
    n = nested_choice({256: base, 320: base + 0.05, 352: base - 0.1}, folds, baseline=256)
    assert n["choice"] == 320 and [v["choice"] for v in n["folds"].values()] == [320] * 3
    assert n["gain"] == pytest.approx(0.05) and n["plain"] == pytest.approx(base.mean())
    assert n["by_setting"][352] == pytest.approx(base.mean() - 0.1) and n["slices"] == 12


def test_an_in_sample_winner_that_only_one_fold_likes_gains_nothing_nested():
    # setting "b" is much better on fold 0 and a little worse on folds 1 and 2: chosen on all slices,
    # but every fold's choice made without it is wrong for it
    folds = np.repeat([0, 1, 2], 2)
    a = np.full(6, 0.5)
    b = np.array([0.9, 0.9, 0.45, 0.45, 0.45, 0.45])
    n = nested_choice({"a": a, "b": b}, folds, baseline="a")
    assert n["choice"] == "b"  # in-sample: 0.6 against 0.5
    assert [v["choice"] for v in n["folds"].values()] == ["a", "b", "b"]
    assert n["fitted"] == pytest.approx((0.5 * 2 + 0.45 * 4) / 6) and n["gain"] < 0  # nested: a loss


def test_nested_choice_refuses_what_it_cannot_estimate():
    with pytest.raises(InvalidInputError, match="at least 2 folds"):
        nested_choice({1: [0.5, 0.6]}, [0, 0], baseline=1)
    with pytest.raises(InvalidInputError, match="baseline"):
        nested_choice({1: [0.5, 0.6]}, [0, 1], baseline=2)
    with pytest.raises(InvalidInputError, match="one score per slice"):
        nested_choice({1: [0.5, 0.6], 2: [0.5]}, [0, 1], baseline=1)
