"""Describe the series of a study, classify reconstruction kernels, pick the series to use.

Kernel classes: ``lung`` (sharp, high-frequency reconstruction used to read lung parenchyma)
and ``soft`` (smooth, soft-tissue / mediastinal / standard body). The vendor table follows
the manufacturers' naming:

* GE: LUNG, BONE, BONEPLUS, EDGE, SHARP, CHEST, HD LUNG -> lung; STANDARD, SOFT, SMOOTH,
  DETAIL -> soft.
* Siemens: ``<letters><number><suffix>`` (B30f, B70f, Br40d, Bl57d, I70f, Qr40, Hr38h): the
  number is the sharpness; >= 50 -> lung; the ``Bl``/``Il`` (lung) families -> lung; else soft.
* Philips: A, B, UB, CB -> soft; C, D, E, L, LA, YA, YB, YC, YD, YE -> lung.
* Canon/Toshiba: FCnn; FC50-FC59 (lung) and FC30-FC39 (bone) -> lung; FC01-FC29 and FC6x-FC8x
  (body / head) -> soft; LUNG / BODY names of AiCE reconstructions by keyword.
* Any vendor: a name containing LUNG, SHARP, BONE, EDGE, HIGH -> lung; SOFT, STANDARD, SMOOTH,
  BODY, MEDIASTIN, ABDOMEN, BRAIN, HEAD -> soft.

Where the tag is missing or unknown the image decides: sharp kernels leave strong pixel-level
noise in uniform soft tissue (:func:`image_noise_hu`); above ``NOISE_THRESHOLD_HU`` -> lung.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .types import SeriesInfo

log = logging.getLogger(__name__)

# what to do with a folder of several studies, said where one is refused (the app says what to do there instead)
SEVERAL_STUDIES_ADVICE = ("give each study's folder on its own, name a series (`ctmodels info` lists them), or "
                          "`ctmodels triage` a folder with one study per subfolder")

LUNG, SOFT, UNKNOWN = "lung", "soft", "unknown"
NOISE_THRESHOLD_HU = 30.0

_GE = {"LUNG": LUNG, "BONE": LUNG, "BONEPLUS": LUNG, "EDGE": LUNG, "SHARP": LUNG, "CHEST": LUNG,
       "HD LUNG": LUNG, "HDLUNG": LUNG, "STANDARD": SOFT, "SOFT": SOFT, "SMOOTH": SOFT, "DETAIL": SOFT,
       "STND": SOFT}
_PHILIPS = {"A": SOFT, "B": SOFT, "UB": SOFT, "CB": SOFT, "C": LUNG, "D": LUNG, "E": LUNG, "L": LUNG,
            "LA": LUNG, "YA": LUNG, "YB": LUNG, "YC": LUNG, "YD": LUNG, "YE": LUNG}
_LUNG_WORDS = ("LUNG", "SHARP", "BONE", "EDGE", "HIGH", "PULMO")
_SOFT_WORDS = ("SOFT", "STANDARD", "SMOOTH", "BODY", "MEDIASTIN", "ABDOMEN", "BRAIN", "HEAD", "MEDIUM")


def _vendor(manufacturer: Optional[str]) -> str:
    m = (manufacturer or "").upper()
    for key, name in (("GE ", "ge"), ("GE MED", "ge"), ("SIEMENS", "siemens"), ("PHILIPS", "philips"),
                      ("TOSHIBA", "canon"), ("CANON", "canon")):
        if m.startswith(key) or key.strip() in m:
            return name
    return "other"


def classify_kernel(kernel: Optional[str], manufacturer: Optional[str] = None) -> Tuple[str, str]:
    """Kernel name (+ manufacturer) -> (``lung`` | ``soft`` | ``unknown``, reason)."""
    if not kernel:
        return UNKNOWN, "no ConvolutionKernel tag"
    k = kernel.upper().split("\\")[0].strip()
    vendor = _vendor(manufacturer)
    if vendor in ("ge", "other") and k in _GE:  # another vendor's "Lung" or "Standard": named as GE names its own
        return _GE[k], f"GE kernel {k}" if vendor == "ge" else f"kernel {k} (by GE's kernel names)"
    m = re.fullmatch(r"([A-Z]{1,2})(\d{2})([A-Z]?)", k)
    if m and vendor in ("siemens", "other") and not k.startswith("FC"):
        fam, num = m.group(1), int(m.group(2))
        if fam in ("BL", "IL") or num >= 50:
            return LUNG, f"Siemens kernel {kernel} (sharpness {num}{', lung family' if fam in ('BL', 'IL') else ''})"
        return SOFT, f"Siemens kernel {kernel} (sharpness {num} < 50)"
    m = re.fullmatch(r"FC(\d{1,2})", k)
    if m:
        num = int(m.group(1))
        cls = LUNG if 30 <= num <= 59 else SOFT
        return cls, f"Canon/Toshiba kernel {k} ({'lung/bone' if cls == LUNG else 'body/head'} range)"
    if vendor == "philips" or (vendor == "other" and k in _PHILIPS and len(k) <= 2):
        if k in _PHILIPS:
            return _PHILIPS[k], f"Philips kernel {k}"
    for w in _LUNG_WORDS:
        if w in k:
            return LUNG, f"kernel name {kernel!r} contains {w}"
    for w in _SOFT_WORDS:
        if w in k:
            return SOFT, f"kernel name {kernel!r} contains {w}"
    return UNKNOWN, f"kernel {kernel!r} not in the vendor table"


def image_noise_hu(hu: np.ndarray) -> float:
    """Robust pixel-level noise (HU) in uniform soft tissue of a 2D HU slice; NaN if none found.

    Residual of a 3x3 median filter, restricted to pixels in [-150, 150] HU whose neighbourhood
    is also soft tissue (so edges do not count), summarised by 1.4826 x MAD.
    """
    from scipy import ndimage

    x = np.asarray(hu, dtype=np.float32)
    soft = (x > -150) & (x < 150)
    soft = ndimage.binary_erosion(soft, iterations=2)
    if soft.sum() < 200:
        return float("nan")
    resid = (x - ndimage.median_filter(x, size=3))[soft]
    return float(1.4826 * np.median(np.abs(resid - np.median(resid))))


def classify_image(hu: np.ndarray) -> Tuple[str, str]:
    """Kernel class from the pixels of a (middle) slice."""
    noise = image_noise_hu(hu)
    if not np.isfinite(noise):
        return UNKNOWN, "no uniform soft tissue to measure noise"
    cls = LUNG if noise > NOISE_THRESHOLD_HU else SOFT
    return cls, f"image noise {noise:.0f} HU {'>' if cls == LUNG else '<='} {NOISE_THRESHOLD_HU:.0f} HU"


def list_series(path) -> List[SeriesInfo]:
    """Describe every series found at ``path`` (DICOM folder, file or zip; volumes count as one)."""
    from . import io

    return io.list_series(Path(path))


def describe_dicom_series(uid: str, items, sample_pixels: bool = True) -> SeriesInfo:
    from . import dicom

    stacked = _slices_read(items)
    s = dicom.series_summary(stacked)
    cls, why = classify_kernel(s["kernel"], s["manufacturer"])
    source = "tag" if cls != UNKNOWN else "none"
    if cls == UNKNOWN and sample_pixels and s["modality"] == "CT" and not s["not_slices"]:
        try:
            p, ds = stacked[len(stacked) // 2]
            vol = dicom.read_series([(p, ds)], source=str(p))  # one slice (or one frame of an Enhanced CT file)
            icls, iwhy = classify_image(vol.voxels[0])
            if icls != UNKNOWN:
                cls, why, source = icls, f"{why}; from the image: {iwhy}", "image"
        except Exception as exc:  # a broken sample slice leaves the class unknown
            log.debug("kernel from image failed: %s", exc)
    return SeriesInfo(
        series_uid=uid, files=list(dict.fromkeys(str(p) for p, _ in items)), n_slices=len(stacked),
        modality=s["modality"], description=s["description"], manufacturer=s["manufacturer"],
        kernel=s["kernel"], kernel_class=cls, kernel_reason=why, kernel_source=source,
        slice_thickness=s["slice_thickness"],
        pixel_spacing=s["pixel_spacing"], series_number=s["series_number"], study_uid=s["study_uid"],
        rows=s["rows"], columns=s["columns"], patient_position=s["patient_position"], image_type=s["image_type"],
        body_part=s["body_part"], plane=s["plane"], not_slices=s["not_slices"],
    )


def _slices_read(items) -> list:
    """The slices reading the series stacks, in order (:func:`ctmodels.dicom.slices_to_stack`), so that its listing
    counts and describes them; all its files, by InstanceNumber, where the headers cannot tell (not CT, or a header
    value that does not decode: reading the series says why)."""
    from . import dicom
    from .errors import CTModelsError

    try:
        return dicom.slices_to_stack(items)
    except (CTModelsError, *dicom.malformed_errors()) as exc:
        log.debug("slices of the series not found from its headers: %s", exc)
    try:
        return sorted(items, key=lambda it: float(getattr(it[1], "InstanceNumber", 0) or 0))
    except dicom.malformed_errors():
        return list(items)


def _field(s, key: str):
    return s.get(key) if isinstance(s, dict) else getattr(s, key)


def is_ct(s) -> bool:
    """A CT series (``s``: a :class:`SeriesInfo` or its ``as_dict()``)."""
    return (_field(s, "modality") or "").upper() == "CT"


def lungless(s) -> bool:
    """A series whose BodyPartExamined names a part of the body without lung (HEAD, KNEE, ...): never a candidate
    (``s``: a :class:`SeriesInfo` or its ``as_dict()``)."""
    from .dicom import lungless as lungless_part

    return lungless_part(_field(s, "body_part"))


def no_slices(s) -> bool:
    """A series that holds no CT slices to read (``s``: a :class:`SeriesInfo` or its ``as_dict()``; its
    ``not_slices`` says why): a CT's dose report or patient protocol or screenshots (Secondary Capture), raw data
    or another object without an image, filed under modality CT beside the study's slices. Never a candidate."""
    return bool(_field(s, "not_slices"))


