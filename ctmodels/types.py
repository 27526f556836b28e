"""Data types shared by readers, models and reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

# Units of CTVolume.voxels
HU = "HU"  # Hounsfield units (int16 after rescale)
DISPLAY = "display"  # 8-bit display image (PNG/JPG, windowed) - NOT Hounsfield units


class SourceHeaders:
    """The headers of a DICOM series' slices (pixel data left out), kept so that a DICOM SEG can reference them
    (:mod:`ctmodels.dicom_seg`): ``headers[j]`` is the slice at ``stack_index[j]`` of the series' grid, its slices
    in order along their normal (the third axis of the input layout, ``meta.layout``). For one multi-frame file
    (Enhanced CT), ``headers`` is its one header and ``stack_index[i]`` the slice its frame ``i`` is (None for a
    frame set aside). They hold what the files hold, patient name and ID among it: never logged or shown (the repr
    says only how many there are)."""

    def __init__(self, headers: List[Any], stack_index: List[Optional[int]], multiframe: bool = False):
        self.headers, self.multiframe = list(headers), bool(multiframe)
        self.stack_index = [None if k is None else int(k) for k in stack_index]

    def __len__(self) -> int:
        return len(self.headers)

    def __repr__(self) -> str:
        return f"SourceHeaders({len(self)} DICOM headers)"


@dataclass
class VolumeMeta:
    """What is known about where a volume came from. No patient name or ID is kept here, except inside
    ``sources`` (the DICOM headers a DICOM SEG names), which is never logged or shown."""

    source: str = ""  # file or folder it was read from
    format: str = ""  # dicom | nifti | nrrd | png | jpg | npy
    modality: Optional[str] = None
    units: str = HU
    study_uid: Optional[str] = None
    series_uid: Optional[str] = None
    series_description: Optional[str] = None
    series_number: Optional[int] = None
    manufacturer: Optional[str] = None
    kernel: Optional[str] = None  # ConvolutionKernel (0018,1210) as written
    slice_positions: Optional[List[float]] = None  # mm along the slice normal, one per z
    orientation: str = "LPS"  # meaning of array axes after reading, see ctmodels.io
    spacing_uneven: bool = False
    spacing_assumed: bool = False  # the input gave no voxel size: the spacing is 1 mm by default, not measured
    pixel_size_assumed: bool = False  # of those, the in-plane pixel size (not only the slice spacing)
    missing_slices: int = 0
    # canonical z indices of slices a reader made by interpolation where a DICOM series lacked them (axial series)
    interpolated_slices: List[int] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    extra: Dict[str, Any] = field(default_factory=dict)
    # ctmodels.orientation.Layout of a 3D input: its own array layout and world position, for writing results
    # back on its grid (None for images, .npy and volumes made in code)
    layout: Optional[Any] = None
    # degrees the axial slices lie off the patient's axial plane (ctmodels.orientation.axial_tilt_deg: an oblique
    # series, a tilted gantry); 0 where the input gives no directions (images, .npy, arrays)
    axial_tilt_deg: float = 0.0
    # a DICOM series' slice headers, or one Enhanced CT file's (SourceHeaders), for a DICOM SEG of its labels; None
    # for other inputs and for frames of several multi-frame files
    sources: Optional[SourceHeaders] = field(default=None, repr=False, compare=False)

    @property
    def is_hu(self) -> bool:
        return self.units == HU


@dataclass
class CTVolume:
    """A CT volume as ``voxels[z, y, x]`` with ``spacing`` (z, y, x) in mm.

    Orientation convention for 3D inputs: z runs from inferior to superior (feet to head),
    y from anterior to posterior (rows top to bottom = front to back), x from patient right
    to patient left (columns left to right = radiological display). This is the DICOM patient
    frame (LPS) read as [S, P, L] along [z, y, x]; every reader brings its input to it.
    For HU volumes ``voxels`` is int16 (or float32 where rescale produced fractions); for
    display images it is uint8 with ``meta.units == "display"``.
    """

    voxels: np.ndarray
    spacing: Tuple[float, float, float]
    meta: VolumeMeta = field(default_factory=VolumeMeta)

    @property
    def shape(self) -> Tuple[int, int, int]:
        return tuple(self.voxels.shape)  # type: ignore[return-value]

    @property
    def is_hu(self) -> bool:
        return self.meta.is_hu

    def position_mm(self, z: int) -> Optional[float]:
        """Where slice ``z`` lies on the patient's head-foot axis: the S coordinate (mm) of its centre in the
        patient frame (the same in LPS and RAS), as viewers give an axial slice's location. None where the input
        gives no position (images, .npy, DICOM without ImagePositionPatient)."""
        layout = self.meta.layout
        h, w = self.shape[-2:]
        where = None if layout is None else layout.lps_mm((z, (h - 1) / 2, (w - 1) / 2))
        return None if where is None else float(where[2])

    def __repr__(self) -> str:  # short: never dumps voxels
        return (f"CTVolume(shape={self.shape}, spacing={tuple(round(s, 3) for s in self.spacing)}, "
                f"units={self.meta.units}, format={self.meta.format})")


@dataclass
class SeriesInfo:
    """One series of a study, as listed by :func:`ctmodels.series.list_series`."""

    series_uid: str
    files: List[str]
    n_slices: int
    modality: Optional[str]
    description: Optional[str]
    manufacturer: Optional[str]
    kernel: Optional[str]
    kernel_class: str  # "lung" | "soft" | "unknown"
    kernel_reason: str
    kernel_source: str = "tag"  # "tag" (ConvolutionKernel) | "image" (noise estimate) | "none"
    slice_thickness: Optional[float] = None
    pixel_spacing: Optional[Tuple[float, float]] = None
    series_number: Optional[int] = None
    study_uid: Optional[str] = None
    rows: Optional[int] = None
    columns: Optional[int] = None
    patient_position: Optional[str] = None  # PatientPosition (0018,5100): HFS, FFS, HFP, FFP, HFDR, ...
    image_type: Optional[str] = None  # ImageType (0008,0008), values joined by backslashes
    body_part: Optional[str] = None  # BodyPartExamined (0018,0015) as written
    plane: str = "axial"  # of the slices, by ImageOrientationPatient: axial, coronal or sagittal (nearest)
    # why the series holds no CT slices to read, e.g. a Secondary Capture (a dose report); None for slices
    not_slices: Optional[str] = None

    def as_dict(self) -> Dict[str, Any]:
        d = dict(self.__dict__)
        d.pop("files")
        d["n_files"] = len(self.files)
        return d
