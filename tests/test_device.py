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
    from ctmodels.lesion import LesionSegmenter

    x = (np.random.default_rng(0).random((4, 256, 256)) * 255).astype(np.uint8)
    full = LesionSegmenter.from_pretrained(device="cuda", half=False).predict(x)
    half = LesionSegmenter.from_pretrained(device="cuda", half=True).predict(x)
    assert (full.labels == half.labels).mean() > 0.995