def soft_by_tag(s) -> bool:
    """A series whose ConvolutionKernel tag names a soft-tissue kernel: :func:`select_series` sets it aside, and
    the breath-hold check never uses it (``s``: a :class:`SeriesInfo` or its ``as_dict()``)."""
    return _field(s, "kernel_class") == SOFT and _field(s, "kernel_source") == "tag"


# a SeriesDescription naming expiration: "Exp 1.0 B70f", "EXPIRATION", "Exspiration", "exhale", "Ausatmung"
_EXPIRATORY = re.compile(r"\b(exp|expi|expir\w*|exspir\w*|exhal\w*|ausatm\w*)\b", re.IGNORECASE)


def expiratory(s) -> bool:
    """A series whose SeriesDescription says it was scanned in expiration, on purpose (the expiratory series of
    an air-trapping protocol): not the breath hold a chest CT is read from, so :func:`select_series` takes it
    only where no other series is left (``s``: a :class:`SeriesInfo` or its ``as_dict()``)."""
    return bool(_EXPIRATORY.search((_field(s, "description") or "").replace("_", " ")))


# PatientPosition values (DICOM defined terms) of a patient lying prone or on the side
_NOT_SUPINE = re.compile(r"(HF|FF|LF|RF|AF|PF)(P|DR|DL)|PRONE|DECUBITUS.*")


