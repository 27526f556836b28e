"""DICOM: find files, group them into series, and stack a series into a CTVolume.

Slices are ordered by ImagePositionPatient projected on the slice normal (the cross product
of the two ImageOrientationPatient direction cosines), never by file name or InstanceNumber.
Pixel values go through the modality LUT (RescaleSlope / RescaleIntercept) to HU. Pixels the header marks as
padding (PixelPaddingValue, up to PixelPaddingRangeLimit: the corners outside a scanner's round field of view) are
not image: they become ``PADDING_HU``, whatever HU their stored value would map to.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import EmptyInputError, InvalidInputError, NotChestError, NotCTError
from .orientation import PLANES, axial_tilt_deg, canonicalize, reading_notes
from .types import HU, CTVolume, SourceHeaders, VolumeMeta

log = logging.getLogger(__name__)

MAX_SIDE = 4096  # largest Rows / Columns accepted
MAX_VOXELS = 600_000_000  # largest volume stacked (1.2 GB as int16)
# the largest share of a series' grid that interpolation may fill where slices are missing (past it: stacked as is)
MAX_MADE_SHARE = 0.25
# how far a slice may lie from its place on the series' grid: a twentieth of a step, but at least this many mm
# (positions written to 0.1 mm, as some exports and anonymisers round them, lie within 0.05 mm of it)
POSITION_QUANTUM_MM = 0.06
MAX_FILES = 20_000  # files examined in one folder
# what padding pixels become: below every window ctmodels uses, so they show black, as a scanner's own display
# shows them. A padding value that maps to -1024 HU would otherwise show as grey air, and the lesion model, trained
# on slices with a dark outside, reads much of a grey-surrounded chest as ground glass (docs/lesion-experiments.md)
PADDING_HU = -3024
ORIENTATION_TOLERANCE = 1e-3  # direction cosines that differ by no more are one plane
PIXEL_TOLERANCE_MM = 0.001  # pixel sizes as written: one size where they agree to within this
# BodyPartExamined values (DICOM's defined terms, without spaces, hyphens and underscores) of parts with no lung in
# them: a CT so labelled is refused, as another modality is. Parts a chest may share a scan with (NECK, HEADNECK,
# SHOULDER, ABDOMEN, the spine above the sacrum, WHOLEBODY) are not here.
LUNGLESS_PARTS = frozenset({
    "HEAD", "BRAIN", "SKULL", "IAC", "SELLA", "TMJ", "JAW", "MANDIBLE", "MAXILLA", "FACE", "ORBIT", "SINUS", "EAR",
    "PELVIS", "HIP", "SSPINE", "SACRUM", "COCCYX", "KNEE", "ANKLE", "FOOT", "TOE", "LEG", "THIGH", "HAND", "FINGER",
    "WRIST", "ELBOW", "FOREARM"})


def _pydicom():
    import pydicom
    from pydicom.errors import InvalidDicomError

    return pydicom, InvalidDicomError


def read_header(path, defer_pixels: bool = False):
    """DICOM header without pixels, or None where the file is not DICOM. ``path`` may also be a
    seekable binary file object (e.g. a zip member read into memory).

    ``defer_pixels`` (paths only): keep the pixel data as a deferred element that is read from
    the file when first used, so reading a series parses each file once, not twice."""
    pydicom, InvalidDicomError = _pydicom()
    src = path if hasattr(path, "read") else str(path)
    how = {"defer_size": "32 KB"} if defer_pixels and isinstance(src, str) else {"stop_before_pixels": True}
    try:
        return pydicom.dcmread(src, **how)
    except InvalidDicomError:
        pass
    except Exception as exc:  # truncated, corrupt
        log.debug("unreadable DICOM header %s: %s", getattr(path, "name", path), exc)
        return None
    # files written without the 128-byte preamble: accept only if they look like images
    try:
        if hasattr(src, "seek"):
            src.seek(0)
        ds = pydicom.dcmread(src, force=True, **how)
    except Exception:
        return None
    if "SOPClassUID" in ds or ("Rows" in ds and "Columns" in ds):
        return ds
    return None


def has_dicom_preamble(path: Path) -> bool:
    """True where the file holds the DICOM Part 10 marker ("DICM" after the 128-byte preamble)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) >= 132 and head[128:132] == b"DICM"


def is_dicom_file(path: Path) -> bool:
    """Worth reading as DICOM: the Part 10 marker, or a DICOM-like suffix or none (older files lack the marker)."""
    if has_dicom_preamble(path):
        return True
    return Path(path).suffix.lower() in (".dcm", ".dicom", ".ima") or Path(path).suffix == ""


def find_dicom_files(folder: Path) -> List[Tuple[Path, object]]:
    """Every readable DICOM file below ``folder`` (recursively) with its header."""
    folder = Path(folder)
    out = []
    n = 0
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            p = Path(root) / name
            if p.is_symlink() or name.upper() == "DICOMDIR":
                continue
            n += 1
            if n > MAX_FILES:
                raise InvalidInputError(f"more than {MAX_FILES} files; expected one study", folder)
            if not is_dicom_file(p):
                continue
            ds = read_header(p, defer_pixels=True)
            if ds is None or is_dicomdir(ds):
                continue
            try:
                out.extend(frames_of(p, ds) if is_enhanced_ct(ds) else [(p, ds)])
            except malformed_errors():  # a value that does not decode: read_series says so, or sets the file aside
                out.append((p, ds))
    return out


# ----------------------------------------------------------------------------- multi-frame (enhanced) CT
# Enhanced CT and Legacy Converted Enhanced CT hold a whole series in one file: one frame per slice, with each
# frame's position, orientation, pixel spacing and rescale in its functional groups (per frame, or shared by all).
# Each frame is read as a single-frame slice of its own, so that the rest of this module treats the file as a
# series of slices. Its pixels are decoded once, for all frames, when the first frame is stacked.
_FRAME_ATTRS = (  # (functional group sequence, attribute) -> set on the frame's slice
    ("PlanePositionSequence", "ImagePositionPatient"),
    ("PlaneOrientationSequence", "ImageOrientationPatient"),
    ("PixelMeasuresSequence", "PixelSpacing"),
    ("PixelMeasuresSequence", "SliceThickness"),
    ("PixelMeasuresSequence", "SpacingBetweenSlices"),
    ("PixelValueTransformationSequence", "RescaleSlope"),
    ("PixelValueTransformationSequence", "RescaleIntercept"),
    ("CTReconstructionSequence", "ConvolutionKernel"),
    ("UnassignedSharedConvertedAttributesSequence", "ConvolutionKernel"),  # Legacy Converted Enhanced CT
    ("UnassignedPerFrameConvertedAttributesSequence", "ConvolutionKernel"),
)
_GROUPS = ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence")


