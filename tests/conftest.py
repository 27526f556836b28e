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


def bench_script(name: str):
    """A script of the checkout's bench/ folder, imported as a module (bench/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def phantom():
    from synth import chest_phantom

    return chest_phantom()
