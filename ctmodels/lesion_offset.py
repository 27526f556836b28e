"""A decision offset between consolidation and GGO, fitted on out-of-fold predictions.

The lesion model finds the infection (GGO or consolidation) well but splits it into GGO and
consolidation less well: that split is learned from a few dozen labelled slices. An offset ``d``
moves only that split. On pixels labelled GGO or consolidation (the infection mask, unchanged),

    label = consolidation  if  log p(consolidation) - log p(GGO) + d > 0,  else GGO.

``d = 0`` is the plain argmax. Infection, lung and involvement are unchanged by construction.
:class:`~ctmodels.lesion.LesionSegmenter` applies the ``consolidation_offset`` of a model's
``preprocessing.json`` (default 0). :func:`fit_offset` picks ``d`` from a grid on labelled
slices; :func:`nested_gain` estimates what that choice gains on slices it was not fitted on, by
fitting on all folds but one and scoring the one left out (``scripts/lesion_cv.py offset``).
All functions here are pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Sequence

import numpy as np

from .errors import InvalidInputError
from .lesion import PROB_FLOOR
from .nested_choice import nested_choice, pick
from .train_lesion import dice_score

OFFSET_GRID = (-2.0, -1.5, -1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


@dataclass
class ScoredSlice:
    """One labelled slice predicted by a model that did not train on it.

    ``labels``: the model's labels at ``d = 0`` (uint8, 0 bg, 1 GGO, 2 consolidation, 3 lung);
    ``log_ratio``: log p(consolidation) - log p(GGO) per pixel; ``reference``: the true labels
    (1 GGO, 2 consolidation, anything else neither); ``fold``: the fold the slice was left out of."""

    name: str
    fold: int
    labels: np.ndarray
    log_ratio: np.ndarray
    reference: np.ndarray


def log_ratio(probabilities: np.ndarray) -> np.ndarray:
    """log p(consolidation) - log p(GGO) from class probabilities ``[..., 4, H, W]`` (float32)."""
    p = np.clip(np.asarray(probabilities, dtype=np.float32), PROB_FLOOR, None)
    return np.log(p[..., 2, :, :]) - np.log(p[..., 1, :, :])


def split_infection(labels: np.ndarray, ratio: np.ndarray, offset: float) -> np.ndarray:
    """``labels`` with their GGO / consolidation pixels split again at ``ratio + offset > 0``.

    ``offset = 0`` returns the labels as they are (the plain argmax, as LesionSegmenter does)."""
    labels = np.asarray(labels)
    if labels.shape != np.shape(ratio):
        raise InvalidInputError(f"labels {labels.shape} and log-ratio {np.shape(ratio)} differ in shape")
    out = labels.copy()
    if offset == 0:
        return out
    inf = (labels == 1) | (labels == 2)
    out[inf] = np.where(np.asarray(ratio)[inf] + offset > 0, 2, 1)
    return out


def split_score(labels: np.ndarray, reference: np.ndarray) -> float:
    """(GGO Dice + consolidation Dice) / 2 of one slice (a class absent from both scores 1)."""
    return 0.5 * (dice_score(labels == 1, reference == 1) + dice_score(labels == 2, reference == 2))


def slice_scores(slices: Sequence[ScoredSlice], offset: float) -> np.ndarray:
    """:func:`split_score` of every slice with its infection split at ``offset``."""
    return np.array([split_score(split_infection(s.labels, s.log_ratio, offset), s.reference) for s in slices])


def offset_means(slices: Sequence[ScoredSlice], grid: Sequence[float] = OFFSET_GRID) -> Dict[float, float]:
    """Mean :func:`split_score` over ``slices`` at every grid offset."""
    if not slices:
        raise InvalidInputError("no slices to fit a consolidation offset on")
    return {float(d): float(np.mean(slice_scores(slices, d))) for d in grid}


def _prefer(d: float):
    return (abs(d), d)  # ties: towards the plain argmax, then the negative offset


def fit_offset(slices: Sequence[ScoredSlice], grid: Sequence[float] = OFFSET_GRID) -> float:
    """The grid offset with the best mean :func:`split_score`; ties go to the smallest ``|d|``,
    then to the negative one (towards the plain argmax)."""
    return pick(offset_means(slices, grid), _prefer)


def nested_gain(slices: Sequence[ScoredSlice], grid: Sequence[float] = OFFSET_GRID) -> Dict:
    """What fitting an offset gains on slices it was not fitted on.

    For every fold, the offset is fitted on the other folds' slices and applied to the fold's own.
    Returns the fitted offset per fold, the pooled per-slice mean of :func:`split_score` with those
    offsets (``fitted``) and at ``d = 0`` (``plain``), ``gain = fitted - plain``, the per-fold means,
    the mean over all slices at every grid offset (``by_offset``) and the offset fitted on all of
    them (``offset``)."""
    if not slices:
        raise InvalidInputError("no slices to fit a consolidation offset on")
    grid = [float(d) for d in grid]
    n = nested_choice({d: slice_scores(slices, d) for d in grid}, [s.fold for s in slices], 0.0, _prefer)
    per_fold = {f: {"offset": v["choice"], **{k: v[k] for k in ("slices", "fitted", "plain")}}
                for f, v in n["folds"].items()}
    return {"folds": per_fold, "fitted": n["fitted"], "plain": n["plain"], "gain": n["gain"], "offset": n["choice"],
            "by_offset": n["by_setting"], "slices": n["slices"], "grid": grid}
