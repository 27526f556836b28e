"""read_ct(path) -> CTVolume for every input users bring; mask writers.

Inputs and conventions
----------------------
* **DICOM**: one file, or a folder (searched recursively, any file order, several series
  allowed). Series are grouped by SeriesInstanceUID; the series used is ``series_uid`` if
  given, else the one :func:`ctmodels.series.select_series` picks. Values are HU. Enhanced CT files (and Legacy
  Converted Enhanced CT) give one slice per frame (:func:`ctmodels.dicom.frames_of`), a whole series or one frame
  a file.
* **zip** of DICOM files/folders or of one volume file: extracted safely into a private
  temporary folder that is deleted after reading (see :mod:`ctmodels.archive`).
* **NIfTI** (``.nii``, ``.nii.gz``), **NRRD** (``.nrrd``, ``.nhdr``) and **MetaImage** (``.mha``, ``.mhd``:
  :mod:`ctmodels.metaimage`): values are HU; the affine brings the array to the canonical layout.
* **PNG / JPG / BMP / TIFF**: one 8-bit slice (colour is converted to gray; colour drawn inside the patient, an
  overlay or annotations, is refused or warned of) with
  ``meta.units == "display"``: not HU, so nothing downstream applies HU thresholds to it.
  16-bit images are refused (their units are unknown).
* **.npy**: a 2D ``[y, x]`` or 3D ``[z, y, x]`` array already in the canonical layout; any
  numeric dtype except uint8 is HU, uint8 is an 8-bit display image (``[H, W, 3 or 4]``: a colour slice, made grey
  as an image file is); spacing is 1 mm unless
  ``spacing=(z, y, x)`` is passed. No pickles are loaded.
* an **array** already in memory: :func:`volume_from_array` reads it as a ``.npy`` file of it is read, and
  :func:`as_volume` takes what a model's ``predict`` was given (a CTVolume, a path or an array).

A volume read as HU with nothing below 0 is refused (:class:`NotCTError`): as a label map or mask (a few whole
values), or as not in HU at all (CT stored without its rescale, MR, PET, probabilities): CT shows air at about
-1000 HU.

Canonical layout (all 3D inputs): ``voxels[z, y, x]`` with z feet->head, y front->back,
x patient right->left (the LPS frame as [S, P, L]); ``spacing`` is (z, y, x) in mm.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from . import dicom
from .archive import extracted
from .dicom_seg import SEG_SUFFIX
from .display_colour import colour_note
from .display_window import check_lung_window
from .errors import EmptyInputError, InvalidInputError, NotCTError, SeriesSelectionError, UnsupportedFormatError
from .orientation import (Layout, axial_tilt_deg, axis_order_note, canonicalize, ras_to_lps, reading_notes,
                          split_affine)
from .preprocessing import as_array, check_values, spread, without_channel_axis
from .types import DISPLAY, HU, CTVolume, SeriesInfo, VolumeMeta

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".npy")
DETACHED_HEADERS = (".nhdr", ".mhd")  # volume headers whose voxels lie in a data file of their own beside them
DATA_SUFFIXES = (".raw", ".zraw")  # such data files
INPUT_SUFFIXES = IMAGE_SUFFIXES + VOLUME_SUFFIXES + (".zip", ".dcm")  # what an input file's name ends with
SEGMENT_OUTPUTS = (".mask.png", ".overlay.png", ".mask.nii.gz", ".slices.csv", SEG_SUFFIX)  # segment writes these
MAX_IMAGE_PIXELS = 4096 * 4096

PathLike = Union[str, Path]


def is_segment_output(path: PathLike) -> bool:
    """A mask, overlay or table that ``ctmodels segment`` wrote (by its name): not a study, where a folder is read."""
    return Path(path).name.lower().endswith(SEGMENT_OUTPUTS)


def suffix_of(path: PathLike) -> str:
    name = Path(path).name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return Path(name).suffix


def read_ct(path: PathLike, series_uid: Optional[str] = None, purpose: str = "lesion",
            spacing: Optional[Sequence[float]] = None) -> CTVolume:
    """Read a CT input (see module docs) into a :class:`CTVolume`."""
    vol = _read_ct(Path(path), series_uid, purpose, spacing)
    check_ct(vol, path, purpose)
    return vol


def check_ct(vol: CTVolume, path: Optional[PathLike] = None, purpose: str = "lesion") -> None:
    """Refuse a volume whose values are not CT, naming ``path``: random noise (:class:`InvalidInputError`), an 8-bit
    display image with a few grey levels (:class:`NotCTError`: a label map or mask), for the
    lesion model an 8-bit display image in a soft-tissue or bone window (:class:`NotLungWindowError`: it reads
    lung-window images; the breath-hold check reads no display image, and says so), or HU with nothing below 0
    (:class:`NotCTError`: a label map or mask; values without their rescale; MR, PET)."""
    r = round(neighbour_correlation(vol.voxels), 2) + 0.0  # + 0.0: no "-0.00"
    if r < MIN_NEIGHBOUR_R:
        raise InvalidInputError(f"the pixels look like random noise (neighbouring pixels correlate at r = {r:.2f}; "
                                "CT slices show about 0.9, the noisiest training slice 0.41); expected a CT slice "
                                "or study", path)
    if vol.meta.units == DISPLAY:
        levels = label_values(vol.voxels, MAX_DISPLAY_LABELS)
        if levels is not None:
            raise NotCTError(f"looks like a label map or mask, not a CT slice: {len(levels)} grey levels "
                             f"({_listed(levels)}), where a CT slice shows hundreds; expected a CT slice in a lung "
                             "window, or the scan itself in HU (DICOM, NIfTI)", path)
        if purpose == "lesion":
            check_lung_window(vol.voxels, path)
    lo = float(np.min(vol.voxels)) if vol.is_hu else -1.0
    if not lo < 0:  # `not <`: NaN too. No air: a label map or mask, or not HU at all
        labels = label_values(vol.voxels)
        if labels is not None:
            raise NotCTError(f"looks like a label map or mask, not CT: {len(labels)} distinct values "
                             f"({_listed(labels)}) and "
                             "none below 0, where CT shows air at about -1000 HU; expected a CT image in Hounsfield "
                             "units", path)
        raise NotCTError(f"nothing below 0 (values {lo:.4g}..{float(np.max(vol.voxels)):.4g}), where CT in Hounsfield "
                         "units shows air at about -1000 HU: stored values without their rescale to HU, or not CT "
                         "(MR, PET, a probability map); expected a CT image in Hounsfield units", path)


def _listed(values: Sequence[float]) -> str:
    return ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if len(values) > 6 else "")


MIN_NEIGHBOUR_R = 0.1  # random noise: about 0; the lowest of the 1614 lung-infection training slices: 0.41
MAX_LABELS = 64  # a label map has a few values; a CT thousands (its noise alone gives hundreds)
MAX_DISPLAY_LABELS = 8  # 8-bit: a label map or mask shows a few grey levels, the training slices 177 or more


def label_values(voxels: np.ndarray, max_labels: int = MAX_LABELS, max_slices: int = 16) -> Optional[List[float]]:
    """The distinct values of a volume that looks like a label map or mask rather than CT, else None: none
    below 0 (CT has air at about -1000 HU) and between 2 and ``max_labels`` distinct whole numbers. Only a
    volume with nothing below 0 is looked at further (up to ``max_slices`` slices first, then all of it)."""
    a = np.asarray(voxels)
    if a.size == 0 or not a.min() >= 0:  # `not >=`: NaN is not a label either
        return None
    sample = a[spread(len(a), max_slices)] if a.ndim == 3 else a  # a shortcut: what fails here fails on all of it
    for part, fewest in ((sample, 1), (a, 2)):  # a mask may hold its label on slices the sample misses
        vals = np.unique(part)
        if not fewest <= len(vals) <= max_labels or not np.all(vals == np.round(vals)):
            return None
    return [float(v) for v in vals]


def read_labels(path: PathLike) -> CTVolume:
    """A label map or mask (NIfTI, NRRD, MetaImage or .npy; e.g. what :func:`write_mask_nifti` wrote) on the canonical
    ``[z, y, x]`` grid: the same reading as :func:`read_ct` without its checks that the values are CT;
    ``voxels`` are integers and ``meta.units`` is ``"labels"``."""
    p = Path(path)
    if suffix_of(p) not in VOLUME_SUFFIXES:
        raise UnsupportedFormatError(f"unsupported file type {suffix_of(p) or '(none)'}; expected a label map as "
                                     "NIfTI, NRRD, MetaImage or .npy", p)
    vol = _read_ct(p, None, "lesion", None)
    if vol.voxels.dtype.kind == "f":
        vol.voxels = np.round(vol.voxels).astype(np.int32)
    vol.meta.units = "labels"
    return vol


def neighbour_correlation(voxels: np.ndarray, max_slices: int = 16) -> float:
    """Pearson correlation of each pixel with its right-hand neighbour, over up to ``max_slices`` slices
    spread through the volume: about 0.9 for CT (anatomy varies slowly from pixel to pixel), about 0 for
    random noise. 1.0 where the image is flat (no variation to judge: not noise)."""
    a = np.asarray(voxels)
    a = a[None] if a.ndim == 2 else a
    if a.shape[-1] < 2:
        return 1.0
    a = a[spread(a.shape[0], max_slices)].astype(np.float32)
    x, y = a[..., :-1], a[..., 1:]
    x, y = x - x.mean(), y - y.mean()
    den = float(np.sqrt((x * x).sum(dtype=np.float64) * (y * y).sum(dtype=np.float64)))
    return 1.0 if den == 0 else float((x * y).sum(dtype=np.float64) / den)


def _read_ct(p: Path, series_uid: Optional[str], purpose: str, spacing: Optional[Sequence[float]]) -> CTVolume:
    if not p.exists():
        raise InvalidInputError("no such file or folder", p)
    if p.is_dir():
        return _read_folder(p, series_uid, purpose)
    if p.stat().st_size == 0:
        raise EmptyInputError("file is empty, expected a CT image or volume", p)
    sfx = suffix_of(p)
    if sfx == ".zip":
        with extracted(p) as tmp:
            vol = _read_folder(tmp, series_uid, purpose, display_name=str(p))
        vol.meta.source = str(p)
        return vol
    if sfx in (".nii", ".nii.gz"):
        return read_nifti(p)
    if sfx in (".nrrd", ".nhdr"):
        return read_nrrd(p)
    if sfx in (".mha", ".mhd"):
        return read_metaimage(p)
    if sfx in IMAGE_SUFFIXES:
        return read_image(p)
    if sfx == ".npy":
        return read_npy(p, spacing)
    if dicom.is_dicom_file(p):
        return dicom.read_dicom_file(p)
    if sfx in DATA_SUFFIXES:
        raise UnsupportedFormatError(f"{sfx} holds voxels without their sizes; give the .mhd or .nhdr header that "
                                     "names it, with this file beside it", p)
    raise UnsupportedFormatError(
        f"unsupported file type {sfx or '(none)'}; expected DICOM, a zip of DICOM, NIfTI, NRRD, MetaImage, "
        "PNG/JPG or .npy", p)


def _read_folder(folder: Path, series_uid: Optional[str], purpose: str,
                 display_name: Optional[str] = None) -> CTVolume:
    name = display_name or str(folder)
    items = dicom.find_dicom_files(folder)
    vols, images = _volumes_and_images(folder)
    if not items:
        if len(vols) == 1:
            return _read_ct(vols[0], None, "lesion", None)  # read_ct checks the result once, above
        if len(vols) > 1:
            raise InvalidInputError(f"{len(vols)} volume files found, expected one study", name)
        _refuse_images_or_zips(folder, images, name, "no DICOM files found")
        raise EmptyInputError("no DICOM files found, expected a folder or zip of a CT DICOM series", name)
    groups = dicom.group_series(items)
    if series_uid is not None and series_uid not in groups:
        raise InvalidInputError(f"series {series_uid} not found ({len(groups)} series present)", name)
    from .series import describe_dicom_series, select_series

    infos = [describe_dicom_series(uid, its) for uid, its in groups.items()]
    if series_uid is not None:
        best = next(s for s in infos if s.series_uid == series_uid)
        why = f"the series asked for; {best.kernel_class} kernel ({best.kernel_reason}); {best.n_slices} slices"
    else:
        try:
            best, why = select_series(infos, purpose=purpose)
        except SeriesSelectionError as exc:  # name the folder or zip, as every reader's error does
            raise exc.reworded(f"{name}: {exc}") from None
        if len(infos) == 1:
            why = "the only series; " + why
    log.info("%d series found; using series %s: %s", len(infos), best.series_number, why)
    vol = dicom.read_series(groups[best.series_uid], source=name)
    if vols:  # said, not silently passed over: a converted copy, a mask, or another study
        vol.meta.warnings.append(_volumes_beside(vols, name))
    # every series with its description, so that a caller can offer the others (the app's series choice)
    vol.meta.extra.update(selection_reason=why, n_series=len(infos), series=[s.as_dict() for s in infos])
    return vol


def _volumes_beside(vols: List[Path], name: str) -> str:
    """The warning (logged, and returned) for volume files in a folder whose DICOM series is what is read."""
    shown = ", ".join(f.name for f in vols[:3]) + (", ..." if len(vols) > 3 else "")
    text = (f"the folder also holds {len(vols)} volume file(s) ({shown}), not read: where a folder holds DICOM, its "
            "DICOM series is read; give a volume file as its own input")
    log.warning("%s: %s", Path(name).name, text)
    return text


def _refuse_images_or_zips(folder: Path, images: List[Path], name: str, what: str) -> None:
    """A folder without DICOM or volume files that holds image slices or zips: an EmptyInputError that says to give
    each as its own input (a folder is read as one study)."""
    if images:
        kinds = ", ".join(sorted({suffix_of(f) for f in images}))
        raise EmptyInputError(f"{what}, but {len(images)} image file(s) ({kinds}); a folder is read as one study and "
                              "an image slice from its own file: give each image as its own input", name)
    zips = [f for f in folder.rglob("*.zip") if f.is_file()]
    if zips:
        raise EmptyInputError(f"{what}, but {len(zips)} zip file(s); a folder is read as one study: give each zip "
                              "as its own input", name)
    ours = [f for f in folder.rglob("*") if is_segment_output(f) and f.is_file()]
    if ours:
        raise EmptyInputError(f"{what}, only {len(ours)} mask, overlay or table file(s) that ctmodels segment wrote; "
                              "expected a study", name)


def image_slices(folder: PathLike) -> List[Path]:
    """The image files (PNG, JPG, ...) directly in ``folder``, sorted, where it holds no DICOM file and no volume file
    anywhere below it: a folder of slices, each its own input (:func:`read_ct` reads a folder as one study, and
    refuses this one). Otherwise (a study folder, or no images directly in it) an empty list."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    images = sorted(f for f in folder.iterdir() if suffix_of(f) in IMAGE_SUFFIXES and f.is_file())
    if not images or dicom.find_dicom_files(folder) or _volumes_and_images(folder)[0]:
        return []
    return images


