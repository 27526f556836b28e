"""Library rules: no streamlit, no sys.exit, no print, no pickle loading in ctmodels/."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = sorted((ROOT / "ctmodels").glob("*.py"))


def test_library_never_imports_streamlit():
    code = "import sys, ctmodels, ctmodels.io, ctmodels.series, ctmodels.severity, ctmodels.lesion, " \
           "ctmodels.cli, ctmodels.hub; print('streamlit' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.stdout.strip() == "False", r.stderr
    for f in LIB:
        assert not re.search(r"^\s*(import|from)\s+streamlit", f.read_text(), re.M), f


def test_the_model_loaders_are_at_the_top_level_and_import_ctmodels_stays_light():
    """``from ctmodels import LesionSegmenter, BreathHoldChecker`` (as timm and smp export their models); ``import
    ctmodels`` alone loads no torch."""
    code = ("import sys, ctmodels; light = 'torch' not in sys.modules\n"
            "from ctmodels import BreathHoldChecker, LesionSegmenter\n"
            "import ctmodels.lesion, ctmodels.quality\n"
            "assert LesionSegmenter is ctmodels.lesion.LesionSegmenter\n"
            "assert BreathHoldChecker is ctmodels.quality.BreathHoldChecker\n"
            "assert {'LesionSegmenter', 'BreathHoldChecker', 'read_ct'} <= set(dir(ctmodels))\n"
            "try:\n    ctmodels.NoSuchThing\nexcept AttributeError as e:\n    print(light, e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == "True module 'ctmodels' has no attribute 'NoSuchThing'", r.stderr


def test_no_sys_exit_or_print_in_library():
    for f in LIB:
        if f.name in ("cli.py", "__main__.py"):
            continue
        text = f.read_text()
        assert "sys.exit(" not in text, f
        assert not re.search(r"^\s*print\(", text, re.M), f


def test_no_pickle_loading_anywhere():
    for f in list(ROOT.glob("ctmodels/*.py")) + list(ROOT.glob("app*.py")) + list(ROOT.glob("app_pages/*.py")):
        for line in f.read_text().splitlines():
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{f}: {line}"
            assert "pickle.load" not in line, f
            assert "allow_pickle=True" not in line, f


def test_readme_commands_are_what_ci_runs():
    """README's two commands: CI runs the same install and the same test command."""
    import re

    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme.split("## Two commands", 1)[1], re.S)[:2]
    install_and_run, test = blocks[0].strip(), blocks[1].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    install = install_and_run.split("&&")[0].strip()
    assert install.startswith("python3 -m pip install -r requirements.txt")
    assert re.search(re.escape(install) + r"(\s|$)", ci.replace(" -q", "")), "CI must run the README install"
    assert re.search(r"^\s*" + re.escape(test) + r"\s*$", ci, re.M), "CI must run the README test command"
    assert "streamlit run app.py" in install_and_run


def test_requirements_txt_is_pyprojects_dependencies_with_no_local_install():
    """A Hugging Face Space runs `pip install -r requirements.txt` before the repository is copied in, so a
    "-e ." (or any local path) there fails the Space's build; the file lists pyproject.toml's dependencies and
    its app extra instead, and must not drift from them."""
    tomllib = pytest.importorskip("tomllib")
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {str(Requirement(r)) for r in project["dependencies"] + project["optional-dependencies"]["app"]}
    lines = [ln.split("#")[0].strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    assert not [ln for ln in lines if ln.startswith(("-", ".", "/", "file:")) or "ctmodels" in ln], lines
    assert {str(Requirement(ln)) for ln in lines} == wanted
    assert len(lines) == len(wanted)


def test_space_front_matter_matches_the_project():
    """README.md's front matter is the Space's configuration: Streamlit SDK, app.py, a Streamlit version and a
    Python that requirements.txt and pyproject.toml accept (else the Space would install another Streamlit than
    the one it pins, or a Python the package refuses)."""
    import yaml
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    tomllib = pytest.importorskip("tomllib")
    meta = yaml.safe_load((ROOT / "README.md").read_text().split("---\n")[1])
    assert meta["sdk"] == "streamlit" and (ROOT / meta["app_file"]).is_file()
    pins = [Requirement(ln) for ln in (ROOT / "requirements.txt").read_text().splitlines()
            if ln.startswith("streamlit")]
    assert len(pins) == 1 and pins[0].specifier.contains(meta["sdk_version"])
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains(str(meta["python_version"]) + ".0")
