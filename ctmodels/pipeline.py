"""One call per task for the CLI and the app: segment and grade a study."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

from . import severity
from .lesion import LesionResult, LesionSegmenter
from .types import HU, CTVolume

MIN_SIDE_PX = 160  # the model was trained on 256 and 512 px slices
MAX_PIXEL_MM = 1.5  # chest CT the model saw: about 0.6-0.9 mm per pixel


@dataclass
class StudySeverity:
    volume: CTVolume
    lesions: LesionResult
    report: severity.SeverityReport
    warnings: List[str] = field(default_factory=list)

    @property
    def key_slice(self) -> int:
        """The slice with the most GGO and consolidation pixels, among the series' own slices (not one the reader
        filled in where the series lacked it): the one to show first."""
        lesion = (self.lesions.pixel_counts[:, 1] + self.lesions.pixel_counts[:, 2]).astype(np.int64)
        made = [z for z in self.volume.meta.interpolated_slices if z < len(lesion)]
        if len(made) < len(lesion):
            lesion[made] = -1
        return int(np.argmax(lesion))

    def summary(self) -> Dict[str, object]:
        """The study in one row, as ``ctmodels segment`` writes it to results.csv after the input's name: slices,
        units, series number and kernel, the key slice, % of lung per class, volumes in mL (empty where the voxel
        size is not known), grade, P(extensive) (empty where no lung was found), class and warnings."""
        vol, rep = self.volume, self.report
        return {"slices": vol.shape[0], "units": vol.meta.units,
                "series": "" if vol.meta.series_number is None else vol.meta.series_number,
                "kernel": vol.meta.kernel or "", "key_slice": self.key_slice,
                "ggo_pct": round(rep.ggo_pct, 3), "consolidation_pct": round(rep.consolidation_pct, 3),
                "involved_pct": round(rep.involved_pct, 3),
                **{name: "" if rep.volumes_ml is None else round(rep.volumes_ml[name], 1)
                   for name in ("lung_ml", "ggo_ml", "consolidation_ml")},
                "grade": rep.grade, "p_extensive": round(rep.p_extensive, 4) if rep.lung_found else "",
                "extent_class": rep.extent_class, "warnings": " | ".join(self.warnings)}

    def per_slice_csv(self) -> str:
        """One row per slice: its index, its S coordinate in mm (empty where the input gives no position),
        whether the reader made it where the series lacked it (1) or read it (0), its lung in mL (empty where
        the voxel size is not known) and its % GGO, consolidation and either of its lung."""
        vol, made = self.volume, set(self.volume.meta.interpolated_slices)
        known = self.report.volumes_ml is not None
        lines = ["slice,s_mm,interpolated,lung_ml,ggo_pct,consolidation_pct,involved_pct"]
        for r, counts in zip(self.report.per_slice, self.lesions.pixel_counts):
            z = int(r["slice"])
            s_mm = vol.position_mm(z)
            lung = f"{severity.volumes_ml(counts, vol.spacing)['lung_ml']:.2f}" if known else ""
            lines.append(f"{z},{'' if s_mm is None else f'{s_mm:.2f}'},{int(z in made)},{lung},"
                         f"{r['ggo_pct']:.3f},{r['consolidation_pct']:.3f},{r['involved_pct']:.3f}")
        return "\n".join(lines) + "\n"


def input_warnings(vol: CTVolume) -> List[str]:
    """What makes this input unlike the data the lesion model was trained on (one line each)."""
    out = list(vol.meta.warnings)
    h, w = vol.shape[-2:]
    if min(h, w) < MIN_SIDE_PX:
        out.append(f"image is {h}x{w} pixels; the model was trained on 256-512 px slices, so results at "
                   "this size are unreliable")
    if vol.meta.units == HU and vol.spacing is not None and min(vol.spacing[1:]) > MAX_PIXEL_MM:
        out.append(f"pixels are {min(vol.spacing[1:]):.1f} mm; the model was trained on chest CT with about "
                   "0.6-0.9 mm pixels, so results at this resolution are unreliable")
    return out


def segment_study(seg: LesionSegmenter, vol: CTVolume, batch_size: Optional[int] = None,
                  progress: Optional[Callable[[int, int], None]] = None,
                  keep_probabilities: bool = False, body_only: Optional[bool] = None,
                  air_anchor: Optional[bool] = None, zoom: bool = True) -> StudySeverity:
    """Segment every slice and grade the study with the model's measured involvement error.
    ``body_only``, ``air_anchor``, ``zoom``: see :meth:`LesionSegmenter.predict`."""
    res = seg.predict(vol, batch_size=batch_size, keep_probabilities=keep_probabilities, progress=progress,
                      body_only=body_only, air_anchor=air_anchor, zoom=zoom)
    rep = seg.assess(res)
    if vol.shape[0] > 1 and not vol.meta.spacing_assumed:  # a volume whose voxel size the input gave
        rep.volumes_ml = severity.volumes_ml(res.pixel_counts, vol.spacing)
    said = input_warnings(vol)  # the volume's reading warnings among them, which res.warnings repeats
    return StudySeverity(vol, res, rep, said + [w for w in res.warnings if w not in said] + rep.notes)
