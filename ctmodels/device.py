"""resolve_device: the one place that checks which compute devices exist."""

from __future__ import annotations

import logging

from .errors import DeviceError

log = logging.getLogger(__name__)


def resolve_device(spec: str = "auto"):
    """``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"`` -> ``torch.device``.

    ``auto`` picks CUDA, then MPS, then CPU. Asking for a device that is not there raises
    :class:`DeviceError`; there is no silent fallback.
    """
    import torch

    s = (spec or "auto").strip().lower()
    if s == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if s == "cpu":
        return torch.device("cpu")
    if s == "cuda" or s.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {spec!r} requested but no CUDA GPU is available; use --device cpu")
        if ":" in s:
            try:
                idx = int(s.split(":", 1)[1])
            except ValueError:
                raise DeviceError(f"device {spec!r}: expected cuda:N with N a GPU index") from None
            if not 0 <= idx < torch.cuda.device_count():
                raise DeviceError(f"device {spec!r}: only {torch.cuda.device_count()} GPU(s) present")
        return torch.device(s)
    if s == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError("device 'mps' requested but Apple MPS is not available; use --device cpu")
        return torch.device("mps")
    raise DeviceError(f"unknown device {spec!r}: expected auto, cpu, cuda, cuda:N or mps")
