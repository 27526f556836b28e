"""README.md's Python example runs as written, on a synthetic DICOM series in place of "study_folder/"."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from synth import write_series

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_the_readme_python_example_runs(tmp_path):
    from ctmodels.examples import breath_hold_studies

    block = re.search(r"## Python\n+```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    assert "study_folder/" in block
    vol = breath_hold_studies()["synthetic-inspiration"]
    write_series(tmp_path / "study", vol.voxels, spacing=vol.spacing)
    code = block.replace("study_folder/", str(tmp_path / "study"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("SeverityReport(") and lines[-1].split()[0] == "pass"
