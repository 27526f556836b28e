"""The bad-input corpus of issue 8, built in code: each builder writes one hostile or broken input
into a folder and returns its path. Used by the read_ct / CLI tests and by the app tests."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from synth import chest_phantom, write_series


def _one_dicom(t: Path, **kw) -> Path:
    return write_series(t / ".src", chest_phantom((1, 16, 16)), **kw)[0]


def _dicom_variant(t: Path, name: str, edit) -> Path:
    import pydicom

    ds = pydicom.dcmread(_one_dicom(t))
    edit(ds)
    out = t / name
    ds.save_as(out)
    return out


def _no_pixels(ds):
    del ds.PixelData


def _rgb_secondary_capture(ds):
    from pydicom.uid import SecondaryCaptureImageStorage

    ds.Modality = "OT"
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.zeros((16, 16, 3), np.uint8).tobytes()


def _noise_pixels(ds):
    """Random stored values: a well-formed CT file whose image is noise."""
    dtype = np.int16 if int(ds.PixelRepresentation) == 1 else np.uint16
    ds.PixelData = np.random.default_rng(0).integers(0, 2000, (ds.Rows, ds.Columns)).astype(dtype).tobytes()


def _modality(m):
    def edit(ds):
        ds.Modality = m
    return edit


def _head(ds):
    """A CT whose header says it is of the head (the lesion model called a real head slice's sinuses lung)."""
    ds.BodyPartExamined = "HEAD"


def _truncated(t: Path) -> Path:
    out = t / "truncated.dcm"
    out.write_bytes(_one_dicom(t).read_bytes()[:300])
    return out


def _zip(t: Path, name: str, members) -> Path:
    out = t / name
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            zf.writestr(info, data)
    return out


def _forged_zip(t: Path, name: str, record: bytes, offset: int, fmt: str, value) -> Path:
    """A one-member zip with one field forged: ``offset`` bytes into its ``record`` (the central directory entry
    PK\\1\\2, the end record PK\\5\\6); ``value`` may be a function of the field's value."""
    out = _zip(t, name, [("a.dcm", b"x" * 100)])
    b = bytearray(out.read_bytes())
    at = b.index(record) + offset
    n = struct.calcsize(fmt)
    b[at:at + n] = struct.pack(fmt, value(struct.unpack(fmt, b[at:at + n])[0]) if callable(value) else value)
    out.write_bytes(bytes(b))
    return out


def _symlink_member():
    info = zipfile.ZipInfo("link.dcm")
    info.external_attr = 0o120777 << 16
    return info


def _save_png(t: Path, name: str, arr: np.ndarray) -> Path:
    Image.fromarray(arr).save(t / name)
    return t / name


def _npy(t: Path, name: str, arr: np.ndarray) -> Path:
    np.save(t / name, arr)
    return t / name


def _label_map(t: Path, name: str) -> Path:
    """A lung mask of a phantom with its GGO and consolidation labels (0-3, as segment writes them), passed where
    a CT is expected."""
    from ctmodels import io

    hu = chest_phantom((6, 48, 48))
    labels = np.where(hu < -500, 3, 0).astype(np.uint8)
    labels[:, 20:26, 10:16] = np.where(labels[:, 20:26, 10:16] == 3, 1, 0)
    labels[:, 30:34, 10:14] = 2
    if name.endswith(".nrrd"):
        import nrrd

        nrrd.write(str(t / name), np.transpose(labels, (2, 1, 0)).astype(np.uint16))
        return t / name
    return io.write_mask_nifti(labels, (2.0, 1.0, 1.0), t / name)


def _raw_nifti(t: Path) -> Path:
    """CT as stored, without its rescale to HU (air at 0 rather than -1000), as some converters write it."""
    import nibabel as nib

    raw = (chest_phantom((6, 48, 48)).astype(np.int32) + 1024).clip(0).astype(np.uint16)
    nib.save(nib.Nifti1Image(np.transpose(raw, (2, 1, 0)), np.diag([-1.0, -1.0, 2.0, 1.0])), t / "raw.nii.gz")
    return t / "raw.nii.gz"


def _nrrd_elsewhere(t: Path) -> Path:
    """An NRRD header whose data file lies outside its folder (here a plausible chest volume one folder over):
    pynrrd read any file a header named, so an uploaded header could show the server's files as voxels."""
    other = t / "other"
    other.mkdir()
    (other / "secret.raw").write_bytes(chest_phantom((4, 48, 48)).astype("<i2").tobytes())
    head = t / "up"
    head.mkdir()
    return _write(head, "elsewhere.nrrd", b"NRRD0004\ntype: int16\ndimension: 3\nsizes: 48 48 4\nencoding: raw\n"
                  b"endian: little\ndata file: ../other/secret.raw\n\n")


def _nrrd_bomb(t: Path) -> Path:
    """8x8x2 voxels by the header over 64 MB of gzip-compressed zeros (a 65 KB file)."""
    import gzip

    return _write(t, "bomb.nrrd", b"NRRD0004\ntype: int16\ndimension: 3\nsizes: 8 8 2\nencoding: gzip\n"
                  b"endian: little\n\n" + gzip.compress(bytes(64 << 20), compresslevel=9))


def _write(t: Path, name: str, data: bytes) -> Path:
    (t / name).write_bytes(data)
    return t / name


CASES = {
    "truncated_dicom": _truncated,
    "dicom_no_pixels": lambda t: _dicom_variant(t, "nopix.dcm", _no_pixels),
    "mr_dicom": lambda t: _dicom_variant(t, "mr.dcm", _modality("MR")),
    "cr_dicom": lambda t: _dicom_variant(t, "cr.dcm", _modality("CR")),
    "us_dicom": lambda t: _dicom_variant(t, "us.dcm", _modality("US")),
    "secondary_capture_rgb": lambda t: _dicom_variant(t, "sc_rgb.dcm", _rgb_secondary_capture),
    "head_ct_dicom": lambda t: _dicom_variant(t, "head.dcm", _head),
    "noise_png": lambda t: _save_png(t, "noise.png", np.random.default_rng(0).integers(0, 256, (256, 256), np.uint8)),
    "noise_npy_hu": lambda t: _npy(t, "noise.npy", np.random.default_rng(0).integers(-1000, 1000, (4, 64, 64),
                                                                                     np.int16)),
    "noise_dicom": lambda t: _dicom_variant(t, "noise.dcm", _noise_pixels),
    "one_pixel_png": lambda t: _save_png(t, "one.png", np.zeros((1, 1), np.uint8)),
    "giant_png": lambda t: (Image.new("L", (10000, 10000)).save(t / "giant.png"), t / "giant.png")[1],
    # so large that Pillow refuses to open it as a possible decompression bomb (before: "not a readable image")
    "bomb_png": lambda t: (Image.new("L", (14000, 14000)).save(t / "bomb.png"), t / "bomb.png")[1],
    "png_16bit": lambda t: _save_png(t, "deep.png", (np.arange(256, dtype=np.uint16) * 200).reshape(16, 16)),
    "nan_npy": lambda t: _npy(t, "nan.npy", np.full((4, 16, 16), np.nan, np.float32)),
    "empty_npy": lambda t: _npy(t, "e.npy", np.zeros((0, 4))),
    "empty_file": lambda t: _write(t, "z.nii.gz", b""),
    "garbage_nifti": lambda t: _write(t, "g.nii", b"\x00" * 400),
    "garbage_nrrd": lambda t: _write(t, "g.nrrd", b"NRRD0004\ntype: what\n\n"),
    "nrrd_data_file_elsewhere": _nrrd_elsewhere,
    "nrrd_gzip_bomb": _nrrd_bomb,
    "corrupt_zip": lambda t: _write(t, "x.zip", b"PK\x03\x04garbage"),
    "zip_bomb": lambda t: _zip(t, "bomb.zip", [("zeros.dcm", b"\0" * (20 * 1024 * 1024))]),
    "zip_dotdot": lambda t: _zip(t, "dotdot.zip", [("../evil.dcm", b"x" * 10)]),
    "zip_absolute": lambda t: _zip(t, "absolute.zip", [("/abs/evil.dcm", b"x" * 10)]),
    "zip_symlink": lambda t: _zip(t, "link.zip", [(_symlink_member(), "/etc/passwd")]),
    "zip_empty": lambda t: _zip(t, "nothing.zip", []),
    # found by fuzzing, each an untyped error from zipfile before: a member without a name, a "version needed"
    # zipfile does not read, a central directory said to start past where it does (a member then lies before
    # the file's start)
    "zip_nameless_member": lambda t: _zip(t, "nameless.zip", [(zipfile.ZipInfo(""), b"x" * 10)]),
    "zip_future_version": lambda t: _forged_zip(t, "version.zip", b"PK\x01\x02", 6, "<H", 124),
    "zip_before_its_start": lambda t: _forged_zip(t, "offset.zip", b"PK\x05\x06", 16, "<I", lambda v: v + 1000),
    "mask_nifti": lambda t: _label_map(t, "ct.mask.nii.gz"),
    "label_map_nrrd": lambda t: _label_map(t, "lm.nrrd"),
    "raw_values_nifti": _raw_nifti,
    "probabilities_npy": lambda t: _npy(t, "p.npy", (chest_phantom((4, 48, 48)) > -500).astype(np.float32) * 0.9
                                        + np.random.default_rng(0).random((4, 48, 48), np.float32) * 0.1),
}


def build(case: str, folder: Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return CASES[case](folder)
