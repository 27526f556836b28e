"""One call per task for the CLI and the app: segment and grade a study."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from . import severity
from .lesion import LesionResult, LesionSegmenter
from .types import CTVolume


@dataclass
class StudySeverity:
    volume: CTVolume
    lesions: LesionResult
    report: severity.SeverityReport


def segment_study(seg: LesionSegmenter, vol: CTVolume, batch_size: int = 16,
                  progress: Optional[Callable[[int, int], None]] = None,
                  keep_probabilities: bool = False) -> StudySeverity:
    """Segment every slice and grade the study with the model's measured involvement error."""
    res = seg.predict(vol, batch_size=batch_size, keep_probabilities=keep_probabilities, progress=progress)
    err = seg.preprocessing.get("involvement_error", {})
    rep = severity.assess(res.pixel_counts, res.soft_counts, float(err.get("bias_pp", 0.0)),
                          float(err.get("sd_pp", 10.0)))
    return StudySeverity(vol, res, rep)