def is_enhanced_ct(ds) -> bool:
    """A CT file whose frames are described by functional groups (Enhanced CT, Legacy Converted Enhanced CT): a
    whole series in one file, or one frame a file, where the position and rescale are not at the top level."""
    try:
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        return (frames >= 1 and str(getattr(ds, "Modality", "") or "").upper() == "CT"
                and any(g in ds for g in _GROUPS))
    except malformed_errors():  # a value that does not decode: not Enhanced CT (its reading says what is wrong)
        return False


class _FramePixels:
    """The decoded frames of one multi-frame file, read once, when the first of them is needed."""

    def __init__(self, path: Path, ds):
        self.path, self.ds, self.array = Path(path), ds, None

    def frame(self, i: int) -> np.ndarray:
        if self.array is None:
            self.array = _decoded(_with_pixels(self.ds, self.path), self.path)
            if self.array.ndim == 2:  # one frame
                self.array = self.array[None]
            if self.array.ndim != 3:
                raise InvalidInputError(f"pixel array has shape {self.array.shape}, expected frames of one "
                                        "grayscale image each", self.path)
        return self.array[i]


def _group_value(ds, i: int, seq: str, attr: str):
    """``attr`` of frame ``i`` from its per-frame functional group ``seq``, else from the shared one."""
    for group, index in (("PerFrameFunctionalGroupsSequence", i), ("SharedFunctionalGroupsSequence", 0)):
        items = getattr(ds, group, None)
        if items is None or len(items) <= index:
            continue
        inner = getattr(items[index], seq, None)
        if inner and attr in inner[0]:
            return inner[0][attr].value
    return None


def frames_of(path: Path, ds) -> List[Tuple[Path, object]]:
    """A multi-frame CT file -> one (path, single-frame header) per frame, in the order of the file."""
    from pydicom.dataset import Dataset
    from pydicom.tag import Tag

    skip = {Tag("PixelData"), Tag("FloatPixelData"), Tag("NumberOfFrames")} | {Tag(g) for g in _GROUPS}
    pixels = _FramePixels(path, ds)
    out = []
    for i in range(int(getattr(ds, "NumberOfFrames", 1) or 1)):
        f = Dataset()
        for elem in ds:
            if elem.tag not in skip:
                f.add(elem)
        for seq, attr in _FRAME_ATTRS:
            value = _group_value(ds, i, seq, attr)
            if value is not None and (attr != "ConvolutionKernel" or attr not in f):  # a top-level kernel stays
                setattr(f, attr, value)
        f.InstanceNumber = i + 1
        f.ctmodels_frame = (pixels, i)  # not a DICOM attribute: where this frame's pixels are
        out.append((Path(path), f))
    return out


MEDIA_DIRECTORY_STORAGE = "1.2.840.10008.1.3.10"  # the SOP class of a DICOMDIR


def is_dicomdir(ds) -> bool:
    """A media directory (DICOMDIR: an index of the files, not an image), whatever the file is called."""
    meta = getattr(ds, "file_meta", None)
    try:
        return str(getattr(meta, "MediaStorageSOPClassUID", "") or "") == MEDIA_DIRECTORY_STORAGE
    except malformed_errors():  # a value that does not decode: not a readable directory either
        return False


def group_series(items: Sequence[Tuple[Path, object]]) -> "OrderedDict[str, List[Tuple[Path, object]]]":
    groups: "OrderedDict[str, List[Tuple[Path, object]]]" = OrderedDict()
    for p, ds in items:
        try:
            uid = str(getattr(ds, "SeriesInstanceUID", "") or f"no-series-uid:{p.parent}")
        except malformed_errors():
            uid = f"unreadable-series-uid:{p.name}"
        groups.setdefault(uid, []).append((p, ds))
    return groups


def kernel_of(ds) -> Optional[str]:
    k = getattr(ds, "ConvolutionKernel", None)
    if k is None:
        return None
    if isinstance(k, (list, tuple)) or (hasattr(k, "__iter__") and not isinstance(k, str)):
        k = "\\".join(str(v) for v in k)
    k = str(k).strip()
    return k or None


def body_part(ds) -> Optional[str]:
    """BodyPartExamined (0018,0015) as written, stripped; None without."""
    return str(getattr(ds, "BodyPartExamined", "") or "").strip() or None


def lungless(part: Optional[str]) -> bool:
    """A BodyPartExamined value that names a part of the body without lung (:data:`LUNGLESS_PARTS`)."""
    return "".join(c for c in (part or "").upper() if c.isalnum()) in LUNGLESS_PARTS


def not_chest(parts: str) -> str:
    """What is said of a CT whose BodyPartExamined (``parts``) names a part of the body without lung."""
    return f"BodyPartExamined is {parts}, a part of the body without lung; expected a chest CT"


def check_chest(ds, path: Path) -> None:
    """Raise NotChestError where the dataset's BodyPartExamined names a part of the body without lung. Reading a
    series checks it (listing does not: ``ctmodels info`` shows such series)."""
    if lungless(body_part(ds)):
        raise NotChestError(not_chest(body_part(ds)), path)


# SOP Class UID of Secondary Capture Image Storage; its multi-frame variants add ".1" to ".4"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
# what a secondary capture filed under modality CT is: a scanner's dose report or patient protocol, a screenshot
SECONDARY_CAPTURE_IS = "a secondary capture (a screenshot or a report, such as a CT's dose report)"


