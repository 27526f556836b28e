"""Synthetic CT inputs built in code: DICOM series, phantoms, archives."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ctmodels import phantoms


def chest_phantom(shape=(40, 64, 64), spacing=(2.5, 1.0, 1.0), seed: int = 0, trachea_mm: float = 18.0,
                  noise: float = 10.0) -> np.ndarray:
    """HU volume [z, y, x]: body ellipse (40 HU), two lungs (-850 HU), a round trachea (-1000 HU)
    in the upper half, dividing at the carina (mid-z) into two bronchi, air outside (-1000 HU)."""
    rng = np.random.default_rng(seed)
    z, h, w = shape
    vol = np.full(shape, -1000.0, np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = h / 2, w / 2
    body = ((yy - cy) / (0.42 * h)) ** 2 + ((xx - cx) / (0.46 * w)) ** 2 <= 1
    lung_l = ((yy - cy) / (0.30 * h)) ** 2 + ((xx - (cx + 0.22 * w)) / (0.16 * w)) ** 2 <= 1
    lung_r = ((yy - cy) / (0.30 * h)) ** 2 + ((xx - (cx - 0.22 * w)) / (0.16 * w)) ** 2 <= 1
    r_pix = trachea_mm / 2 / spacing[1]
    carina = z // 2
    for k in range(z):
        sl = np.full((h, w), -1000.0, np.float32)
        sl[body] = 40.0
        sl[lung_l | lung_r] = -850.0
        ty = cy - 0.15 * h
        if k >= carina:
            sl[(yy - ty) ** 2 + (xx - cx) ** 2 <= r_pix**2] = -1000.0
        else:
            for dx in (-0.08 * w, 0.08 * w):
                sl[(yy - ty) ** 2 + (xx - cx - dx) ** 2 <= (0.6 * r_pix) ** 2] = -1000.0
        vol[k] = sl
    vol += rng.normal(0, noise, vol.shape).astype(np.float32)
    return np.round(vol).astype(np.int16)


def write_series(folder: Path, hu: np.ndarray, spacing=(2.5, 0.7, 0.7), kernel: Optional[str] = "LUNG",
                 manufacturer: str = "GE MEDICAL SYSTEMS", series_uid: Optional[str] = None,
                 study_uid: str = "1.2.826.0.1.3680043.8.498.1", modality: str = "CT",
                 shuffle: bool = True, slope: float = 1.0, intercept: float = -1024.0,
                 write_rescale: bool = True, orientation=(1, 0, 0, 0, 1, 0), origin=(-100.0, -120.0, -300.0),
                 names: str = "random", series_number: int = 2, patient_name: str = "Doe^Jane",
                 patient_id: str = "PID-12345", skip: Sequence[int] = (), duplicate: Sequence[int] = (),
                 acquisition: Optional[int] = None, description: Optional[str] = None,
                 patient_position: Optional[str] = None, tags: Optional[dict] = None, shear=(0.0, 0.0, 0.0),
                 decimals: Optional[int] = None):
    """Write ``hu[z, y, x]`` (z feet->head) as a DICOM series; returns the file paths. With ``acquisition``, the
    slices carry that AcquisitionNumber (and random names of their own, to lie among another acquisition's). With
    ``decimals``, ImagePositionPatient is written rounded to that many decimals, as some exports write it."""
    from pydicom.uid import generate_uid

    from ctmodels.dicom import ct_slice_dataset

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    iop = np.array(orientation, float)
    normal = np.cross(iop[:3], iop[3:])
    stored = np.round((hu.astype(np.float64) - intercept) / slope).astype(np.int32)
    if stored.min() >= 0 and stored.max() < 65536:
        stored = stored.astype(np.uint16)
    else:
        stored = stored.astype(np.int16)
    order = list(range(hu.shape[0]))
    rng = random.Random((hash(series_uid) + (acquisition or 0)) & 0xFFFF)
    paths = []
    for k in order:
        if k in skip:
            continue
        for rep in range(2 if k in duplicate else 1):
            pos = np.array(origin) + normal * spacing[0] * k + np.array(shear) * k  # shear: a tilted gantry
            pos = pos if decimals is None else np.round(pos, decimals)
            ds = ct_slice_dataset(stored[k], pos, spacing[1:], spacing[0], series_uid, study_uid, orientation=iop,
                                  slope=slope, intercept=intercept, write_rescale=write_rescale,
                                  Modality=modality, PatientName=patient_name, PatientID=patient_id,
                                  SeriesNumber=series_number,
                                  SeriesDescription=description or f"synthetic {kernel or 'no kernel'}",
                                  Manufacturer=manufacturer, InstanceNumber=k + 1,
                                  **({"AcquisitionNumber": acquisition} if acquisition is not None else {}),
                                  **({"PatientPosition": patient_position} if patient_position else {}),
                                  **(tags or {}),
                                  **({"ConvolutionKernel": kernel} if kernel is not None else {}))
            name = {"random": f"{rng.getrandbits(40):010x}.dcm", "instance": f"IM{k:04d}.dcm",
                    "reverse": f"IM{hu.shape[0] - k:04d}.dcm"}[names]
            if rep:
                name = "dup_" + name
            p = folder / name
            ds.save_as(p, enforce_file_format=True)
            paths.append(p)
    if shuffle:
        rng.shuffle(paths)
    return paths


def itk_image(hu: np.ndarray, spacing=(2.5, 0.7, 0.7), origin=(0.0, 0.0, 0.0), direction=None):
    """An image as ITK (SimpleITK) holds one, to write as ITK writes files: ``hu[z, y, x]`` (x fastest), ``spacing``
    (z, y, x) in mm, ``origin`` in x, y, z order (LPS), ``direction`` the 3x3 matrix whose column a is the LPS direction
    of index axis a (identity: the canonical layout)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(hu)
    img.SetSpacing([float(v) for v in spacing[::-1]])
    img.SetOrigin([float(v) for v in origin])
    img.SetDirection([float(v) for v in np.asarray(np.eye(3) if direction is None else direction, float).ravel()])
    return img


def dose_report(path, study_uid, series_uid=None, sop_class="1.2.840.10008.5.1.4.1.1.7"):
    """A CT scanner's dose report as it is exported beside the slices: a Secondary Capture image of text, filed
    under modality CT in the study, with no position, pixel size, kernel or rescale."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = sop_class, generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.StudyInstanceUID, ds.SeriesInstanceUID = "CT", study_uid, series_uid or generate_uid()
    ds.SeriesNumber, ds.SeriesDescription, ds.ImageType = 999, "Dose Report", ["DERIVED", "SECONDARY", "OTHER"]
    text = np.zeros((128, 128), np.uint8)
    text[8::12, 10:110] = 255  # lines of "text"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 128, 128, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.InstanceNumber, ds.PixelData = 1, text.tobytes()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def round_field_of_view(h: int, w: int) -> np.ndarray:
    """True inside a scanner's round field of view on an h x w slice (the corners lie outside it)."""
    yy, xx = np.mgrid[:h, :w]
    return (yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2 <= (min(h, w) / 2 - 1) ** 2


def ellipse(shape, cy, cx, ry, rx):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def chest_over_abdomen():
    """HU [z, y, x] and the stomach's [y, x] mask. z from feet to head: 5 abdominal slices with a
    stomach bubble under the left lung, a slice of diaphragm, then 16 chest slices (5 mm, 1.5 mm pixels)."""
    chest = phantoms.chest_phantom((5.0, 1.5, 1.5), extent_mm=80, fov_mm=330, noise_hu=10, seed=3)
    belly = phantoms.chest_phantom((5.0, 1.5, 1.5), extent_mm=30, fov_mm=330, noise_hu=10, seed=4, abdomen=True)
    stomach = ellipse(belly.shape[1:], belly.shape[1] / 2, belly.shape[2] / 2 + 45, 20, 25)
    belly[:5][:, stomach] = -1000  # gas, under the left lung (x + 70 mm)
    return np.concatenate([belly, chest]), stomach
