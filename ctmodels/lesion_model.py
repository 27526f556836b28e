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