def is_secondary_capture(ds) -> bool:
    """A Secondary Capture image (by SOPClassUID, or the file meta's MediaStorageSOPClassUID): a picture of a
    screen or a report, filed under the modality of the study it belongs to, not slices in Hounsfield units."""
    uid = str(getattr(ds, "SOPClassUID", "") or "") or str(
        getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "") or "")
    return uid == SECONDARY_CAPTURE or uid.startswith(SECONDARY_CAPTURE + ".")


# what a file filed under modality CT without an image is: a scanner's raw data or another private object
NO_IMAGE_IS = "an object without an image (no Rows/Columns: raw data or another non-image object)"


# what a segmentation filed with a study is: labels drawn on its slices (ctmodels segment --dicom-seg writes one)
SEGMENTATION_IS = "a segmentation (DICOM SEG): labels of another series' slices"


def not_a_slice(ds) -> Optional[str]:
    """Why a dataset holds no CT slice to read (a secondary capture, a segmentation, an object without an image); None
    for one that may (:func:`check_ct` says what else is wrong with it)."""
    if is_secondary_capture(ds):
        return SECONDARY_CAPTURE_IS
    if str(getattr(ds, "Modality", "") or "").upper() == "SEG":
        return SEGMENTATION_IS
    if "Rows" not in ds or "Columns" not in ds:
        return NO_IMAGE_IS
    return None


def check_ct(ds, path: Path) -> None:
    """Raise NotCTError unless the dataset is a grayscale CT image."""
    modality = str(getattr(ds, "Modality", "") or "").upper()
    if modality != "CT":
        raise NotCTError(f"modality is {modality or 'missing'}, expected CT", path)
    if is_secondary_capture(ds):
        raise NotCTError(f"{SECONDARY_CAPTURE_IS}, expected CT slices", path)
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if not photometric.startswith("MONOCHROME") or int(getattr(ds, "SamplesPerPixel", 1) or 1) != 1:
        raise NotCTError(f"{photometric} colour image, expected a grayscale CT image", path)
    rows, cols = int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0)
    if rows < 1 or cols < 1:
        raise InvalidInputError("no image size (Rows/Columns), expected a CT image", path)
    if rows > MAX_SIDE or cols > MAX_SIDE:
        raise InvalidInputError(f"image is {rows}x{cols}, larger than the {MAX_SIDE}x{MAX_SIDE} limit", path)


AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # ImageOrientationPatient of an axial slice
UNIT_TOLERANCE = 0.05  # direction cosines as written: lengths within this of 1, their dot product within this of 0


def _orientation(ds) -> np.ndarray:
    """ImageOrientationPatient's row and column direction cosines; axial where the tag is missing or unusable
    (:func:`_orientation_problem` says which)."""
    return np.array([float(x) for x in ds.ImageOrientationPatient] if _orientation_problem(ds) is None else AXIAL)


def plane_of(ds) -> str:
    """The plane of a slice by its ImageOrientationPatient: ``axial``, ``coronal`` or ``sagittal``, the one its
    normal is nearest to; axial where the tag is missing or unusable, as the slices are then read."""
    normal = np.abs(np.cross(*np.split(_orientation(ds), 2)))
    return PLANES[2 - int(np.argmax(normal))]  # the normal's LPS axis: L sagittal, P coronal, S axial


def _orientation_problem(ds) -> Optional[str]:
    """None where ImageOrientationPatient holds two perpendicular unit vectors (to within ``UNIT_TOLERANCE``, as
    values are written rounded); else what is wrong with it. Two parallel vectors give no slice normal, so that
    every slice would stack at one position."""
    iop = getattr(ds, "ImageOrientationPatient", None)
    if iop is None:
        return "ImageOrientationPatient missing"
    try:
        v = np.array([float(x) for x in iop])
    except (TypeError, ValueError):
        v = np.array([np.nan])
    if v.shape != (6,) or not np.all(np.isfinite(v)):
        return f"ImageOrientationPatient ({_listed(iop)}) is not six numbers"
    lengths = np.linalg.norm(v[:3]), np.linalg.norm(v[3:])
    if max(abs(n - 1) for n in lengths) > UNIT_TOLERANCE or abs(np.dot(v[:3], v[3:])) > UNIT_TOLERANCE:
        return f"ImageOrientationPatient ({_listed(iop)}) is not two perpendicular unit vectors"
    return None


def _listed(values) -> str:
    """A multi-valued tag's values as the DICOM standard writes them (backslash between)."""
    try:
        return "\\".join(str(x) for x in values)
    except TypeError:
        return str(values)


def _pixel_spacing(ds) -> Tuple[float, float]:
    """(row, column) spacing in mm from PixelSpacing (or ImagerPixelSpacing); (1, 1) where neither is usable,
    which :func:`_given_pixel_spacing` tells by None. Not ReconstructionDiameter over the columns: images resampled
    after the reconstruction keep it (pydicom's CT_small.dcm: 338.7 mm over 128 columns, 2.65 mm, where its
    PixelSpacing is 0.66 mm)."""
    return _given_pixel_spacing(ds) or (1.0, 1.0)


def _given_pixel_spacing(ds) -> Optional[Tuple[float, float]]:
    ps = getattr(ds, "PixelSpacing", None) or getattr(ds, "ImagerPixelSpacing", None)
    try:
        r, c = float(ps[0]), float(ps[1])
        if r > 0 and c > 0 and np.isfinite(r) and np.isfinite(c):
            return r, c
    except (TypeError, IndexError, ValueError):
        pass
    return None


def to_hu(ds, path: Path, warnings: List[str]) -> np.ndarray:
    """Decode pixels and apply the modality LUT (RescaleSlope / RescaleIntercept)."""
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise InvalidInputError("no pixel data, expected a CT image", path)
    raw = _decoded(ds, path)
    if raw.ndim != 2:
        raise InvalidInputError(f"pixel array has shape {raw.shape}, expected one 2D grayscale frame", path)
    return _rescaled(raw, ds, warnings, path)


def _decoded(ds, path: Path) -> np.ndarray:
    """The stored pixel values (every frame), or one line naming the transfer syntax that could not be decoded."""
    try:
        return ds.pixel_array
    except Exception as exc:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(ts, "name", ts)
        msg = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise InvalidInputError(f"pixel data cannot be decoded (transfer syntax {name}): {msg}", path) from None


