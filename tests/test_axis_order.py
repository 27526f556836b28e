"""An array in [x, y, z] order (nibabel's get_fdata() of a scan) is said to be one where its shape shows it: read as
[z, y, x] it is cut into sagittal slices, and a transposed real scan was graded without a word."""

import logging

import numpy as np

from synth import chest_phantom
from ctmodels import io
from ctmodels.orientation import axis_order_note


def test_the_note_fires_for_a_scan_s_shape_in_x_y_z_order_only():
    assert "(512, 512, 120)" in axis_order_note((512, 512, 120))
    assert "512 slices of 512 x 120 pixels" in axis_order_note((512, 512, 120))
    assert "np.transpose(a, (2, 1, 0))" in axis_order_note((512, 512, 600))
    for shape in ((120, 512, 512), (512, 512, 512), (64, 64, 64), (16, 16, 3), (512, 512), (40, 64, 80)):
        assert axis_order_note(shape) is None, shape


def test_an_npy_scan_saved_in_x_y_z_order_is_read_with_the_note_logged(tmp_path, caplog):
    zyx = chest_phantom((40, 64, 64), seed=2)
    np.save(tmp_path / "zyx.npy", zyx)
    np.save(tmp_path / "xyz.npy", np.transpose(zyx, (2, 1, 0)))
    with caplog.at_level(logging.WARNING, logger="ctmodels.io"):
        assert io.read_ct(tmp_path / "zyx.npy").meta.warnings == [] and not caplog.records
        vol = io.read_ct(tmp_path / "xyz.npy")
    assert vol.shape == (64, 64, 40)
    assert vol.meta.warnings == [axis_order_note((64, 64, 40))]
    assert [r.getMessage() for r in caplog.records] == [f"xyz.npy: {axis_order_note((64, 64, 40))}"]


def test_predict_logs_the_note_for_an_array_in_x_y_z_order(caplog):
    from ctmodels.lesion import LesionSegmenter

    seg = LesionSegmenter.from_pretrained(device="cpu")
    zyx = chest_phantom((4, 64, 64), seed=3)
    with caplog.at_level(logging.WARNING, logger="ctmodels"):
        assert seg.predict(zyx).warnings == []
        assert not [r for r in caplog.records if "[x, y, z]" in r.getMessage()]
        res = seg.predict(np.transpose(chest_phantom((40, 64, 64), seed=3), (2, 1, 0)))
    assert res.warnings == [axis_order_note((64, 64, 40))]
    assert [r.getMessage() for r in caplog.records if "[x, y, z]" in r.getMessage()] == res.warnings


def test_predict_carries_a_volume_s_reading_warnings_without_logging_them_again(tmp_path, caplog):
    from ctmodels.lesion import LesionSegmenter

    np.save(tmp_path / "xyz.npy", np.transpose(chest_phantom((40, 64, 64), seed=4), (2, 1, 0)))
    vol = io.read_ct(tmp_path / "xyz.npy")
    assert vol.meta.warnings
    caplog.clear()  # the reader logged them
    with caplog.at_level(logging.WARNING, logger="ctmodels"):
        res = LesionSegmenter.from_pretrained(device="cpu").predict(vol)
    assert res.warnings == vol.meta.warnings and not caplog.records


def test_the_breath_hold_result_carries_the_note_for_an_array_in_x_y_z_order():
    from ctmodels.quality import BreathHoldChecker

    res = BreathHoldChecker.from_pretrained().predict(np.transpose(chest_phantom((40, 64, 64), seed=5), (2, 1, 0)))
    assert res.warnings == [axis_order_note((64, 64, 40))] and res.as_dict()["warnings"] == res.warnings
    assert BreathHoldChecker.from_pretrained().predict(chest_phantom((40, 64, 64), seed=5)).warnings == []