def supine(s) -> bool:
    """A series scanned supine, or with no PatientPosition to say otherwise: not prone (HFP, FFP) nor on the
    side (HFDR, FFDL, ...), as the extra series of an interstitial lung disease protocol are scanned (``s``: a
    :class:`SeriesInfo` or its ``as_dict()``)."""
    return not _NOT_SUPINE.fullmatch((_field(s, "patient_position") or "").strip().upper())


def axial(s) -> bool:
    """A series of axial slices by their ImageOrientationPatient, or with none to say otherwise: not coronal or
    sagittal slices, which the models read only as the axial slices made across them (``s``: a
    :class:`SeriesInfo` or its ``as_dict()``)."""
    return (_field(s, "plane") or "axial") == "axial"


def position_note(s) -> str:
    """What a series' listing adds for how it lies: ``" - coronal slices"`` where its slices are not axial,
    ``" - HFP (not supine)"`` where it was scanned other than supine, else nothing (``s``: a :class:`SeriesInfo`
    or its ``as_dict()``)."""
    return ("" if axial(s) else f" - {_field(s, 'plane')} slices") + (
        "" if supine(s) else f" - {_field(s, 'patient_position')} (not supine)")


# ImageType values and SeriesDescription words of projections and reformats, not slices as reconstructed
_PROJECTION_TYPES = {"MIP", "MINIP", "MNIP", "MPR", "CURVED MPR", "REFORMATTED", "PROJECTION IMAGE", "MAXIMUM",
                     "MINIMUM", "VOLUME RENDERING", "LOCALIZER"}