def _rescaled(raw: np.ndarray, ds, warnings: List[str], path: Path) -> np.ndarray:
    """Stored values -> HU by the modality LUT (RescaleSlope / RescaleIntercept). A slope of 0 (every pixel one
    value) or a value that is not a finite number is refused: the image has no HU to give."""
    slope = getattr(ds, "RescaleSlope", None)
    intercept = getattr(ds, "RescaleIntercept", None)
    if slope is None or intercept is None:
        if "missing RescaleSlope/RescaleIntercept: stored values used as HU" not in warnings:
            warnings.append("missing RescaleSlope/RescaleIntercept: stored values used as HU")
        slope, intercept = 1.0, 0.0
    slope, intercept = float(slope), float(intercept)
    if slope == 0 or not np.isfinite(slope) or not np.isfinite(intercept):
        raise InvalidInputError(f"RescaleSlope {slope:g}, RescaleIntercept {intercept:g}: no Hounsfield units to "
                                f"read; expected a non-zero, finite slope and a finite intercept", path)
    if slope == 1.0 and intercept == float(int(intercept)):
        hu = raw.astype(np.int32) + int(intercept)
    else:
        hu = raw.astype(np.float32) * slope + intercept
    padding = _padding(raw, ds)
    if padding is not None:
        hu[padding] = PADDING_HU
    return hu


def _padding(raw: np.ndarray, ds) -> Optional[np.ndarray]:
    """Where the stored values ``raw`` are padding: equal to PixelPaddingValue, or with PixelPaddingRangeLimit,
    between the two (inclusive). None where the header names no padding, or none of ``raw`` is padding."""
    if raw.dtype.kind not in "iu" or "PixelPaddingValue" not in ds:
        return None
    try:
        value = _stored_value(ds["PixelPaddingValue"].value, raw.dtype)
        limit = _stored_value(ds["PixelPaddingRangeLimit"].value, raw.dtype) if "PixelPaddingRangeLimit" in ds \
            else value
    except malformed_errors():  # a value that does not decode: no padding known
        return None
    if value is None or limit is None:
        return None
    mask = (raw >= min(value, limit)) & (raw <= max(value, limit))
    return mask if mask.any() else None


