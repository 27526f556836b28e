"""Fuzzing read_ct with mutated DICOM bytes: only typed errors, in bounded time."""

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctmodels import io
from ctmodels.errors import CTModelsError
from synth import chest_phantom, write_series


@pytest.fixture(scope="module")
def seed_bytes(tmp_path_factory):
    d = tmp_path_factory.mktemp("seed")
    p = write_series(d, chest_phantom((1, 24, 24)))[0]
    return p.read_bytes()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_dicom_gives_a_volume_or_a_typed_error(seed_bytes, tmp_path_factory, data):
    b = bytearray(seed_bytes)
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
    p = tmp_path_factory.mktemp("f") / "x.dcm"
    p.write_bytes(bytes(b))
    t = time.perf_counter()
    try:
        vol = io.read_ct(p)
        assert vol.voxels.ndim == 3 and np.isfinite(vol.voxels.astype(float)).all() or vol.voxels.dtype.kind == "i"
    except CTModelsError as exc:
        assert "\n" not in str(exc) and "x.dcm" in str(exc)
    assert time.perf_counter() - t < 5.0
