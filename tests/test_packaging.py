"""pip install . in a fresh virtual environment; the wheel carries no weights; both models load
offline from a weights folder."""

import os
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = out.glob("ctmodels-*.whl")
    return whl


def test_wheel_has_code_and_registry_but_no_weights(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "ctmodels/registry.py" in names and "ctmodels/weights_sha256.json" in names
    assert not [n for n in names if n.endswith((".safetensors", ".pt", ".pth", ".bin", ".onnx"))]
    assert not [n for n in names if n.startswith(("weights/", "tests/", "app_pages/"))]
    size = wheel.stat().st_size
    print(f"\nwheel {wheel.name}: {size / 1024:.0f} KiB")
    assert size < 500 * 1024


def test_fresh_venv_loads_both_models_offline(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    # the heavy dependencies (torch, ...) come from this interpreter's site-packages: listed in a .pth file, as
    # system_site_packages alone gives only the base interpreter's when the tests run inside a virtual environment
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    r = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and Path(r.stdout.strip()).is_dir(), r.stderr[-2000:]
    Path(r.stdout.strip(), "parent-site-packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    code = (
        "import ctmodels, numpy as np\n"
        "from ctmodels.lesion import LesionSegmenter\n"
        "from ctmodels.quality import BreathHoldChecker\n"
        "assert 'site-packages' in ctmodels.__file__ and str(%r) in ctmodels.__file__, ctmodels.__file__\n"
        "seg = LesionSegmenter.from_pretrained(device='cpu')\n"
        "r = seg.predict(np.zeros((64, 64), np.uint8))\n"
        "BreathHoldChecker.from_pretrained()\n"
        "print('ok', r.labels.shape)\n" % str(env_dir))
    env = {**os.environ, "CTMODELS_WEIGHTS_DIR": str(ROOT / "weights"), "HF_HUB_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": ""}
    r = subprocess.run([str(py), "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "ok (64, 64)" in r.stdout, r.stderr[-2000:]
    # without a weights folder and offline: a clear error, not a traceback from deep inside
    env.pop("CTMODELS_WEIGHTS_DIR")
    r = subprocess.run([str(env_dir / "bin" / "ctmodels"), "download", "breath-hold-logreg"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "HF_HUB_OFFLINE" in r.stderr and "Traceback" not in r.stderr