_PROJECTION_WORDS = re.compile(r"\b(mip|minip|mpr|topogram|scout|surview|scanogram)\b", re.IGNORECASE)


def projection(s) -> bool:
    """A series of projections or reformats, by its ImageType or its description: maximum or minimum intensity
    projections (MIP, MinIP), multiplanar reformats, a localizer (``s``: a :class:`SeriesInfo` or its
    ``as_dict()``). Their pixels are not the reconstructed slices the models read."""
    types = {t.strip().upper() for t in (_field(s, "image_type") or "").split("\\")}
    return bool(types & _PROJECTION_TYPES) or bool(
        _PROJECTION_WORDS.search((_field(s, "description") or "").replace("_", " ")))


# why a series is taken only after others, the worst first: its test, how the reason counts those set aside for
# it, and what the reason says where the chosen series has it
_LAST_RESORTS = (
    (expiratory, "expiratory series (by description)", "its description says expiration"),
    (projection, "projection or reformat series (MIP, MinIP, MPR, localizer)", "it is a projection or reformat"),
    (lambda s: not axial(s), "coronal or sagittal series (by ImageOrientationPatient)",
     "its slices are {plane}, not axial"),
    (lambda s: not supine(s), "prone or decubitus series (by PatientPosition)", "scanned {position}, not supine"),
)


def _pool_of(s) -> Tuple[bool, ...]:
    return tuple(test(s) for test, _, _ in _LAST_RESORTS)


def _last_resort_note(best: SeriesInfo, ct: Sequence[SeriesInfo]) -> str:
    """What the reason adds: why the chosen series was the last resort it is, or what was set aside, and why."""
    note = ""
    for test, _, chosen in _LAST_RESORTS:
        if test(best):
            said = chosen.format(plane=best.plane, position=best.patient_position)
            note += f"; {said}, and no better series could be used"
    for test, set_aside, _ in _LAST_RESORTS:
        n = sum(1 for s in ct if test(s) and not test(best))
        note += f"; {n} {set_aside} set aside" if n else ""
    return note


def checkable(series: Sequence) -> list:
    """The series the breath-hold check may measure, if asked for by name: CT, not :func:`soft_by_tag`, not
    :func:`lungless`."""
    return [s for s in series if is_ct(s) and not soft_by_tag(s) and not lungless(s) and not no_slices(s)]


