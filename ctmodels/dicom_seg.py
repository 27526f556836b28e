"""Lesion labels as a DICOM Segmentation (SEG) of the CT series they were read from, so that PACS viewers and
DICOM tools (OHIF, 3D Slicer, highdicom) show them on the study.

Written with highdicom (``pip install highdicom``, or the ``seg`` extra) as a binary SEG with three segments:
1 ground-glass opacity (DCM 112120), 2 consolidation (SCT 95436008, lung consolidation), 3 other lung
(SCT 39607008, lung); the label numbers are those of the masks, the recommended display colours the overlays'.
Its frames reference the CT slices they lie on, and it carries the series' patient and study, as a DICOM SEG must
(the file is for the study's own archive, not to be shared).

Only DICOM CT series whose slices name their frame of reference can be referenced: single-frame files, or one
Enhanced (multi-frame) CT file (not NIfTI, NRRD or images, nor frames of several multi-frame files). Slices the
reader made by interpolation where a series had a gap have no slice to reference: they are left out, with a note.
"""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path
from typing import List, Optional

import numpy as np

from .errors import InvalidInputError
from .registry import LESION
from .types import CTVolume
from .viz import DEFAULT_COLORS

log = logging.getLogger(__name__)

SEG_SUFFIX = ".seg.dcm"  # what segment --dicom-seg writes after an input's stem
NEEDS_HIGHDICOM = "writing a DICOM SEG needs highdicom: pip install highdicom (or ctmodels' seg extra)"
SERIES_DESCRIPTION = "ctmodels lesions - research use, not diagnosis"
SERIES_NUMBER = 9001  # the SEG's own series in the study
_QUIETING = threading.Lock()
# Type 2 attributes of the patient and study that highdicom copies from the slices: present in CT files as the
# standard asks, though some exports leave them out; written empty then, as Type 2 allows
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID",
          "AccessionNumber", "ReferringPhysicianName")
_GEOMETRY = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")  # where each slice lies


def available() -> bool:
    """Whether highdicom, which writes the SEG, is installed."""
    import importlib.util

    return importlib.util.find_spec("highdicom") is not None


def seg_problem(volume: CTVolume) -> Optional[str]:
    """Why no DICOM SEG can be written for this volume's labels (a line), or None where one can."""
    meta = volume.meta
    if meta.format != "dicom":
        return f"not DICOM ({meta.format or 'an array'}): a DICOM SEG references DICOM slices"
    if meta.layout is None:
        return "the series gives no slice geometry to place a DICOM SEG's frames"
    if meta.sources is None:
        return ("frames of several multi-frame files, which one DICOM SEG cannot reference (the NIfTI mask has the "
                "labels)")
    if not all(str(getattr(h, "FrameOfReferenceUID", "") or "") for h in meta.sources.headers):
        return "the slices name no FrameOfReferenceUID, which a DICOM SEG needs to place its frames"
    if not meta.sources.multiframe:  # an Enhanced CT file gives them per frame, in its functional groups
        lacking = [t for t in _GEOMETRY if not all(t in h for h in meta.sources.headers)]
        if lacking:
            return f"the slices give no {' or '.join(lacking)}, which a DICOM SEG needs to place its frames"
    return None


def _descriptions(model_name: str, version: str):
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    algorithm = hd.AlgorithmIdentificationSequence(name=model_name, family=codes.DCM.ArtificialIntelligence,
                                                   version=version)
    abnormal, anatomy = codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.AnatomicalStructure
    segments = [("Ground-glass opacity", abnormal, codes.DCM.GroundGlassOpacity),
                ("Consolidation", abnormal, Code("95436008", "SCT", "Lung consolidation")),
                ("Other lung", anatomy, codes.SCT.Lung)]
    out = []
    for i, (label, category, kind) in enumerate(segments, start=1):
        d = hd.seg.SegmentDescription(segment_number=i, segment_label=label, segmented_property_category=category,
                                      segmented_property_type=kind,
                                      algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                                      algorithm_identification=algorithm,
                                      anatomic_regions=[codes.SCT.Lung] if category == abnormal else None)
        d.RecommendedDisplayCIELabValue = dicom_lab(DEFAULT_COLORS[i])  # viewers draw it in the overlays' colour
        out.append(d)
    return out