def _stored_value(v, dtype: np.dtype) -> Optional[int]:
    """A padding attribute (VR US or SS) as a stored value of pixels of ``dtype``. A header whose VR disagrees with
    the pixels' sign gives the same 16 bits read the other way (63536 for -2000): read back into ``dtype``'s range.
    None for a value that is not one integer or does not fit."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        return None
    v, info = int(v), np.iinfo(dtype)
    if v > info.max and v - (1 << (8 * dtype.itemsize)) >= info.min:
        v -= 1 << (8 * dtype.itemsize)
    elif v < info.min and v + (1 << (8 * dtype.itemsize)) <= info.max:
        v += 1 << (8 * dtype.itemsize)
    return v if info.min <= v <= info.max else None


def _with_pixels(ds, path: Path):
    """The full dataset (headers are read without pixels while scanning folders)."""
    if "PixelData" in ds or "FloatPixelData" in ds:
        return ds
    pydicom, _ = _pydicom()
    try:
        return pydicom.dcmread(str(path), force=True)
    except Exception as exc:
        raise InvalidInputError(f"corrupt or truncated DICOM ({type(exc).__name__})", path) from None


def _slice_hu(ds, path: Path, warnings: List[str]) -> np.ndarray:
    """HU of one file (or frame of a multi-frame file); pixels deferred by the folder scan are read now and not
    kept afterwards."""
    frame = getattr(ds, "ctmodels_frame", None)
    if frame is not None:
        return _rescaled(frame[0].frame(frame[1]), ds, warnings, path)
    item = ds.get_item(0x7FE00010, keep_deferred=True) if "PixelData" in ds else None
    deferred = item is not None and getattr(item, "value", b"") is None  # a deferred raw element
    try:
        return to_hu(_with_pixels(ds, path), path, warnings)
    finally:
        if deferred:
            del ds.PixelData  # also drops pydicom's cached array


def struct_error():
    import struct

    return struct.error


def malformed_errors():
    """What pydicom raises for a header value that does not decode (found when the value is first used, not when the
    file is read): a wrong length, an unknown VR, an unparsable number."""
    from pydicom.errors import BytesLengthException, InvalidDicomError

    return (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError, ZeroDivisionError,
            BytesLengthException, InvalidDicomError, EOFError, NotImplementedError, struct_error())


def read_series(items: Sequence[Tuple[Path, object]], source: str = "") -> CTVolume:
    """Stack one series (files + headers) into a canonical HU CTVolume.

    Malformed header values (an unparsable number, a wrong multiplicity, ...) raise
    :class:`InvalidInputError` naming the series, never a bare ValueError.
    """
    from .errors import CTModelsError

    items, dropped = list(items), []
    for attempt in range(2):
        try:
            vol = _read_series(items, source)
            break
        except CTModelsError:
            raise
        except malformed_errors() as exc:
            where = source or (str(items[0][0]) if items else "")
            msg = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            bad = undecodable(items) if attempt == 0 else []
            if not bad or {p for p, _ in items} <= set(bad):  # no file to blame, or only such files
                named = "" if not bad or str(bad[0]) in where else f" in {bad[0].name}"
                raise InvalidInputError(f"malformed DICOM header{named} "
                                        f"({type(exc).__name__}: {msg}); expected a CT image", where) from None
            # files whose header does not decode (corrupt copies in an export): the series is read without them
            dropped, skip = bad, set(bad)
            items = [(p, ds) for p, ds in items if p not in skip]
    if dropped:
        note = (f"{len(dropped)} file(s) set aside: a header value does not decode (first: {dropped[0].name}); "
                f"the series is read without them")
        vol.meta.warnings.insert(0, note)
        log.warning("%s: %s", Path(vol.meta.source).name, note)
    return vol


def undecodable(items: Sequence[Tuple[Path, object]]) -> List[Path]:
    """The files among ``items`` with a header value that does not decode, each once, in order."""
    from pydicom.tag import Tag

    pixels = {Tag("PixelData"), Tag("FloatPixelData"), Tag("DoubleFloatPixelData")}
    out: List[Path] = []
    for p, ds in items:
        if p in out:
            continue
        try:
            for meta in (getattr(ds, "file_meta", None), ds):
                for tag in list(meta.keys()) if meta is not None else []:
                    if tag not in pixels:
                        meta[tag]  # decodes it, as its first use would
        except malformed_errors():
            out.append(p)
    return out


def _one_geometry(items: Sequence[Tuple[Path, object]], warnings: List[str]) -> List[Tuple[Path, object]]:
    """The slices of a series that share the size, pixel size and orientation most of them have. Others (a
    localizer or a reformat filed under the same SeriesInstanceUID, slices reconstructed with another field of view,
    another stack of an Enhanced CT file) are set aside with a warning; stacking them would mix planes or scales."""
    firsts: List[Tuple[Tuple[int, int], Tuple[float, float], np.ndarray]] = []  # each kind as it was first seen
    kinds = []
    for _, ds in items:
        size, px, o = (int(ds.Rows), int(ds.Columns)), _pixel_spacing(ds), _orientation(ds)
        # the same plane where the direction cosines agree to within 0.001 (0.06 degrees): compared, not rounded, so
        # that values written with a little noise on either side of a rounding edge stay together; pixel sizes
        # likewise, to within PIXEL_TOLERANCE_MM
        same = [k for k, (s, q, f) in enumerate(firsts) if s == size and np.max(np.abs(o - f)) <= ORIENTATION_TOLERANCE
                and max(abs(a - b) for a, b in zip(px, q)) <= PIXEL_TOLERANCE_MM]
        if not same:
            firsts.append((size, px, o))
        kinds.append(same[0] if same else len(firsts) - 1)
    counts = Counter(kinds)
    if len(counts) == 1:
        return list(items)
    keep = max(counts, key=lambda k: counts[k])  # the most slices; on a tie, the kind seen first
    (rows, cols), (r_sp, c_sp), _ = firsts[keep]
    warnings.append(f"{len(items) - counts[keep]} slice(s) of another size, pixel size or orientation set aside (a "
                    f"localizer?); kept the {counts[keep]} slices of {rows}x{cols} at {r_sp:g} x {c_sp:g} mm")
    return [it for it, k in zip(items, kinds) if k == keep]


Entry = Tuple[float, Path, object]  # a slice's position along the normal, its file and its header


def _one_per_position(entries: List[Entry], warnings: List[str]) -> List[Entry]:
    """``(position, path, header)`` entries -> one per position (within 1 micrometre), in order along the normal.

    A series can hold more than one scan of the same part of the body under one SeriesInstanceUID (an
    inspiration scan and an expiration scan or a few expiratory slices, say), told apart by AcquisitionNumber.
    The acquisition with the most slices (on a tie, the lowest number) is read, and another that has at least
    half of its slices within its span is set aside whole, so that the volume is one scan, not a mix of two.
    One mostly beyond it (the next rotation of a step-and-shoot scan that numbers each) joins, yielding where a
    position repeats. Further files at a position already read (copies) are dropped. One warning for each."""
    acq = [_int_or_none(getattr(ds, "AcquisitionNumber", None)) for _, _, ds in entries]
    sizes = Counter(acq)
    rank = sorted(sizes, key=lambda a: (-sizes[a], a is None, a or 0))  # the most slices first
    main = rank[0]

    def clusters(idx: List[int]) -> List[List[int]]:  # indices of entries at one position, along the normal
        out: List[List[int]] = []
        for i in sorted(idx, key=lambda i: entries[i][0]):
            if out and abs(entries[i][0] - entries[out[-1][0]][0]) < 1e-3:
                out[-1].append(i)
            else:
                out.append([i])
        return out

    set_aside: Dict[Optional[int], int] = {}
    if len(sizes) > 1:
        span = [e[0] for e, a in zip(entries, acq) if a == main]
        lo, hi = min(span) - 1e-3, max(span) + 1e-3
        for a in rank[1:]:
            mine = [e[0] for e, b in zip(entries, acq) if b == a]
            if sum(lo <= x <= hi for x in mine) >= 0.5 * len(mine):
                set_aside[a] = sizes[a]
    if set_aside:
        listed = ", ".join(f"{a}: {sizes[a]} slices" for a in [main, *set_aside])
        warnings.append(f"the series holds {1 + len(set_aside)} scans of the same part of the body "
                        f"(AcquisitionNumber {listed}); read acquisition {main} (the most slices, else the lowest "
                        f"number) and set the other(s) aside")
    order = {a: k for k, a in enumerate(rank)}
    kept = clusters([i for i, a in enumerate(acq) if a not in set_aside])
    # images of one acquisition at the same positions that are not copies: phases of a gated scan (TriggerTime,
    # TemporalPositionIdentifier) or the energies of a dual-energy scan (ImageType, KVP). One stack is read: the
    # one at the most positions
    keys: Dict[int, Tuple[str, ...]] = {}
    stack = None
    if any(len(c) > 1 for c in kept):
        keys = {i: _stack_key(entries[i][2]) for c in kept for i in c}
    if any(len({keys[i] for i in c}) > 1 for c in kept if len(c) > 1):
        at = Counter(k for c in kept for k in {keys[i] for i in c})  # positions per stack
        stack = sorted(at, key=lambda k: (-at[k], str(k)))[0]
    uniq, copies, others = [], [], 0
    for c in kept:
        # the main acquisition's slice where it has one, of the stack read where it has one
        best = min(c, key=lambda i: (order[acq[i]], stack is not None and keys.get(i) != stack, i))
        uniq.append(entries[best])
        for i in c:
            if i != best and keys.get(i) == keys.get(best):
                copies.append(entries[i][1].name)
            elif i != best:
                others += 1
    if stack is not None:
        told = [name for name, *values in zip(STACK_TAGS, *keys.values()) if len(set(values)) > 1]
        warnings.append(f"the series holds more than one image at the same positions, told apart by "
                        f"{', '.join(told)} (such as the phases of a gated scan or the energies of a dual-energy "
                        f"scan): read the stack with {_stack_text(stack, told)} (at the most positions) and set "
                        f"{others} other image(s) aside")
    if copies:
        warnings.append(f"{len(copies)} duplicate slice(s) dropped: another file at a position already read "
                        f"(first: {copies[0]})")
    return uniq


STACK_TAGS = ("ImageType", "KVP", "TriggerTime", "TemporalPositionIdentifier")


def _stack_key(ds) -> Tuple[str, ...]:
    """What tells apart images of one acquisition at the same position (see ``STACK_TAGS``), as text."""
    return tuple(str(_image_type(ds) if tag == "ImageType" else getattr(ds, tag, "") or "") for tag in STACK_TAGS)


def _stack_text(key: Tuple[str, ...], told: Sequence[str]) -> str:
    return ", ".join(f"{tag} {value or '(none)'}" for tag, value in zip(STACK_TAGS, key) if tag in told)


def slices_to_stack(items: Sequence[Tuple[Path, object]]) -> List[Tuple[Path, object]]:
    """The files (with their headers) :func:`read_series` stacks from ``items``, in order along the slice normal,
    found from the headers alone: one per position, of the size and plane most have, of one acquisition and one
    stack (slices it fills in are not among them). A series of two stacks at the same positions (a dual-energy
    pair, say) gives its positions once, not its files; a localizer filed in the series is not among them."""
    return [(p, ds) for _, p, ds in _headers_to_stack(items, [])[2]] if items else []


def _headers_to_stack(items: Sequence[Tuple[Path, object]], warnings: List[str]):
    """The series' first slice of the geometry read (its file and header), the slice normal, the ``(position, path,
    header)`` entries to stack, one per position in order along the normal, and whether positions were assumed
    (no ImagePositionPatient nor SliceLocation). Every slice must be CT (:func:`check_ct`); files filed in a series
    of CT slices that are none (:func:`not_a_slice`: a dose report given the series' UID) are set aside."""
    whys = [not_a_slice(ds) for _, ds in items]
    others = [(p, why) for (p, _), why in zip(items, whys) if why]
    if others and len(others) < len(items):
        items = [it for it, why in zip(items, whys) if not why]
        warnings.append(f"{len(others)} file(s) filed in the series set aside, not CT slices (first: "
                        f"{Path(others[0][0]).name}, {others[0][1]})")
    for p, ds in items:
        check_ct(ds, p)
    items = _one_geometry(items, warnings)
    first = items[0][1]
    iop = _orientation(first)
    normal = np.cross(iop[:3], iop[3:])
    problem = _orientation_problem(first)
    if problem:
        warnings.append(f"{problem}: axial slices assumed")
    entries, z_assumed = [], False
    for i, (p, ds) in enumerate(items):
        ipp = getattr(ds, "ImagePositionPatient", None)
        if ipp is not None and len(ipp) == 3:
            pos = float(np.dot([float(v) for v in ipp], normal))
        else:
            loc = getattr(ds, "SliceLocation", None)
            inst = getattr(ds, "InstanceNumber", None)
            pos = float(loc) if loc is not None else float(inst if inst is not None else i)
            z_assumed = z_assumed or loc is None  # instance numbers are an order, not millimetres
            if "ImagePositionPatient missing: slices ordered by SliceLocation/InstanceNumber" not in warnings:
                warnings.append("ImagePositionPatient missing: slices ordered by SliceLocation/InstanceNumber")
        entries.append((pos, p, ds))
    return items[0], normal, _one_per_position(entries, warnings), z_assumed


def _read_series(items: Sequence[Tuple[Path, object]], source: str = "") -> CTVolume:
    if not items:
        raise EmptyInputError("no DICOM slices in this series", source)
    warnings: List[str] = []
    (first_path, first), normal, uniq, z_assumed = _headers_to_stack(items, warnings)
    check_chest(first, first_path)
    rows, cols = int(first.Rows), int(first.Columns)
    iop = _orientation(first)
    row_dir, col_dir = iop[:3], iop[3:]
    n = len(uniq)
    positions = np.array([e[0] for e in uniq])
    missing = 0
    uneven = False
    grid = np.arange(n)  # each slice's index in the stack
    if n > 1:
        gaps = np.diff(positions)
        fit = regular_grid(positions)
        if fit is not None and fit[0][-1] == n - 1:
            dz = fit[1]  # evenly spaced: the grid's step, also where the positions were rounded as written
        else:
            fillable = fit is not None and not z_assumed
            n_full = int(fit[0][-1]) + 1 if fillable else n  # slices on the series' grid, gaps filled
            if fillable and n_full - n <= MAX_MADE_SHARE * n_full:
                grid, dz = fit
                missing = n_full - n
                warnings.append(f"{missing} missing slice(s) in {int(np.sum(np.diff(grid) > 1))} gap(s) of the "
                                f"series, filled by linear interpolation between their neighbours so that results "
                                f"lie on the series' grid; labels there are estimates")
            else:
                uneven, dz = True, float(np.median(gaps))  # stacked at the median gap
                missing = int(sum(max(0, int(round(g / dz)) - 1) for g in gaps))
                warnings.append(f"uneven slice spacing ({gaps.min():.2f}..{gaps.max():.2f} mm)"
                                + (f", about {missing} missing slice(s)" if missing else "")
                                + (" (too many to fill in)" if fillable else "")
                                + f"; the volume is stacked at {dz:.2f} mm, so positions past the unevenness are "
                                  f"approximate")
    else:
        given = getattr(first, "SpacingBetweenSlices", None) or getattr(first, "SliceThickness", None)
        dz, z_assumed = float(given or 1.0), not given
    n_grid = int(grid[-1]) + 1
    if n_grid * rows * cols > MAX_VOXELS:
        raise InvalidInputError(f"{n_grid}x{rows}x{cols} voxels exceed the {MAX_VOXELS} voxel limit", source)

    # each slice in the volume's number type as it is read (int16 where its HU fit): reading then holds the slices
    # and the volume once each, not three copies at twice the size
    slices = [_narrowed(_slice_hu(ds, p, warnings)) for _, p, ds in uniq]
    is_float = any(s.dtype.kind == "f" for s in slices)
    if n_grid > n:  # the made slices' positions on the grid, the series' own where it has them
        slices, given = fill_missing(slices, grid), positions
        positions = given[0] + dz * np.arange(n_grid, dtype=float)
        positions[grid] = given
    if is_float:
        vol = np.stack([s.astype(np.float32, copy=False) for s in slices])
    else:
        vol = np.stack(slices)  # int16, or int32 where a slice's HU do not fit int16: then float32, as NIfTI reads
        if vol.dtype != np.int16:
            vol = vol.astype(np.float32)
    del slices

    r_sp, c_sp = _pixel_spacing(first)
    directions = np.stack([normal, col_dir, row_dir], axis=1)  # array axes: slice, row, column
    # given as columns, rows, slices (NIfTI's usual axis order; rows stay as stored), so that a mask written back
    # on this grid has that layout; its first voxel is the first pixel of the first slice along the normal
    ipps = [getattr(ds, "ImagePositionPatient", None) for _, _, ds in uniq]
    origin = [float(v) for v in ipps[0]] if all(v is not None and len(v) == 3 for v in ipps) else None
    gantry_tilted = False
    if origin is not None and n > 1:
        # a tilted gantry steps the slices along the table, not along their normal: the affine (steps along the
        # normal) then puts each slice further off in its own plane; said, not corrected (NIfTI's qform cannot
        # hold the shear, and chest CT is rarely tilted)
        step = np.array([float(v) for v in ipps[-1]]) - np.array(origin)
        off = float(np.linalg.norm(step - np.dot(step, normal) * normal))
        tilt = float(np.degrees(np.arctan2(off, abs(np.dot(step, normal)))))
        gantry_tilted = tilt > 0.5
        if gantry_tilted:
            warnings.append(f"slices stepped {tilt:.1f} degrees off their normal (a tilted gantry): results lie on "
                            f"the slices as stored, but the written mask's position in the world drifts by up to "
                            f"{off:.1f} mm across the series")
    vox, spacing, layout = canonicalize(np.transpose(vol, (2, 1, 0)), directions[:, ::-1], (c_sp, r_sp, abs(dz)),
                                        origin=origin)
    axial_tilt = axial_tilt_deg(directions[:, ::-1], layout.order)  # the slices' plane (a gantry's tilt too)
    # a tilted gantry's line says the slices are tilted already
    warnings.extend(reading_notes(spacing, layout.stored_plane, 0.0 if gantry_tilted else axial_tilt))
    # positions follow the canonical z axis (feet to head)
    flipped_z = directions[2, 0] < 0 if abs(directions[2, 0]) >= 0.5 else False
    pos_list = [float(x) for x in (positions[::-1] if flipped_z else positions)]
    made = sorted(set(range(n_grid)) - set(int(g) for g in grid))
    # the canonical z indices of the made slices, where the series' slices are the canonical z slices
    axial = layout.order[0] == 2
    made_z = sorted(n_grid - 1 - k if layout.flips[0] else k for k in made) if axial else []
    pixel_assumed = _given_pixel_spacing(first) is None
    sources = _sources([ds for _, _, ds in uniq], grid)
    meta = VolumeMeta(
        source=source or str(first_path.parent),
        format="dicom",
        modality="CT",
        units=HU,
        study_uid=str(getattr(first, "StudyInstanceUID", "") or "") or None,
        series_uid=str(getattr(first, "SeriesInstanceUID", "") or "") or None,
        series_description=str(getattr(first, "SeriesDescription", "") or "") or None,
        series_number=_int_or_none(getattr(first, "SeriesNumber", None)),
        manufacturer=str(getattr(first, "Manufacturer", "") or "") or None,
        kernel=kernel_of(first),
        slice_positions=pos_list,
        spacing_uneven=uneven,
        spacing_assumed=z_assumed or pixel_assumed,
        pixel_size_assumed=pixel_assumed,
        missing_slices=missing,
        interpolated_slices=made_z,
        warnings=warnings,
        layout=layout,
        axial_tilt_deg=axial_tilt,
        sources=sources,
    )
    for w in warnings:
        log.warning("%s: %s", Path(meta.source).name, w)
    return CTVolume(vox, spacing, meta)


_PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)  # FloatPixelData, DoubleFloatPixelData, PixelData