def select_series(series: Sequence[SeriesInfo], purpose: str = "lesion") -> Tuple[SeriesInfo, str]:
    """Pick the series the models should use, and say why.

    Only CT series of one study are candidates (series of several studies are an error: which patient or
    day to read is the user's choice), and of those not the series whose BodyPartExamined names a part of the
    body without lung (:func:`lungless`; an error where every series is). They are tried in this order: lung
    kernel; kernel unknown; soft kernel judged only from the image (a guess, e.g. for resampled data: used with
    a caveat); soft kernel named by its ConvolutionKernel tag. Tag-declared soft-tissue series are set aside: for
    ``purpose="quality"`` they are never used (the check needs the lung kernel); for "lesion" the
    best of them is used only when nothing else of its standing (below) exists, and the reason says so.
    Standing: series whose description says expiration (:func:`expiratory`) are tried only after all others:
    the check would fail a study for its deliberate expiratory series, and expiration raises the lungs'
    density. Before those, projections and reformats (:func:`projection`) come after reconstructed slices,
    then coronal or sagittal slices (:func:`axial`) after axial ones, and prone or decubitus series
    (:func:`supine`) after supine ones: the models were made for axial supine chest CT slices. Among equals: more
    slices (coverage), then thinner slices.
    """
    from .dicom import not_chest
    from .errors import SeriesSelectionError, SeveralStudiesError

    if not series:
        raise SeriesSelectionError("no series found")
    ct = [s for s in series if is_ct(s)]
    if not ct:
        mods = sorted({s.modality or "missing" for s in series})
        raise SeriesSelectionError(f"no CT series (modalities found: {', '.join(mods)})")
    studies = {s.study_uid for s in ct} - {None}
    if len(studies) > 1:  # never pick one patient's or one day's series out of several unasked
        raise SeveralStudiesError(f"holds {len(studies)} studies (series with different StudyInstanceUIDs); expected "
                                  f"one study: {SEVERAL_STUDIES_ADVICE}", series=[s.as_dict() for s in ct])
    others = [s for s in ct if no_slices(s)]
    if others and len(others) == len(ct):
        raise SeriesSelectionError(f"holds no CT slices, only {others[0].not_slices}; expected a CT series")
    aside = f"; {len(others)} series without CT slices (a dose report, raw data) set aside" if others else ""
    ct = [s for s in ct if not no_slices(s)]
    no_lung = [s for s in ct if lungless(s)]
    parts = ", ".join(sorted({s.body_part for s in no_lung}))
    if no_lung and len(no_lung) == len(ct):
        raise SeriesSelectionError(not_chest(parts))
    aside += f"; {len(no_lung)} series of {parts} (no lung) set aside" if no_lung else ""
    ct = [s for s in ct if not lungless(s)]

    def rank(s: SeriesInfo):
        return (s.n_slices, -(s.slice_thickness or 99.0))

    tiers = (
        (lambda s: s.kernel_class == LUNG, "lung kernel"),
        (lambda s: s.kernel_class == UNKNOWN, "kernel unknown, no lung-kernel series present"),
        (lambda s: s.kernel_class == SOFT and s.kernel_source == "image",
         "kernel judged soft from the image only (no tag); no lung-kernel series present"),
    )

    for key in sorted({_pool_of(s) for s in ct}):
        pool = [s for s in ct if _pool_of(s) == key]
        for accept, note in tiers:
            cands = [s for s in pool if accept(s)]
            if cands:
                best = max(cands, key=rank)
                set_aside = [s for s in ct if soft_by_tag(s)]
                why = f"{note} ({best.kernel_reason}); {best.n_slices} slices"
                if len(cands) > 1:
                    why += f"; most slices of {len(cands)} candidates"
                if set_aside:
                    why += f"; {len(set_aside)} soft-tissue series set aside"
                return best, why + _last_resort_note(best, ct) + aside
        if pool and purpose != "quality":  # soft-tissue kernels named by their tag are all this pool has
            best = max(pool, key=rank)
            note = ("only soft-tissue kernel series present" if all(soft_by_tag(s) for s in ct) else
                    "soft-tissue kernel, before series that are expiratory, projections or not supine")
            return best, f"{note} ({best.kernel_reason}); {best.n_slices} slices" + _last_resort_note(best, ct) + aside
    raise SeriesSelectionError(
        "only soft-tissue kernel series found; the breath-hold check needs a lung-kernel series")