def dicom_lab(rgb) -> List[int]:
    """An sRGB colour (0-255 each) as DICOM writes a recommended display colour: CIELab (D65) scaled to 0-65535,
    L* from 0-100 and a*, b* from -128-127 (PS3.3 C.10.7.1.1)."""
    from skimage.color import rgb2lab

    lab = rgb2lab(np.asarray(rgb, np.float64).reshape(1, 1, 3) / 255.0)[0, 0]
    scaled = [lab[0] / 100.0, (lab[1] + 128.0) / 255.0, (lab[2] + 128.0) / 255.0]
    return [int(round(float(np.clip(v, 0.0, 1.0)) * 65535)) for v in scaled]


def write_dicom_seg(labels: np.ndarray, volume: CTVolume, path, model_name: str = LESION,
                    version: Optional[str] = None) -> List[str]:
    """Write ``labels`` (on ``volume``'s canonical grid: 0 background, 1 GGO, 2 consolidation, 3 other lung) as a
    DICOM SEG of the series ``volume`` was read from, to ``path``. Returns notes for the user (slices left out).
    Raises :class:`InvalidInputError` where none can be written (:func:`seg_problem`, highdicom missing, or
    highdicom refusing the slices' headers), in one line."""
    seg, notes = make_dicom_seg(labels, volume, model_name, version)
    seg.save_as(str(Path(path)))
    return notes


def make_dicom_seg(labels: np.ndarray, volume: CTVolume, model_name: str = LESION,
                   version: Optional[str] = None):
    """:func:`write_dicom_seg` without the writing: ``(dataset, notes)``, the SEG in memory."""
    from . import __version__

    where = volume.meta.source or None
    problem = seg_problem(volume)
    if problem:
        raise InvalidInputError(f"no DICOM SEG: {problem}", where)
    if not available():
        raise InvalidInputError(NEEDS_HIGHDICOM)
    import highdicom as hd

    lab = np.asarray(labels)
    layout, sources = volume.meta.layout, volume.meta.sources
    if lab.shape != tuple(volume.shape) or lab.shape != tuple(layout.canonical_shape):
        raise InvalidInputError(f"labels of shape {lab.shape} do not lie on the volume's grid {volume.shape}", where)
    if lab.size and (lab.min() < 0 or lab.max() > 3):
        raise InvalidInputError(f"labels hold {int(lab.min())}..{int(lab.max())}, expected 0..3", where)
    stored = layout.to_input(lab.astype(np.uint8))  # columns, rows, slices along their normal: as the files are
    blank = np.zeros(stored.shape[1::-1], np.uint8)  # a frame set aside (a second copy of a slice): no labels
    frames = np.stack([blank if k is None else stored[:, :, k].T for k in sources.stack_index])
    headers = sources.headers
    for h in headers:
        for name in _TYPE2:
            if name not in h:
                setattr(h, name, "")
    notes = []
    made = stored.shape[2] - len({k for k in sources.stack_index if k is not None})
    if made > 0:
        notes.append(f"{made} slice(s) made by interpolation (a gap in the series) have no slice to reference: "
                     f"not in the DICOM SEG")
    quiet = logging.getLogger("highdicom")  # its log notes ("encoding an empty image ...") are not the user's
    # one SEG made at a time (the app serves several sessions in threads): the logger's level and the warning filters
    # are process-wide, and two calls saving and restoring them at once would leave them as neither found them
    with _QUIETING, warnings.catch_warnings(record=True) as said:  # highdicom's warnings may quote the patient's name
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        warnings.simplefilter("always")
        try:
            seg = hd.seg.Segmentation(
                source_images=headers, pixel_array=frames, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=_descriptions(model_name, version or __version__),
                series_instance_uid=hd.UID(), series_number=SERIES_NUMBER, sop_instance_uid=hd.UID(), instance_number=1,
                manufacturer="ctmodels", manufacturer_model_name=model_name,
                software_versions=f"ctmodels {__version__}",
                device_serial_number="none", series_description=SERIES_DESCRIPTION, content_label="LESIONS",
                content_description="GGO, consolidation, other lung (ctmodels, research use only)")
        except (ValueError, TypeError, AttributeError, KeyError) as exc:  # a header highdicom cannot use
            msg = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise InvalidInputError(f"no DICOM SEG: the slices' headers do not allow one ({msg})", where) from None
        finally:
            quiet.setLevel(level)
    if said:  # not shown: they may quote the patient's name, which logs never hold
        log.debug("highdicom gave %d warning(s) while making the SEG", len(said))
    return seg, notes
