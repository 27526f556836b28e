"""resolve_device: no silent fallback; half precision on GPU keeps the outputs (GPU only)."""

import numpy as np
import pytest
import torch

from ctmodels.device import resolve_device
from ctmodels.errors import DeviceError


def test_cpu_and_auto(monkeypatch):
    assert resolve_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        resolve_device("cuda:1")
    with pytest.raises(DeviceError, match="not available"):
        resolve_device("mps")
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("tpu")


def test_cli_cuda_without_gpu_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    from PIL import Image

    from ctmodels.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "a.png")
    assert main(["segment", str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no CUDA GPU" in err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_half_precision_on_gpu_matches_fp32():
    """fp16 (the GPU default) keeps the labels and the involvement of fp32 on a CT-like study.
    The same comparison on the model's held-out slices is in bench/gpu_check.py (needs ../shared)."""
    from ctmodels import examples
    from ctmodels.lesion import LesionSegmenter
    from ctmodels.pipeline import segment_study

    vol = examples.lesion_volume(n_slices=8)
    full_seg = LesionSegmenter.from_pretrained(device="cuda", half=False)
    half_seg = LesionSegmenter.from_pretrained(device="cuda")
    assert half_seg.half and not full_seg.half
    full, half = segment_study(full_seg, vol), segment_study(half_seg, vol)
    assert (full.lesions.labels == half.lesions.labels).mean() > 0.995
    assert (full.lesions.labels > 0).any() and (full.lesions.labels == 1).any()  # lung and lesions present
    assert abs(full.report.involved_pct - half.report.involved_pct) < 0.5
    assert full.report.grade == half.report.grade
    # the counts computed on the GPU equal a host-side count of the returned labels
    ref = np.stack([np.bincount(s.ravel(), minlength=4) for s in half.lesions.labels])
    assert (half.lesions.pixel_counts == ref).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_body_mask_and_air_anchor_on_gpu_match_the_cpu():
    _anchor_on_device("cuda")


def test_body_mask_and_air_anchor_on_cpu_torch_match_the_default_cpu_path():
    """The same check between the CPU's two paths (torch, and ONNX Runtime where installed), so that the
    comparison itself is known to hold where no GPU is."""
    _anchor_on_device("cpu")


def _anchor_on_device(device):
    """The body and air masks are made on the host and applied on the device: a random network (which
    labels the abdomen) gives the same labels there as on the CPU, with the stomach dropped on both."""
    from synth import chest_over_abdomen

    from ctmodels.lesion import LesionSegmenter
    from ctmodels.lesion_model import build_lesion_unet
    from ctmodels.lung_air import air_masks, unanchored
    from ctmodels.types import CTVolume, VolumeMeta

    hu, _ = chest_over_abdomen()
    vol = CTVolume(hu, (5.0, 1.5, 1.5), VolumeMeta(units="HU"))

    def seg(dev, backend):
        torch.manual_seed(0)
        return LesionSegmenter(build_lesion_unet(), device=dev, backend=backend)

    ref = seg("cpu", "auto").predict(vol, keep_probabilities=True, batch_size=8)
    dev = seg(device, "torch")
    got = dev.predict(vol, keep_probabilities=True, batch_size=8)
    free = dev.predict(vol, air_anchor=False, batch_size=8)
    dropped = (free.labels > 0) & (got.labels == 0)
    assert dropped[:6].sum() > 1000  # the abdomen's labels went
    lung, other = air_masks(hu)
    assert not unanchored(got.labels, lung, other).any()
    assert (ref.labels == got.labels).mean() > 0.98
    counts = np.stack([np.bincount(s.ravel(), minlength=4) for s in got.labels])
    assert (got.pixel_counts == counts).all()
    assert np.all(got.probabilities[:, 0][dropped] == 1)
    np.testing.assert_allclose(got.soft_counts, ref.soft_counts, rtol=0.05, atol=100)
