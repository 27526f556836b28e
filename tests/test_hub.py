"""Weights resolution: local folders, the HF cache and a Hub served on 127.0.0.1 (HF_ENDPOINT),
with SHA-256 checks, one re-download on mismatch, and offline errors that say what to do."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ctmodels import hub, registry
from ctmodels.errors import WeightsChecksumError
from hubserver import FakeHub

ROOT = Path(__file__).resolve().parents[1]
NAME = "breath-hold-logreg"
REV = "0123456789abcdef0123456789abcdef01234567"  # a pinned commit


def _resolve(tmp_path, endpoint, offline=False, revision=REV):
    """Resolve in a fresh interpreter (huggingface_hub reads HF_ENDPOINT / HF_HUB_OFFLINE at import)."""
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf"),
           "CTMODELS_WEIGHTS_DIR": str(tmp_path / "empty"), "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_HUB_OFFLINE": "1" if offline else "0", "PYTHONPATH": str(ROOT)}
    code = ("import json, sys\nfrom ctmodels.hub import resolve_model_dir\nfrom ctmodels.errors import CTModelsError\n"
            "from ctmodels.quality import BreathHoldChecker\n"
            f"try:\n    d = resolve_model_dir({NAME!r}, revision={revision!r})\n"
            "    BreathHoldChecker.from_pretrained(str(d))\n"
            "    print(json.dumps({'dir': str(d)}))\n"
            "except CTModelsError as e:\n    print(json.dumps({'error': type(e).__name__, 'msg': str(e)}))\n")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture
def served():
    with FakeHub() as fh:
        entry = registry.get(NAME)
        fh.add_folder(entry.repo_id, REV, ROOT / "weights" / NAME)
        yield fh, entry


def test_download_verify_then_offline_from_cache(tmp_path, served):
    fh, entry = served
    out = _resolve(tmp_path, fh.url)
    assert "dir" in out, out
    d = Path(out["dir"])
    assert str(tmp_path / "hf") in str(d) and REV in str(d)
    for f, digest in entry.files.items():
        assert hub.sha256_file(d / f) == digest
    n = len(fh.requests)
    # offline, from the cache, no request
    out2 = _resolve(tmp_path, fh.url, offline=True)
    assert out2["dir"] == out["dir"] and len(fh.requests) == n


def test_corrupted_download_is_fetched_again_once(tmp_path, served):
    fh, _ = served
    fh.corrupt_times["model.safetensors"] = 1
    out = _resolve(tmp_path, fh.url)
    assert "dir" in out, out
    gets = [p for m, p in fh.requests if m == "GET" and p.endswith("model.safetensors")]
    assert len(gets) == 2


def test_always_corrupted_file_raises_checksum_error_naming_it(tmp_path, served):
    fh, _ = served
    fh.corrupt_times["model.safetensors"] = 10
    out = _resolve(tmp_path, fh.url)
    assert out["error"] == "WeightsChecksumError" and "model.safetensors" in out["msg"]


def test_missing_file_and_unknown_revision(tmp_path, served):
    fh, entry = served
    fh.add_folder(entry.repo_id, REV, ROOT / "weights" / NAME, skip={"model.safetensors"})
    out = _resolve(tmp_path, fh.url)
    assert out["error"] == "WeightsNotFoundError" and "model.safetensors" in out["msg"]
    out = _resolve(tmp_path / "b", fh.url, revision="f" * 40)
    assert out["error"] == "WeightsNotFoundError"


def test_offline_with_nothing_cached_says_how_to_get_weights(tmp_path):
    out = _resolve(tmp_path, "http://127.0.0.1:9", offline=True)
    assert out["error"] == "WeightsNotFoundError"
    assert "HF_HUB_OFFLINE" in out["msg"] and "ctmodels download" in out["msg"] and "weights/" in out["msg"]


def test_local_folder_with_a_tampered_file_is_refused(tmp_path):
    import shutil

    d = tmp_path / NAME
    shutil.copytree(ROOT / "weights" / NAME, d)
    (d / "config.json").write_text((d / "config.json").read_text() + " ")
    with pytest.raises(WeightsChecksumError, match="config.json"):
        hub.resolve_model_dir(d)


def test_a_model_of_one_s_own_named_as_a_registered_one_is_told_to_rename(tmp_path):
    """A breath-hold model fine-tuned into runs/breath-hold-logreg was refused with 'README.md does not match the
    SHA-256 recorded for breath-hold-logreg' and nothing more; the folder's name made it be checked as the bundled
    model. The check stays (a copy of a bundled model is verified); the line now says why and what to do, and the
    same files under another name load."""
    import shutil

    from ctmodels.quality import BreathHoldChecker

    model = BreathHoldChecker.from_pretrained().model
    model.weight = model.weight * 1.5
    model.save_pretrained(tmp_path / "breath-hold-logreg")
    with pytest.raises(WeightsChecksumError, match="a folder named as a registered model is checked as that model; "
                                                   "for a model of your own, name its folder otherwise"):
        BreathHoldChecker.from_pretrained(tmp_path / "breath-hold-logreg")
    shutil.copytree(tmp_path / "breath-hold-logreg", tmp_path / "mine")
    assert BreathHoldChecker.from_pretrained(tmp_path / "mine").model.weight == pytest.approx(model.weight)


def test_registry_is_torch_free_and_pins_every_bundled_file():
    r = subprocess.run([sys.executable, "-c", "import sys, ctmodels.registry as r; r.all_models(); "
                        "print('torch' in sys.modules)"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.stdout.strip() == "False"
    for e in registry.all_models():
        bundled = {p.name for p in (ROOT / "weights" / e.name).iterdir() if p.is_file()}
        assert set(e.files) == bundled, e.name
        for f, digest in e.files.items():
            assert hub.sha256_file(ROOT / "weights" / e.name / f) == digest


def test_breath_hold_model_hub_mixin_round_trip(tmp_path, served):
    """LogisticShapeModel is a huggingface_hub.ModelHubMixin: save_pretrained -> from_pretrained
    (folder, and a repo on the local Hub at a pinned revision) give the same model."""
    import numpy as np
    from huggingface_hub import ModelHubMixin

    from ctmodels.quality import LogisticShapeModel

    fh, entry = served
    ref = LogisticShapeModel.load(ROOT / "weights" / NAME)
    assert isinstance(ref, ModelHubMixin)
    out = tmp_path / "saved"
    ref.save_pretrained(out, {"note": "round trip"})
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["features"] == ref.features and cfg["note"] == "round trip"
    X = np.random.default_rng(0).normal(size=(16, len(ref.features)))
    again = LogisticShapeModel.from_pretrained(out)
    assert np.allclose(again.predict_proba(X), ref.predict_proba(X))
    code = ("import json, sys, numpy as np\nfrom ctmodels.quality import LogisticShapeModel\n"
            f"m = LogisticShapeModel.from_pretrained({entry.repo_id!r}, revision={REV!r})\n"
            "X = np.random.default_rng(0).normal(size=(16, len(m.features)))\n"
            "print(json.dumps(m.predict_proba(X).tolist()))\n")
    env = {**os.environ, "HF_ENDPOINT": fh.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0",
           "HF_HUB_DISABLE_TELEMETRY": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert np.allclose(json.loads(r.stdout.strip().splitlines()[-1]), ref.predict_proba(X))


def test_push_pin_then_download_at_the_pinned_commit(tmp_path):
    """ctmodels push --pin against the local Hub: one commit with the registered files; the registry
    then names that repo and commit, and a fresh machine downloads and verifies exactly those bytes."""
    import shutil

    hashes = tmp_path / "weights_sha256.json"
    shutil.copy(registry._HASHES, hashes)
    with FakeHub() as fh:
        env = {**os.environ, "HF_ENDPOINT": fh.url, "HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": "hf_localtest",
               "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "0", "PYTHONPATH": str(ROOT)}
        code = ("import sys\nfrom pathlib import Path\nfrom ctmodels import registry\n"
                f"registry._HASHES = Path({str(hashes)!r})\n"
                "from ctmodels.cli import main\n"
                f"sys.exit(main(['push', {NAME!r}, '--repo-id', 'someone/breath-hold', '--pin']))\n")
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        pinned = json.loads(hashes.read_text())[NAME]
        commit = pinned["revision"]
        assert pinned["repo_id"] == "someone/breath-hold" and len(commit) == 40
        assert fh.refs["someone/breath-hold"]["main"] == commit
        stored = fh.repos["someone/breath-hold"][commit]
        assert set(stored) == set(registry.get(NAME).files)  # only the registered files
        assert fh.tokens_seen and all(t == "Bearer hf_localtest" for t in fh.tokens_seen)
        # a fresh machine: no bundled weights, empty cache, registry with the pin
        code = ("import json\nfrom pathlib import Path\nfrom ctmodels import registry\n"
                f"registry._HASHES = Path({str(hashes)!r})\n"
                "from ctmodels.hub import resolve_model_dir\n"
                f"print(json.dumps({{'dir': str(resolve_model_dir({NAME!r}))}}))\n")
        env2 = {**env, "CTMODELS_WEIGHTS_DIR": str(tmp_path / "empty"), "HF_HOME": str(tmp_path / "hf2")}
        r = subprocess.run([sys.executable, "-c", code], env=env2, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        d = Path(json.loads(r.stdout.strip().splitlines()[-1])["dir"])
        assert commit in str(d)
        for f, digest in registry.get(NAME).files.items():
            assert hub.sha256_file(d / f) == digest


def _folder(tmp_path, name, config_from=None, weights_from=None, weights_bytes=None):
    import shutil

    root = Path(__file__).resolve().parents[1] / "weights"
    f = tmp_path / name
    f.mkdir()
    if config_from:
        shutil.copy(root / config_from / "config.json", f / "config.json")
    if weights_from:
        shutil.copy(root / weights_from / "model.safetensors", f / "model.safetensors")
    if weights_bytes is not None:
        (f / "model.safetensors").write_bytes(weights_bytes)
    return f


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test at once (the old loader retried the Hub for 31 s, then raised)."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("a weights folder was loaded over the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("config_from, weights_from, weights_bytes, said", [
    ("lesion-unet-effb0", "breath-hold-logreg", None,
     "model.safetensors: does not fit config.json: 420 tensor(s) missing, 4 unexpected"),
    (None, "lesion-unet-effb0", None, "no config.json; expected a lesion model folder"),
    ("breath-hold-logreg", "lesion-unet-effb0", None, "config.json: describes logistic-shape, not a UNet"),
    ("lesion-unet-effb0", None, b"\x08\x00\x00\x00\x00\x00\x00\x00{}", "not a readable safetensors file"),
    ("lesion-unet-effb0", None, None, "no model.safetensors; expected a lesion model folder"),
])
def test_a_lesion_model_folder_that_does_not_fit_is_one_line_not_random_weights(
        tmp_path, no_network, config_from, weights_from, weights_bytes, said):
    """A folder whose model.safetensors did not fit its config.json loaded anyway (smp's loader is not strict):
    the tensors it lacked kept random values, and `segment --model` graded a phantom CT-4 from them. A folder
    without a UNet's config.json made smp build its default ResNet-34 and fetch ImageNet weights from the Hub
    (31 s of retries offline, then a message about the network). Each is now a WeightsError saying what is wrong,
    with no network."""
    from ctmodels.errors import WeightsError
    from ctmodels.lesion import LesionSegmenter

    folder = _folder(tmp_path, "m", config_from, weights_from, weights_bytes)
    with pytest.raises(WeightsError, match=f"^{re.escape(str(folder))}.*{re.escape(said)}"):
        LesionSegmenter.from_pretrained(folder, device="cpu")


def test_the_bundled_lesion_weights_load_whole_without_the_network(no_network):
    """Every tensor of the bundled file is in the model (strict), and nothing is fetched."""
    import torch
    from safetensors.torch import load_file

    from ctmodels.lesion import LesionSegmenter

    seg = LesionSegmenter.from_pretrained(device="cpu")
    saved = load_file(str(hub.weights_root() / "lesion-unet-effb0" / "model.safetensors"))
    own = seg.model.state_dict()
    assert set(own) == set(saved) and all(torch.equal(own[k].cpu(), saved[k]) for k in saved)


@pytest.mark.parametrize("config_from, weights_from, said", [
    ("lesion-unet-effb0", "lesion-unet-effb0", "config.json: describes Unet, not the breath-hold model"),
    ("breath-hold-logreg", "lesion-unet-effb0", "model.safetensors: has no weight, bias, mean, std tensor"),
])
def test_a_breath_hold_model_folder_that_does_not_fit_is_one_line(tmp_path, config_from, weights_from, said):
    """The lesion model's folder given to check-breath-hold --model was an internal error (KeyError: 'weight')."""
    from ctmodels.errors import WeightsError
    from ctmodels.quality import BreathHoldChecker

    folder = _folder(tmp_path, "m", config_from, weights_from)
    with pytest.raises(WeightsError, match=re.escape(said)):
        BreathHoldChecker.from_pretrained(folder)


def _run(tmp_path, endpoint, code, offline=False):
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_HUB_OFFLINE": "1" if offline else "0", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_a_hub_repository_of_one_s_own_loads_at_a_commit(tmp_path):
    """A researcher's own weights on the Hub (pushed with ctmodels push, or fine-tuned) could not be loaded:
    from_pretrained("user/repo") was "unknown model". It loads at a commit (revision= or user/repo@COMMIT), which
    fixes its files since no hashes are recorded for it; the lesion model gives the bundled model's labels from
    the same files, the breath-hold model loads from a repository without README.md, the cache serves it offline,
    and a branch or no revision is one line saying to give the commit."""
    code = textwrap.dedent(f"""
        import json
        import numpy as np
        from ctmodels import BreathHoldChecker, LesionSegmenter
        from ctmodels.errors import CTModelsError
        x = (np.arange(96 * 96).reshape(96, 96) % 251).astype(np.uint8)
        out = {{}}
        try:
            own = LesionSegmenter.from_pretrained("someone/my-lesion@{REV}", device="cpu")
            ref = LesionSegmenter.from_pretrained(device="cpu")
            out["same"] = bool(np.array_equal(own.predict(x).labels, ref.predict(x).labels))
            qa = BreathHoldChecker.from_pretrained("someone/my-qa", revision="{REV}")
            out["qa"] = qa.model.config.get("model_type")
        except CTModelsError as e:
            out["error"] = str(e)
        for args in (("someone/my-lesion",), ("someone/my-lesion@main",)):
            try:
                LesionSegmenter.from_pretrained(*args)
            except CTModelsError as e:
                out.setdefault("refused", []).append(str(e))
        print(json.dumps(out))
    """)
    with FakeHub() as fh:
        fh.add_folder("someone/my-lesion", REV, ROOT / "weights" / "lesion-unet-effb0")
        fh.add_folder("someone/my-qa", REV, ROOT / "weights" / NAME, skip={"README.md"})
        out = _run(tmp_path, fh.url, code)
        assert out.get("same") is True and out.get("qa") == "logistic-shape", out
        assert [r.split(" to load a Hub repository of your own, ")[1] for r in out["refused"]] == [
            "give the commit to load (40 hex digits) as revision= or someone/my-lesion@COMMIT; no hashes are "
            "recorded for it, so the commit is what fixes its files",
            "give the commit to load (40 hex digits) as revision= or someone/my-lesion@COMMIT (not 'main': a branch "
            "or tag can change under you); no hashes are recorded for it, so the commit is what fixes its files"]
        got = {(m, p.split("/resolve/")[0].strip("/")) for m, p in fh.requests if "/resolve/" in p}
        assert {r for _, r in got} == {"someone/my-lesion", "someone/my-qa"}
        n = len(fh.requests)
        again = _run(tmp_path, fh.url, code, offline=True)  # from the cache, no request
        assert again.get("same") is True and again["qa"] == "logistic-shape" and len(fh.requests) == n