def _sources(headers: List, grid: np.ndarray) -> Optional[SourceHeaders]:
    """The stacked slices' headers (``headers[j]`` is slice ``grid[j]``) for a DICOM SEG of their labels: each
    file's, or one Enhanced CT file's with the slice each of its frames is; None for frames of several multi-frame
    files, which one SEG cannot reference."""
    frames = [getattr(ds, "ctmodels_frame", None) for ds in headers]
    if all(f is None for f in frames):
        return SourceHeaders([_header_only(ds) for ds in headers], list(grid))
    owners = {id(f[0]) for f in frames if f is not None}
    if None in frames or len(owners) != 1:
        return None
    owner = frames[0][0]
    index: List[Optional[int]] = [None] * int(getattr(owner.ds, "NumberOfFrames", 1) or 1)
    for (_, i), k in zip(frames, grid):
        index[i] = int(k)
    return SourceHeaders([_header_only(owner.ds)], index, multiframe=True)


def _header_only(ds):
    """A slice's header without its pixel data (which the stacked volume holds): what a DICOM SEG names of it."""
    from pydicom.dataset import Dataset

    h = Dataset()
    for tag in ds.keys():  # elements as read (raw ones stay raw: nothing is decoded here that reading did not)
        if tag not in _PIXEL_TAGS:
            h[tag] = ds.get_item(tag, keep_deferred=True)
    return h


