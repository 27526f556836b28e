"""Choosing a setting on labelled slices, and what that choice gains on slices it was not chosen on.

A setting (a decision offset, an input size...) picked as the best of a grid on some slices looks
better on those same slices than it will on new ones. The nested estimate does not: for every fold,
the setting is chosen on the other folds' slices and scored on the fold's own, and the pooled result
is compared with the baseline setting on the same slices. Pure numpy.
"""

from __future__ import annotations

from typing import Callable, Dict, Hashable, Optional

import numpy as np

from .errors import InvalidInputError


def pick(means: Dict[Hashable, float], prefer: Optional[Callable] = None) -> Hashable:
    """The setting with the best mean; ties go to the smallest ``prefer(setting)`` (default: the setting)."""
    if not means:
        raise InvalidInputError("no settings to choose from")
    best = max(means.values())
    return min((c for c, m in means.items() if m >= best - 1e-12), key=prefer or (lambda c: c))


def nested_choice(scores: Dict[Hashable, np.ndarray], folds, baseline: Hashable,
                  prefer: Optional[Callable] = None) -> Dict:
    """``scores[setting][i]``: the objective of slice ``i`` under ``setting``; ``folds[i]``: its fold.

    Returns the setting chosen per fold (on the other folds' slices) with that fold's means, the pooled
    mean with those choices (``fitted``) and with ``baseline`` (``plain``), ``gain = fitted - plain``,
    the mean over all slices of every setting (``by_setting``) and the setting chosen on all of them
    (``choice``). Ties: see :func:`pick`."""
    folds = np.asarray(folds)
    scores = {c: np.asarray(v, dtype=float) for c, v in scores.items()}
    if baseline not in scores:
        raise InvalidInputError(f"the baseline setting {baseline!r} has no scores")
    if any(v.shape != folds.shape for v in scores.values()):
        raise InvalidInputError("every setting needs one score per slice")
    if len(folds) == 0:
        raise InvalidInputError("no slices to choose a setting on")
    names = sorted(set(folds.tolist()))
    if len(names) < 2:
        raise InvalidInputError(f"a nested estimate needs slices of at least 2 folds, got {len(names)}")
    fitted, plain, per_fold = [], [], {}
    for f in names:
        inside = folds == f
        choice = pick({c: float(np.mean(v[~inside])) for c, v in scores.items()}, prefer)
        a, b = scores[choice][inside], scores[baseline][inside]
        fitted += list(a)
        plain += list(b)
        per_fold[f] = {"choice": choice, "slices": int(inside.sum()), "fitted": float(np.mean(a)),
                       "plain": float(np.mean(b))}
    by_setting = {c: float(np.mean(v)) for c, v in scores.items()}
    return {"folds": per_fold, "fitted": float(np.mean(fitted)), "plain": float(np.mean(plain)),
            "gain": float(np.mean(fitted) - np.mean(plain)), "choice": pick(by_setting, prefer),
            "by_setting": by_setting, "slices": len(folds)}