def _volumes_and_images(folder: Path) -> Tuple[List[Path], List[Path]]:
    """The volume files (NIfTI, NRRD, .npy) and image files (PNG, JPG, ...) anywhere in ``folder``, sorted; masks
    and overlays that ``ctmodels segment`` wrote there are neither."""
    vols, images = [], []
    for f in sorted(folder.rglob("*")):
        if is_segment_output(f):
            continue
        sfx = suffix_of(f)
        if sfx in VOLUME_SUFFIXES and f.is_file():
            vols.append(f)
        elif sfx in IMAGE_SUFFIXES and f.is_file():
            images.append(f)
    return vols, images


def list_series(path: PathLike) -> List[SeriesInfo]:
    """Every series at ``path``; non-DICOM volumes are listed as one series each."""
    p = Path(path)
    if not p.exists():
        raise InvalidInputError("no such file or folder", p)
    if p.is_file() and suffix_of(p) == ".zip":
        with extracted(p) as tmp:
            out = _list_folder(tmp, str(p))
            for s in out:
                s.files = [f"{p}!{Path(f).name}" for f in s.files]
            return out
    if p.is_dir():
        return _list_folder(p, str(p))
    vol = read_ct(p)
    return [_volume_info(vol, p)]


def _list_folder(folder: Path, name: str) -> List[SeriesInfo]:
    from .series import describe_dicom_series

    items = dicom.find_dicom_files(folder)
    if not items:
        vols, images = _volumes_and_images(folder)
        if vols:
            return [_volume_info(read_ct(v), v) for v in vols]
        _refuse_images_or_zips(folder, images, name, "no DICOM files or volumes found")
        raise EmptyInputError("no DICOM files or volumes found", name)
    vols = _volumes_and_images(folder)[0]
    if vols:  # listed by reading, as reading names them
        _volumes_beside(vols, name)
    return [describe_dicom_series(uid, its) for uid, its in dicom.group_series(items).items()]