def _narrowed(hu: np.ndarray) -> np.ndarray:
    """Integer HU of one slice as int16 where they fit; otherwise (and float HU) as they are."""
    if hu.dtype.kind in "iu" and hu.dtype != np.int16 and hu.size and hu.min() >= -32768 and hu.max() <= 32767:
        return hu.astype(np.int16)
    return hu


def regular_grid(positions: Sequence[float]) -> Optional[Tuple[np.ndarray, float]]:
    """Where the slices' positions (increasing, mm) lie on an evenly spaced grid, some of its slices perhaps
    missing: each slice's index on the grid and the grid's step, fitted to all positions (so that positions rounded
    as written, such as 0.625 mm slices at 0.1 mm, give 0.625 rather than their median gap). Each must lie within a
    twentieth of a step of its place, or within ``POSITION_QUANTUM_MM`` where that is more. None where they do not
    (a series whose spacing changes, as some protocols do)."""
    p = np.asarray(positions, dtype=np.float64)
    if len(p) < 2:
        return None
    gaps = np.diff(p)
    # the step from the median gap; else from the smallest (a few slices, where a gap is as common as a step)
    for dz in dict.fromkeys((float(np.median(gaps)), float(gaps.min()))):
        fit = _grid_from(p, gaps, dz)
        if fit is not None:
            return fit
    return None


