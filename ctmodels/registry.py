"""Torch-free registry of the models ctmodels ships. The CLI, the app and the docs read it.

Each entry names the Hugging Face Hub repository and the pinned revision its weights are
fetched at, and the SHA-256 of every file, checked on every load wherever the files come from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

from .errors import WeightsNotFoundError

_HASHES = Path(__file__).with_name("weights_sha256.json")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    task: str
    repo_id: str
    revision: str
    labels: List[str]
    licence: str
    description: str
    files: Dict[str, str] = field(default_factory=dict)  # file name -> sha256


def _hashes() -> Dict[str, Dict[str, str]]:
    if _HASHES.exists():
        return json.loads(_HASHES.read_text())
    return {}


LESION = "lesion-unet-effb0"  # the registry's names, for the code that means one model
BREATH_HOLD = "breath-hold-logreg"

_BASE = [
    dict(
        name=LESION,
        task="lesion-segmentation",
        repo_id="ctmodels/lesion-unet-effb0",
        revision="main",
        labels=["background", "ground-glass opacity", "consolidation", "other lung"],
        licence="CC BY-NC-SA 4.0 (weights; trained on non-commercial COVID-19 CT data)",
        description="UNet (EfficientNet-b0 encoder) labelling axial chest CT slices: GGO, "
                    "consolidation, other lung, background. Research use, not diagnosis.",
    ),
    dict(
        name=BREATH_HOLD,
        task="breath-hold-quality",
        repo_id="ctmodels/breath-hold-logreg",
        revision="main",
        labels=["pass", "fail"],
        licence="Apache-2.0 (trained on synthetic phantoms and Apache-2.0 / CIP-licensed inspiration scans)",
        description="Logistic model on trachea shape features (circularity, AP/transverse ratio, "
                    "solidity, posterior-wall bowing): P(failed breath hold). Research use, not diagnosis.",
    ),
]


def all_models() -> List[ModelEntry]:
    h = _hashes()
    # a push with --pin records the repository and the commit it made
    return [ModelEntry(files=dict(h.get(b["name"], {}).get("files", {})),
                       **{**b, "revision": h.get(b["name"], {}).get("revision", b["revision"]),
                          "repo_id": h.get(b["name"], {}).get("repo_id", b["repo_id"])})
            for b in _BASE]


def names() -> List[str]:
    return [m.name for m in all_models()]


def get(name: str) -> ModelEntry:
    for m in all_models():
        if m.name == name:
            return m
    raise WeightsNotFoundError(f"unknown model {name!r}; known models: {', '.join(names())}")
