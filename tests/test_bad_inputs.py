"""A corpus of broken and hostile inputs: each gets a typed, one-line error naming the file,
exit status 2 from the CLI, and nothing is written outside the output folder."""

import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from ctmodels import io
from ctmodels.cli import main
from ctmodels.errors import CTModelsError
from synth import chest_phantom, write_series


def _dicom_without_pixels(tmp_path):
    import pydicom

    p = write_series(tmp_path / "s", chest_phantom((1, 16, 16)))[0]
    ds = pydicom.dcmread(p)
    del ds.PixelData
    out = tmp_path / "nopix.dcm"
    ds.save_as(out)
    return out


def _rgb_secondary_capture(tmp_path):
    import pydicom
    from pydicom.uid import SecondaryCaptureImageStorage

    p = write_series(tmp_path / "s2", chest_phantom((1, 16, 16)))[0]
    ds = pydicom.dcmread(p)
    ds.Modality = "OT"
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.zeros((16, 16, 3), np.uint8).tobytes()
    out = tmp_path / "sc_rgb.dcm"
    ds.save_as(out)
    return out


CASES = {
    "one_pixel_png": lambda t: (Image.fromarray(np.zeros((1, 1), np.uint8)).save(t / "one.png"), t / "one.png")[1],
    "giant_png": lambda t: (Image.new("L", (10000, 10000)).save(t / "giant.png"), t / "giant.png")[1],
    "empty_npy": lambda t: (np.save(t / "e.npy", np.zeros((0, 4))), t / "e.npy")[1],
    "dicom_no_pixels": _dicom_without_pixels,
    "secondary_capture_rgb": _rgb_secondary_capture,
    "empty_file": lambda t: ((t / "z.nii.gz").write_bytes(b""), t / "z.nii.gz")[1],
    "garbage_nifti": lambda t: ((t / "g.nii").write_bytes(b"\x00" * 400), t / "g.nii")[1],
    "garbage_nrrd": lambda t: ((t / "g.nrrd").write_bytes(b"NRRD0004\ntype: what\n\n"), t / "g.nrrd")[1],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_corpus(tmp_path, capsys, case):
    target = CASES[case](tmp_path)
    before = set(os.listdir(tmp_path))
    with pytest.raises(CTModelsError) as e:
        io.read_ct(target)
    msg = str(e.value)
    assert "\n" not in msg and target.name in msg
    out = tmp_path / "out"
    assert main(["info", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert set(os.listdir(tmp_path)) == before
    assert not out.exists()


def test_non_utf8_names_in_a_folder_and_a_zip(tmp_path):
    hu = chest_phantom((3, 16, 16))
    d = tmp_path / "series"
    files = write_series(d, hu)
    raw = os.fsencode(str(d)) + b"/caf\xe9_\xff.dcm"  # not valid UTF-8
    os.rename(files[0], raw)
    assert np.array_equal(io.read_ct(d).voxels, hu)
    z = tmp_path / "names.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for i, f in enumerate(sorted(d.iterdir())):
            info = zipfile.ZipInfo(f"s\u00e9rie/\udcff{i}.dcm".encode("utf-8", "surrogateescape").decode("cp437"))
            zf.writestr(info, f.read_bytes())
    assert np.array_equal(io.read_ct(z).voxels, hu)


def test_mixed_series_with_one_broken_file(tmp_path):
    hu = chest_phantom((4, 16, 16))
    write_series(tmp_path, hu, kernel="LUNG")
    (tmp_path / "README.txt").write_text("not dicom")
    (tmp_path / "broken.dcm").write_bytes(b"DICM" * 10)
    vol = io.read_ct(tmp_path)
    assert np.array_equal(vol.voxels, hu)
