import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
ROOT = HERE.parent
SHARED_DATA = (ROOT.parent / "shared" / "data").resolve()


def shared(*parts) -> Path:
    """A path in ../shared/data; skips the test when the evaluation data is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"evaluation data not present: {p}")
    return p


def as_recorded(measured, key: str, tolerance: float = 0.0) -> None:
    """Check a figure the lesion model card states (its record's `behaviour`) against what the bundled weights give
    now. Re-measured for new weights: the message says what to write in the record."""
    import json

    from ctmodels.modelcard import measured_behaviour

    folder = ROOT / "weights" / "lesion-unet-effb0"
    stated = measured_behaviour(folder, json.loads((folder / "training.json").read_text())) or {}
    for part in key.split("."):
        stated = stated.get(part, {}) if isinstance(stated, dict) else {}
    if isinstance(measured, str):
        same = stated == measured
    else:
        same = isinstance(stated, (int, float)) and abs(measured - stated) <= tolerance
    assert same, (
        f"the model card states behaviour.{key} = {stated if stated != {} else 'nothing'}; the bundled weights give "
        f"{measured if isinstance(measured, str) else f'{measured:.3g}'}: "
        f"write it in weights/lesion-unet-effb0/training.json (`behaviour`, with the weights' model_sha256) and "
        f"write the card again")


def bench_script(name: str, folder: str = "bench"):
    """A script of the checkout's bench/ (or another) folder, imported as a module (bench/ and scripts/ are not
    packages)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def phantom():
    from synth import chest_phantom

    return chest_phantom()
