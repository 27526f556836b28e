"""Fuzzing read_ct with mutated DICOM, zip, NIfTI and NRRD bytes: only typed errors, in bounded time."""

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctmodels import io
from ctmodels.errors import CTModelsError
from synth import chest_phantom, itk_image, write_series


@pytest.fixture(scope="module")
def seed_bytes(tmp_path_factory):
    d = tmp_path_factory.mktemp("seed")
    p = write_series(d, chest_phantom((1, 24, 24)))[0]
    return p.read_bytes()


@pytest.fixture(scope="module")
def other_seeds(tmp_path_factory):
    """A zip of a 3-slice DICOM series, a NIfTI, an NRRD and a MetaImage volume, as bytes by suffix."""
    import zipfile

    import nrrd
    import SimpleITK as sitk

    d = tmp_path_factory.mktemp("seeds")
    hu = chest_phantom((3, 24, 24))
    with zipfile.ZipFile(d / "s.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for f in write_series(d / "series", hu):
            zf.write(f, "study/" + f.name)
    io.write_volume_nifti(hu, (2.5, 0.7, 0.7), d / "v.nii")
    nrrd.write(str(d / "v.nrrd"), hu)
    sitk.WriteImage(itk_image(hu, (2.5, 0.7, 0.7)), str(d / "v.mha"), True)  # compressed: the inflating path
    return {sfx: (d / name).read_bytes() for sfx, name in ((".zip", "s.zip"), (".nii", "v.nii"), (".nrrd", "v.nrrd"),
                                                             (".mha", "v.mha"))}


def _mutate(b: bytearray, data) -> bytearray:
    for _ in range(data.draw(st.integers(1, 8))):
        kind = data.draw(st.sampled_from(["flip", "truncate", "insert", "zero"]))
        pos = data.draw(st.integers(0, max(0, len(b) - 1)))
        if kind == "flip" and b:
            b[pos] ^= data.draw(st.integers(1, 255))
        elif kind == "truncate":
            del b[pos:]
        elif kind == "insert":
            b[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
        elif kind == "zero" and b:
            b[pos:pos + 8] = bytes(min(8, len(b) - pos))
    return b


def _volume_or_typed_error(p) -> None:
    t = time.perf_counter()
    try:
        vol = io.read_ct(p)
        assert vol.voxels.ndim == 3 and np.isfinite(vol.voxels.astype(float)).all() or vol.voxels.dtype.kind == "i"
    except CTModelsError as exc:
        assert "\n" not in str(exc) and p.name in str(exc)
    assert time.perf_counter() - t < 5.0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_dicom_gives_a_volume_or_a_typed_error(seed_bytes, tmp_path_factory, data):
    p = tmp_path_factory.mktemp("f") / "x.dcm"
    p.write_bytes(bytes(_mutate(bytearray(seed_bytes), data)))
    _volume_or_typed_error(p)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_zip_nifti_nrrd_or_metaimage_gives_a_volume_or_a_typed_error(other_seeds, tmp_path_factory, data):
    """Corrupt zips found this way were tracebacks before (see the corpus' zip cases)."""
    sfx = data.draw(st.sampled_from(sorted(other_seeds)))
    p = tmp_path_factory.mktemp("f") / f"x{sfx}"
    p.write_bytes(bytes(_mutate(bytearray(other_seeds[sfx]), data)))
    _volume_or_typed_error(p)