def _volume_info(vol: CTVolume, p: Path) -> SeriesInfo:
    from .series import LUNG, UNKNOWN, classify_image, classify_kernel

    cls, why = classify_kernel(vol.meta.kernel, vol.meta.manufacturer)
    source = "tag" if cls != UNKNOWN else "none"
    if cls == UNKNOWN and vol.is_hu:
        cls, why = classify_image(vol.voxels[vol.shape[0] // 2])
        source = "image" if cls != UNKNOWN else "none"
    if not vol.is_hu:
        cls, why, source = UNKNOWN, "8-bit display image: no HU, kernel cannot be judged", "none"
    return SeriesInfo(series_uid=vol.meta.series_uid or f"file:{p.name}", files=[str(p)],
                      n_slices=vol.shape[0], modality="CT" if vol.is_hu else None,
                      description=vol.meta.format, manufacturer=vol.meta.manufacturer,
                      kernel=vol.meta.kernel, kernel_class=cls or LUNG, kernel_reason=why, kernel_source=source,
                      slice_thickness=vol.spacing[0], pixel_spacing=(vol.spacing[1], vol.spacing[2]),
                      rows=vol.shape[1], columns=vol.shape[2], series_number=vol.meta.series_number,
                      study_uid=vol.meta.study_uid)


# ---------------------------------------------------------------------------- volume formats
def _check_volume(data: np.ndarray, p: Path) -> np.ndarray:
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3:
        raise InvalidInputError(f"volume has shape {data.shape}, expected a 3D scalar volume", p)
    if data.size > dicom.MAX_VOXELS:
        raise InvalidInputError(f"{data.size} voxels exceed the {dicom.MAX_VOXELS} limit", p)
    return check_values(data, "volume", p)


def _as_hu_array(data: np.ndarray) -> np.ndarray:
    if data.dtype.kind in "iu" and data.min() >= -32768 and data.max() <= 32767:
        return data.astype(np.int16)
    if data.dtype.kind == "f" and np.all(data == np.round(data)) and data.min() >= -32768 and data.max() <= 32767:
        return data.astype(np.int16)
    return data.astype(np.float32)


def read_nifti(p: Path) -> CTVolume:
    try:
        import nibabel as nib

        img = nib.load(str(p))
        if int(np.prod(img.shape, dtype=np.int64)) > dicom.MAX_VOXELS:  # before any of it is read
            raise InvalidInputError(f"header gives shape {img.shape}, more than the {dicom.MAX_VOXELS} voxel limit", p)
        data = np.asanyarray(img.dataobj)
        affine = img.affine
    except InvalidInputError:
        raise
    except Exception as exc:
        raise InvalidInputError(f"not a readable NIfTI file ({type(exc).__name__})", p) from None
    data = _check_volume(np.asarray(data), p)
    lps = ras_to_lps(affine)
    dirs, sp = split_affine(lps[:3, :3])
    return _volume_in_the_world(data, dirs, sp, lps[:3, 3], p, "nifti")


def _volume_in_the_world(data: np.ndarray, dirs: np.ndarray, sp: Sequence[float], origin, p: Path, fmt: str,
                         assumed: bool = False) -> CTVolume:
    """A volume file's HU array ``data`` (:func:`_check_volume` passed) with its axes' LPS directions
    ``dirs[:, a]``, steps ``sp`` and first voxel's position ``origin`` (None where unknown), in the canonical layout;
    ``assumed``: the file gave no voxel size."""
    vox, spacing, layout = canonicalize(data, dirs, sp, origin=origin)
    tilt = axial_tilt_deg(dirs, layout.order)
    return CTVolume(_as_hu_array(vox), spacing, VolumeMeta(source=str(p), format=fmt, modality="CT", units=HU,
                                                           layout=layout, spacing_assumed=assumed,
                                                           pixel_size_assumed=assumed,
                                                           warnings=_noted(spacing, p, tilt), axial_tilt_deg=tilt))


def _noted(spacing: Sequence[float], source: PathLike, tilt_deg: float = 0.0,
           shape: Optional[Sequence[int]] = None) -> List[str]:
    """A volume's warnings from its voxel size and directions (:func:`ctmodels.orientation.reading_notes`: its axial
    pixels not square, its axial slices tilted by ``tilt_deg``), and for an array given without directions from its
    ``shape`` (:func:`ctmodels.orientation.axis_order_note`), logged as the DICOM reader logs its own. A file's
    third axis is not taken for the plane its slices were made in, as a DICOM series' slices are: an array written in
    another axis order would be warned of for nothing."""
    notes = reading_notes(spacing, tilt_deg=tilt_deg) + [n for n in [axis_order_note(shape or ())] if n]
    for note in notes:
        log.warning("%s: %s", Path(source).name, note)
    return notes


_NRRD_SPACES = {
    "left-posterior-superior": np.eye(3), "lps": np.eye(3),
    "right-anterior-superior": np.diag([-1.0, -1.0, 1.0]), "ras": np.diag([-1.0, -1.0, 1.0]),
    "left-anterior-superior": np.diag([1.0, -1.0, 1.0]), "las": np.diag([1.0, -1.0, 1.0]),
}


def read_nrrd(p: Path) -> CTVolume:
    from .nrrd_header import checked_header

    checked_header(p, dicom.MAX_VOXELS)  # its data file, sizes and compressed length, before pynrrd reads them
    try:
        import nrrd

        data, header = nrrd.read(str(p))  # index order "F": data[i, j, k] with i fastest in the file
    except Exception as exc:
        raise InvalidInputError(f"not a readable NRRD file ({type(exc).__name__})", p) from None
    data = _check_volume(np.asarray(data), p)
    dirs_raw = header.get("space directions")
    space = str(header.get("space", "left-posterior-superior")).lower()
    if dirs_raw is not None:
        m = np.array([np.asarray(d, dtype=float) if d is not None else np.full(3, np.nan) for d in dirs_raw])
        m = m[~np.isnan(m).any(axis=1)]
        if m.shape != (3, 3):
            raise InvalidInputError("NRRD space directions are not 3x3", p)
        to_lps = _NRRD_SPACES.get(space)
        if to_lps is None:
            raise InvalidInputError(f"NRRD space {space!r} not supported (expected LPS, RAS or LAS)", p)
        dirs, sp = split_affine(to_lps @ m.T)  # columns = axis steps in LPS
        origin = header.get("space origin")
        origin = None if origin is None or np.shape(origin) != (3,) else to_lps @ np.asarray(origin, dtype=float)
    else:  # no position in the world: nothing to write a result back onto but the grid itself
        sp = np.asarray(header.get("spacings", [1.0, 1.0, 1.0]), dtype=float)
        dirs, origin = np.eye(3), None
    assumed = dirs_raw is None and header.get("spacings") is None
    return _volume_in_the_world(data, dirs, sp, origin, p, "nrrd", assumed)


def read_metaimage(p: Path) -> CTVolume:
    from .metaimage import read_metaimage as read_data

    data, dirs, sp, origin, given = read_data(p, dicom.MAX_VOXELS)
    return _volume_in_the_world(_check_volume(data, p), dirs, sp, origin, p, "metaimage", not given)


def quiet_readers(verbose: bool = False) -> None:
    """For the applications (the CLI, the app); the library itself never calls it. Two readers print warnings of
    their own, as Python warnings with a line of their source, before ctmodels' one-line message that names the file
    and says what was expected:

    * pydicom, on a malformed header value (three lines: also a record of its logger). The Python warning is
      dropped; pydicom's log record is kept for ``verbose`` runs;
    * Pillow, on an image over its 89 M pixel limit (``DecompressionBombWarning``), which :func:`image_pixels`
      refuses at 16.8 M pixels anyway, before decoding, and on a damaged EXIF block ("Corrupt EXIF data"), of which
      only the orientation is read, and ignored where it does not parse. Dropped.

    And highdicom, which writes DICOM SEGs (:mod:`ctmodels.dicom_seg`), warns quoting the patient's name (a one-part
    name): its warnings are dropped and its logger kept to errors (INFO for ``verbose`` runs), for good, so that no
    thread's timing lets one through (``dicom_seg`` quiets them for the time it runs too, for library users)."""
    import warnings

    from PIL import Image

    dicom._pydicom()  # importing pydicom sets its logger's level, so it is imported first
    logging.getLogger("pydicom").setLevel(logging.INFO if verbose else logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    warnings.filterwarnings("ignore", message="Corrupt EXIF data", category=UserWarning, module=r"PIL(\.|$)")
    logging.getLogger("highdicom").setLevel(logging.INFO if verbose else logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"highdicom(\.|$)")
    # its person-name warning is raised a frame up (stacklevel 2): dropped by its words, whichever module calls it
    warnings.filterwarnings("ignore", message=r"The string .* is unlikely to represent the intended person name",
                            category=UserWarning)


# EXIF Orientation (0x0112) values other than 1, as what an image viewer does to the stored pixels to show them
EXIF_TURNS = {2: "mirrored left to right", 3: "turned 180 degrees", 4: "mirrored top to bottom",
              5: "mirrored along its diagonal", 6: "turned 90 degrees clockwise",
              7: "mirrored along its other diagonal", 8: "turned 90 degrees anticlockwise"}


def exif_orientation(im) -> Optional[int]:
    """An open image's EXIF Orientation value; None without one, or where its EXIF block does not parse (the
    pixels may still be good: they are read as stored)."""
    try:
        value = im.getexif().get(0x0112)
    except Exception:  # Pillow raises several types on a damaged EXIF block (struct.error, SyntaxError, ...)
        return None
    return value if isinstance(value, int) else None


def image_pages(im) -> int:
    """How many slices an open image file holds: a TIFF's pages (a stack, as ImageJ saves one); 1 for other formats,
    whose extra frames (a phone JPEG's second picture) are no slices."""
    return int(getattr(im, "n_frames", 1) or 1) if im.format == "TIFF" else 1


def image_pixels(p: PathLike, prepare, expected: str = "", notes: Optional[List[str]] = None,
                 pages: bool = False) -> Tuple[np.ndarray, str]:
    """The pixels of the image file ``p`` as ``prepare(image)`` gives them (a mode conversion; it may raise an
    InvalidInputError about the mode), and the file's own mode. An image over :data:`MAX_IMAGE_PIXELS` is refused
    before its pixels are decoded, an unreadable one in one line; ``expected`` ends those messages.

    The pixels are those an image viewer shows: where the file's EXIF Orientation tag says to turn or mirror the
    stored pixels (a photo taken with a phone held sideways), they are turned so, and a line saying how is added to
    ``notes`` (when given).

    A TIFF of several pages (a stack of slices, as ImageJ saves one) is refused, or with ``pages`` read whole: the
    pages stacked on a first axis, in the order stored (each page's pixels otherwise: ``[n, ...]`` either way with
    ``pages``). Other formats' extra frames (a phone JPEG's second picture) are no slices: the first is read."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    tail = f"; expected {expected}" if expected else ""
    try:
        with Image.open(p) as im:
            n = image_pages(im)
            if n > 1 and not pages:
                raise InvalidInputError(f"a TIFF of {n} pages{tail or '; expected one image'}", p)
            out = []
            for k in range(n):
                im.seek(k)
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise InvalidInputError(f"image is {w}x{h}, larger than the 4096x4096 limit{tail}", p)
                if w * h * n > dicom.MAX_VOXELS:
                    raise InvalidInputError(f"{n} pages of {w}x{h}, more than the {dicom.MAX_VOXELS} voxel limit", p)
                turn = EXIF_TURNS.get(exif_orientation(im))
                shown = ImageOps.exif_transpose(im) if turn else im
                if turn and notes is not None and k == 0:
                    notes.append(f"read {turn}, as image viewers show it (its EXIF orientation tag); masks and "
                                 "overlays are that way up")
                out.append(np.asarray(prepare(shown)))
            if len({a.shape for a in out}) > 1:
                raise InvalidInputError(f"a TIFF of {n} pages of several sizes; expected a stack of slices of one "
                                        "size", p)
            return (np.stack(out) if pages else out[0]), im.mode
    except InvalidInputError:
        raise
    except Image.DecompressionBombError:  # so large that Pillow refuses to open it
        raise InvalidInputError(f"image is larger than the 4096x4096 limit{tail}", p) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InvalidInputError(f"not a readable image ({type(exc).__name__})"
                                + (f", expected {expected}" if expected else ""), p) from None


def _display_pixels(im, source: PathLike):
    """An 8-bit display slice as grey (``L``), or a colour one as ``RGB``; 16/32-bit images are refused (their
    units are unknown)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        raise InvalidInputError(f"{im.mode} (16/32-bit) image: units unknown; expected an 8-bit display slice, "
                                "or DICOM/NIfTI for Hounsfield units", source)
    return im.convert("L") if im.mode in ("1", "L", "LA", "La") else im.convert("RGB")


def _colour_slice(rgb: np.ndarray, source: PathLike, told: Sequence[str] = ()) -> Tuple[np.ndarray, List[str]]:
    """An 8-bit colour slice ``[H, W, 3 or 4]`` as grey (Pillow's luminance, alpha ignored), and its warning of a
    few coloured marks, logged unless it is among ``told`` (the same note for an earlier page of the file:
    :func:`ctmodels.display_colour.colour_note`, which refuses more). Random colour noise is left to
    :func:`check_ct`, which says it is noise rather than that colour covers it."""
    from PIL import Image

    rgb = np.ascontiguousarray(rgb[..., :3])
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    note = colour_note(rgb, grey, source) if neighbour_correlation(grey) >= MIN_NEIGHBOUR_R else None
    if note and note not in told:
        log.warning("%s: %s", Path(source).name, note)
    return grey, [note] if note else []


def read_image(p: Path) -> CTVolume:
    """An image file as one 8-bit display slice (a TIFF of several pages: a slice each, in the order stored). Colour
    is read as grey (Pillow's luminance); a colour image with colour drawn inside the patient is refused, or warned
    of where the marks are few (:func:`ctmodels.display_colour.colour_note`)."""
    notes: List[str] = []
    pages, _ = image_pixels(p, lambda im: _display_pixels(im, p), notes=notes, pages=True)
    if len(pages) > 1:
        notes.append(f"a TIFF of {len(pages)} pages, read as {len(pages)} slices in the order stored (no slice "
                     "positions: no volumes in mL)")
    for n in notes:
        log.warning("%s: %s", Path(p).name, n)
    if min(pages.shape[1:3]) < 8:
        raise InvalidInputError(f"image is {pages.shape[2]}x{pages.shape[1]}, smaller than 8x8", p)
    slices = []
    for arr in pages:
        if arr.ndim == 3:
            arr, colour = _colour_slice(arr, p, told=notes)
            notes += [c for c in colour if c not in notes]
        slices.append(arr)
    fmt = suffix_of(p).lstrip(".")
    return CTVolume(np.stack(slices), (1.0, 1.0, 1.0),
                    VolumeMeta(source=str(p), format=fmt, modality=None, units=DISPLAY, spacing_assumed=True,
                               pixel_size_assumed=True, warnings=notes))


def read_npy(p: Path, spacing: Optional[Sequence[float]] = None) -> CTVolume:
    try:
        data = np.load(str(p), allow_pickle=False, mmap_mode="r")
    except ValueError as exc:
        raise InvalidInputError(f"not a plain numeric .npy array ({str(exc)[:80]})", p) from None
    except Exception as exc:
        raise InvalidInputError(f"not a readable .npy file ({type(exc).__name__})", p) from None
    return volume_from_array(data, spacing, p, "npy")


MAX_SPACING_MM = 100.0  # a voxel size typed by hand: larger is a slip (cm, or the shape typed)


def parse_spacing(text: str) -> Tuple[float, float, float]:
    """A voxel size typed as ``"Z,Y,X"`` in mm (``"2.5,0.7,0.7"``), each above 0 and below ``MAX_SPACING_MM``; else
    one line saying what was expected."""
    try:
        sp = tuple(float(v) for v in str(text).replace(" ", "").split(","))
    except ValueError:
        sp = ()
    if len(sp) != 3 or not all(0 < v < MAX_SPACING_MM for v in sp):
        raise InvalidInputError(f"{text!r}: expected three sizes in mm between 0 and {MAX_SPACING_MM:g}, as "
                                "2.5,0.7,0.7")
    return sp  # type: ignore[return-value]


def volume_from_array(data: np.ndarray, spacing: Optional[Sequence[float]] = None, source: Optional[PathLike] = None,
                      fmt: str = "array") -> CTVolume:
    """An array as a ``.npy`` file of it is read: ``[y, x]`` or ``[z, y, x]`` in the canonical layout, uint8 an 8-bit
    display image (uint8 ``[H, W, 3 or 4]``: a colour slice, made grey as an image file is), any other numeric dtype
    HU; ``[H, W, 1]`` is a slice with a channel axis; ``spacing`` (z, y, x) in mm, 1 mm assumed (and marked so)
    where not given. Errors name ``source`` where given. The checks :func:`read_ct` makes of what it read (noise,
    nothing below 0) are :func:`check_ct`."""
    if data.ndim not in (2, 3):
        what = ".npy array" if fmt == "npy" else "array"
        raise InvalidInputError(f"{what} has shape {data.shape}, expected [y, x] or [z, y, x]", source)
    arr = without_channel_axis(np.asarray(data))
    colour = arr.ndim == 3 and arr.dtype == np.uint8 and arr.shape[-1] in (3, 4) and min(arr.shape[:2]) >= 8
    notes = []
    if colour:  # [H, W, RGB(A)]: one colour slice, read as an image file is
        arr, notes = _colour_slice(arr, source or fmt)
    if arr.ndim == 2:
        arr = arr[None]
    arr = _check_volume(arr, source)
    try:
        sp = tuple(float(s) for s in spacing) if spacing is not None else (1.0, 1.0, 1.0)
    except (TypeError, ValueError):
        sp = ()
    if len(sp) != 3 or not all(0 < s < float("inf") for s in sp):
        raise InvalidInputError(f"spacing must be three positive numbers (z, y, x), got {spacing}", source)
    meta = VolumeMeta(source=str(source) if source is not None else fmt, format=fmt, modality="CT", units=HU,
                      spacing_assumed=spacing is None, pixel_size_assumed=spacing is None,
                      warnings=notes + _noted(sp, source or fmt, shape=None if colour else arr.shape))
    if arr.dtype == np.uint8:
        meta.modality, meta.units = None, DISPLAY
        return CTVolume(np.ascontiguousarray(arr), sp, meta)
    return CTVolume(_as_hu_array(arr), sp, meta)


def as_volume(x: Union[CTVolume, np.ndarray, PathLike], spacing: Optional[Sequence[float]] = None,
              purpose: str = "lesion") -> CTVolume:
    """What a model's ``predict`` was given, as a :class:`CTVolume`: a CTVolume as it is; a path read by
    :func:`read_ct` (for ``purpose``); an array (or anything ``np.asarray`` takes, a CPU tensor) as
    :func:`volume_from_array` takes it and checked as :func:`read_ct` checks what it read. ``spacing`` (z, y, x) in
    mm is for arrays and ``.npy`` files only, which give none of their own."""
    if isinstance(x, CTVolume):
        if spacing is not None:
            raise InvalidInputError("spacing is for arrays and .npy files; a CTVolume carries its own")
        return x
    if isinstance(x, (str, Path)):
        return read_ct(x, purpose=purpose, spacing=spacing)
    arr = as_array(x)
    if arr.dtype.kind not in "iuf" or arr.ndim == 0:
        raise InvalidInputError(f"expected a CTVolume, a path or a numeric array [z, y, x], got a {type(x).__name__}"
                                + (f" of {arr.dtype}" if arr.ndim else ""))
    vol = volume_from_array(arr, spacing)
    check_ct(vol, purpose=purpose)
    return vol


def input_folder(path: PathLike, expected: str) -> Path:
    """``path`` as an existing folder to read, or an InvalidInputError naming it that says whether it is missing or
    not a folder, and what was ``expected`` ("a folder of masks")."""
    p = Path(path)
    if not p.is_dir():
        raise InvalidInputError(f"{'not a folder' if p.exists() else 'no such folder'}, expected {expected}", p)
    return p


# ---------------------------------------------------------------------------- writers
def check_out_folder(path: PathLike) -> Path:
    """``path`` as a folder that outputs can go in, or an InvalidInputError naming it where it, or a folder above
    it, is a file (so that no OSError reaches the user half-way through a run). Makes nothing."""
    p = Path(path)
    for q in [p] + list(p.parents):
        if q.exists():
            if not q.is_dir():
                where = "is a file" if q == p else f"lies under {q}, which is a file"
                raise InvalidInputError(f"{where}; expected an output folder (or a path where one can be made)", p)
            break
    return p


def write_mask_png(labels: np.ndarray, path: PathLike) -> Path:
    """uint8 label image (0 background, 1 GGO, 2 consolidation, 3 other lung) as PNG."""
    from PIL import Image

    path = Path(path)
    Image.fromarray(np.asarray(labels, dtype=np.uint8)).save(path)
    return path


def canonical_affine(spacing: Tuple[float, float, float]) -> np.ndarray:
    """RAS affine of an array in the canonical [S, P, L] layout, saved as NIfTI in (x, y, z) order."""
    # written as data[x, y, z] = voxels[z, y, x].T: x -> L (RAS -x), y -> P (RAS -y), z -> S
    return np.diag([-spacing[2], -spacing[1], spacing[0], 1.0])


def write_volume_nifti(voxels: np.ndarray, spacing: Tuple[float, float, float], path: PathLike) -> Path:
    """A canonical [z, y, x] volume (HU int16 or labels) as NIfTI that :func:`read_ct` reads back identically."""
    import nibabel as nib

    path = Path(path)
    data = np.transpose(np.asarray(voxels), (2, 1, 0))
    img = nib.Nifti1Image(data, canonical_affine(spacing))
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))
    return path


def write_mask_nifti(labels: np.ndarray, spacing: Tuple[float, float, float], path: PathLike,
                     layout: Optional[Layout] = None) -> Path:
    """Labels on a volume's canonical grid as NIfTI (uint8).

    With the volume's ``meta.layout`` (NIfTI, NRRD and DICOM inputs) the mask is written on the input's own
    grid, so that viewers overlay it on the CT: the input file's array shape and axis order (for DICOM:
    columns, rows with the top row first, as stored, then slices in order along their normal) and its position
    in the world; for a NIfTI input ``mask[i, j, k]`` labels the input's voxel ``[i, j, k]``. Without it
    (images, .npy, inputs without a position) the canonical layout with the spacing alone, as
    :func:`write_volume_nifti`.
    """
    if layout is None or layout.affine is None:
        return write_volume_nifti(np.asarray(labels, dtype=np.uint8), spacing, path)
    import nibabel as nib

    path = Path(path)
    affine = ras_to_lps(layout.affine)
    img = nib.Nifti1Image(layout.to_input(np.asarray(labels, dtype=np.uint8)), affine)
    img.set_qform(affine, code=1)  # scanner coordinates in both forms: readers that take either agree
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))
    return path


__all__ = ["read_ct", "read_labels", "list_series", "write_mask_png", "write_mask_nifti", "NotCTError"]