def _grid_from(p: np.ndarray, gaps: np.ndarray, dz: float) -> Optional[Tuple[np.ndarray, float]]:
    """:func:`regular_grid` from a first guess of the step."""
    if dz <= 0:
        return None
    for _ in range(3):  # steps counted with the guess, then with the fitted step
        steps = np.round(gaps / dz)
        if np.any(steps < 1):
            return None
        grid = np.concatenate([[0], np.cumsum(steps)]).astype(int)
        dz, p0 = (float(c) for c in np.polyfit(grid, p, 1))
        if dz <= 0:
            return None
    if np.max(np.abs(p - (p0 + dz * grid))) > max(0.05 * dz, POSITION_QUANTUM_MM):
        return None
    return grid, dz


def fill_missing(slices: Sequence[np.ndarray], grid: np.ndarray) -> List[np.ndarray]:
    """The slices placed at their ``grid`` indices (increasing), each missing one made by linear interpolation
    between the two slices around it, in the slices' own number type (rounded where integer)."""
    out: List[np.ndarray] = []
    for k in range(len(slices)):
        out.append(slices[k])
        if k + 1 == len(slices):
            break
        a, b = int(grid[k]), int(grid[k + 1])
        if b == a + 1:
            continue
        lo, hi = slices[k].astype(np.float64), slices[k + 1].astype(np.float64)
        for j in range(a + 1, b):
            t = (j - a) / (b - a)
            made = (1 - t) * lo + t * hi
            out.append(made.astype(slices[k].dtype) if slices[k].dtype.kind == "f" else
                       np.round(made).astype(np.result_type(slices[k].dtype, slices[k + 1].dtype)))
    return out


def _int_or_none(v) -> Optional[int]:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def read_dicom_file(path: Path) -> CTVolume:
    """One DICOM file -> a one-slice CTVolume."""
    pydicom, InvalidDicomError = _pydicom()
    try:
        ds = pydicom.dcmread(str(path))
    except InvalidDicomError:
        try:
            ds = pydicom.dcmread(str(path), force=True)
        except Exception:
            raise InvalidInputError("not a readable DICOM file, expected a CT DICOM image", path) from None
        if "PixelData" not in ds and "Rows" not in ds:
            raise InvalidInputError("not a DICOM file, expected a CT DICOM image", path) from None
    except Exception as exc:
        raise InvalidInputError(f"corrupt or truncated DICOM ({type(exc).__name__}), expected a CT image",
                                path) from None
    try:
        items = frames_of(Path(path), ds) if is_enhanced_ct(ds) else None
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    except malformed_errors() as exc:  # a header value that does not decode, found when first used
        raise InvalidInputError(f"corrupt DICOM header ({type(exc).__name__}), expected a CT image", path) from None
    if items is not None:
        return read_series(items, source=str(path))
    if frames > 1:
        check_ct(ds, Path(path))
        raise InvalidInputError("multi-frame DICOM without functional groups; expected single-frame CT slices or "
                                "an Enhanced CT file", path)
    return read_series([(Path(path), ds)], source=str(path))


def series_summary(items: Sequence[Tuple[Path, object]]) -> Dict[str, object]:
    """Header facts of a series for listing, from its first file whose header decodes (another file's header
    value that does not decode is :func:`read_series`' to set aside); where none does, InvalidInputError."""
    first = None
    for _, ds in items:
        try:
            return _series_summary(ds)
        except malformed_errors() as exc:
            first = first or exc
    raise InvalidInputError(f"malformed DICOM header ({type(first).__name__})", items[0][0] if items else None)


def _series_summary(ds) -> Dict[str, object]:
    return {
        "modality": str(getattr(ds, "Modality", "") or "") or None,
        "description": str(getattr(ds, "SeriesDescription", "") or "") or None,
        "manufacturer": str(getattr(ds, "Manufacturer", "") or "") or None,
        "kernel": kernel_of(ds),
        "series_number": _int_or_none(getattr(ds, "SeriesNumber", None)),
        "study_uid": str(getattr(ds, "StudyInstanceUID", "") or "") or None,
        "slice_thickness": float(ds.SliceThickness) if getattr(ds, "SliceThickness", None) not in (None, "") else None,
        "pixel_spacing": _pixel_spacing(ds),
        "rows": _int_or_none(getattr(ds, "Rows", None)),
        "columns": _int_or_none(getattr(ds, "Columns", None)),
        "patient_position": str(getattr(ds, "PatientPosition", "") or "").strip().upper() or None,
        "image_type": _image_type(ds),
        "body_part": body_part(ds),
        "plane": plane_of(ds),
        "not_slices": not_a_slice(ds),
    }


def _image_type(ds) -> Optional[str]:
    """ImageType (0008,0008) as written, values joined by backslashes ("ORIGINAL\\PRIMARY\\AXIAL"); None without."""
    v = getattr(ds, "ImageType", None)
    if v is None or v == "":
        return None
    values = [v] if isinstance(v, str) else list(v)
    return "\\".join(str(x).strip() for x in values) or None


def ct_slice_dataset(pixels: np.ndarray, position, spacing_yx, thickness: float, series_uid: str, study_uid: str,
                     orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), slope: float = 1.0, intercept: float = 0.0,
                     write_rescale: bool = True, **tags):
    """A single-frame CT Image Storage dataset holding stored ``pixels`` (uint16 or int16).

    ``tags`` are set as given (e.g. ``Manufacturer="SIEMENS", ConvolutionKernel="B70f"``).
    Used to export volumes and to build test and benchmark series.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing, ds.SliceThickness = [float(spacing_yx[0]), float(spacing_yx[1])], float(thickness)
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
    if write_rescale:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return ds
