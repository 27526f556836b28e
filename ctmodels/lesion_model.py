"""The lesion network and the preprocessing settings that travel with its weights."""

from __future__ import annotations

from typing import Any, Dict

LABELS = ["background", "ground-glass opacity", "consolidation", "other lung"]
SHORT_LABELS = ["background", "ggo", "consolidation", "lung"]

# Settings saved next to the weights as preprocessing.json (timm habit: they travel with the model).
DEFAULT_PREPROCESSING: Dict[str, Any] = {
    "input_size": 256,  # the model sees every slice resized to this square
    "mean": 0.5,  # applied to 8-bit intensities scaled to [0, 1]
    "std": 0.25,
    # HU input is mapped to 8 bits with this lung window (W 1500 / L -600), i.e. [-1350, 150] HU,
    # the display window the 8-bit training slices were exported with.
    "hu_window": {"center": -600.0, "width": 1500.0},
    "labels": LABELS,
}


def build_lesion_unet():
    """UNet, EfficientNet-b0 encoder, 1 input channel, 4 classes; no pretrained download."""
    import segmentation_models_pytorch as smp

    return smp.Unet("efficientnet-b0", encoder_weights=None, in_channels=1, classes=4)


def load_lesion_unet(folder):
    """The UNet that ``folder/config.json`` describes (as segmentation_models_pytorch's ``save_pretrained`` writes
    it), with the tensors of ``folder/model.safetensors`` loaded strictly: every tensor by name and shape, none
    missing or left over. Built here rather than by smp's Hub loader, which fetches an encoder's pretrained weights
    from the network before loading (for a config that is not a UNet's, a default ResNet-34's), and silently leaves
    random values in tensors the file lacks. A folder that does not fit is a ``WeightsError`` saying what is wrong.
    """
    import json
    from pathlib import Path

    import segmentation_models_pytorch as smp
    from safetensors.torch import load_file

    from .errors import WeightsError

    folder = Path(folder)
    what = "expected a lesion model folder (config.json and model.safetensors, as weights/lesion-unet-effb0 holds)"
    cfg_path, weights = folder / "config.json", folder / "model.safetensors"
    for p in (cfg_path, weights):
        if not p.is_file():
            raise WeightsError(f"no {p.name}; {what}", folder)
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise WeightsError(f"not readable JSON ({type(exc).__name__}); {what}", cfg_path) from None
    if not isinstance(cfg, dict) or cfg.get("_model_class", "Unet") != "Unet" or "encoder_name" not in cfg:
        kind = (cfg.get("model_type") or cfg.get("_model_class")) if isinstance(cfg, dict) else None
        raise WeightsError(f"describes {kind or 'another model'}, not a UNet; {what}", cfg_path)
    kwargs = {k: v for k, v in cfg.items() if not k.startswith("_")}
    kwargs["encoder_weights"] = None  # model.safetensors holds every weight: nothing to fetch
    try:
        model = smp.Unet(**kwargs)
    except Exception as exc:  # an unknown encoder or argument: smp raises several types
        raise WeightsError(f"describes a UNet that segmentation-models-pytorch {smp.__version__} cannot build "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                           cfg_path) from None
    try:
        state = load_file(str(weights))
    except Exception as exc:  # a truncated or foreign file: safetensors raises its own error types
        raise WeightsError(f"not a readable safetensors file ({type(exc).__name__})", weights) from None
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    other = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or extra or other:
        raise WeightsError(f"does not fit config.json: {len(missing)} tensor(s) missing, {len(extra)} unexpected, "
                           f"{len(other)} of another shape (first: {(missing + extra + other)[0]})", weights)
    model.load_state_dict(state)
    return model
