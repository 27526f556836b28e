"""Find a model's weights folder, verifying every file against the registry's SHA-256.

Resolution order (the first that has the files wins):

1. an explicit local folder (``from_pretrained("path/to/folder")``);
2. a weights folder: ``$CTMODELS_WEIGHTS_DIR/<name>`` when that variable is set, otherwise the
   checkout's bundled ``weights/<name>``;
3. the Hugging Face cache at the pinned revision;
4. the Hugging Face Hub at the pinned revision (``HF_ENDPOINT`` is honoured; nothing is
   fetched when ``HF_HUB_OFFLINE=1``).

A Hub repository of one's own (weights pushed with ``ctmodels push``, or fine-tuned ones) is loaded at a commit:
``from_pretrained("user/repo", revision=COMMIT)`` or ``"user/repo@COMMIT"`` (``--model`` in the CLI). No hashes are
recorded for it, so the commit (40 hex digits, which fixes every file's content) is required: a branch could
change under the user.

A file whose SHA-256 differs from the registry is re-downloaded once from the Hub; a second
mismatch raises :class:`WeightsChecksumError` naming the file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Optional, Sequence, Union

from . import registry
from .errors import WeightsChecksumError, WeightsError, WeightsNotFoundError

log = logging.getLogger(__name__)

BUNDLED = Path(__file__).resolve().parent.parent / "weights"


def sha256_file(path: Union[str, Path], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _verify(folder: Path, entry: registry.ModelEntry) -> Optional[str]:
    """None if every registered file is present with its hash, else the first bad file's name."""
    for fname, digest in entry.files.items():
        p = folder / fname
        if not p.is_file() or sha256_file(p) != digest:
            return fname
    return None


def weights_root() -> Path:
    """``$CTMODELS_WEIGHTS_DIR`` if set, else the bundled ``weights/`` of the checkout."""
    env = os.environ.get("CTMODELS_WEIGHTS_DIR")
    return Path(env) if env else BUNDLED


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


COMMIT = re.compile(r"[0-9a-f]{40}")
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
MODEL_FILES = ("config.json", "model.safetensors")  # what every model folder holds; ``optional`` ones beside


def resolve_model_dir(name_or_path: Union[str, Path], revision: Optional[str] = None,
                      cache_dir: Optional[str] = None, optional: Sequence[str] = ()) -> Path:
    """Return a local folder holding verified weights for a registry name or a folder path, or the files of a
    Hub repository of one's own at a commit (``"user/repo"`` with ``revision``, or ``"user/repo@COMMIT"``):
    :data:`MODEL_FILES` and those of ``optional`` the repository holds."""
    p = Path(name_or_path)
    text = str(name_or_path)
    if not p.is_dir() and text not in registry.names() and REPO_ID.fullmatch(text.split("@")[0]):
        repo_id, _, at = text.partition("@")
        if at and revision and at != revision:
            raise WeightsError(f"{text!r} names commit {at} but revision={revision!r} was given; give one")
        return _repo_at_commit(repo_id, at or revision, cache_dir, optional)
    if p.is_dir():
        # an explicit folder: verify against the registry when it is a registered model
        try:
            entry = registry.get(p.name)
        except WeightsNotFoundError:
            return p
        bad = _verify(p, entry) if entry.files else None
        if bad:
            raise WeightsChecksumError(f"{bad} does not match the SHA-256 recorded for {entry.name} (a folder named "
                                       f"as a registered model is checked as that model; for a model of your own, "
                                       f"name its folder otherwise)", p / bad)
        return p
    entry = registry.get(str(name_or_path))
    cand = weights_root() / entry.name
    if cand.is_dir() and (cand / "config.json").exists():
        bad = _verify(cand, entry)
        if bad is None:
            log.info("weights for %s from %s", entry.name, cand)
            return cand
        log.warning("weights in %s fail their SHA-256 check (%s); looking further", cand, bad)
    return _from_hub(entry, revision or entry.revision, cache_dir)


def _repo_at_commit(repo_id: str, revision: Optional[str], cache_dir: Optional[str],
                    optional: Sequence[str]) -> Path:
    """The model files of a Hub repository that is not in the registry, at a commit (from the cache first)."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError

    if not revision or not COMMIT.fullmatch(revision):
        raise WeightsNotFoundError(
            f"{repo_id!r} is no folder here and no registered model ({', '.join(registry.names())}); to load a Hub "
            f"repository of your own, give the commit to load (40 hex digits) as revision= or {repo_id}@COMMIT"
            + (f" (not {revision!r}: a branch or tag can change under you)" if revision else "")
            + "; no hashes are recorded for it, so the commit is what fixes its files")
    folder = None
    for fname in list(MODEL_FILES) + [f for f in optional if f not in MODEL_FILES]:
        # the cache first, without a request, as _from_hub looks (HF_HUB_OFFLINE: the cache only)
        cached = try_to_load_from_cache(repo_id, fname, cache_dir=cache_dir, revision=revision)
        path = cached if isinstance(cached, str) else None
        if path is None and not _offline():
            try:
                path = hf_hub_download(repo_id, fname, revision=revision, cache_dir=cache_dir)
            except Exception as exc:
                if isinstance(exc, EntryNotFoundError) and fname not in MODEL_FILES:
                    continue  # an optional file the repository does not hold
                raise WeightsNotFoundError(f"could not download {fname} of {repo_id}@{revision}: "
                                           f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
        if path is None:
            if fname not in MODEL_FILES:
                continue
            raise WeightsNotFoundError(f"HF_HUB_OFFLINE is set and {fname} of {repo_id}@{revision} is not cached; "
                                       "run once with network access")
        folder = Path(path).parent
    log.info("weights of %s@%s from %s", repo_id, revision[:12], folder)
    return folder  # type: ignore[return-value]


def _from_hub(entry: registry.ModelEntry, revision: str, cache_dir: Optional[str]) -> Path:
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    how = (f"put the files in ./weights/{entry.name} or $CTMODELS_WEIGHTS_DIR/{entry.name}, or run "
           f"'ctmodels download {entry.name}' with network access (Hub repo {entry.repo_id}@{revision})")
    if not entry.files:
        raise WeightsNotFoundError(f"no local weights for {entry.name} and no file list to fetch; {how}")
    folder = None
    missing = []
    for fname in entry.files:
        cached = try_to_load_from_cache(entry.repo_id, fname, cache_dir=cache_dir, revision=revision)
        if isinstance(cached, str) and sha256_file(cached) == entry.files[fname]:
            folder = Path(cached).parent
            continue
        missing.append(fname)
    if not missing and folder is not None:
        return folder
    if _offline():
        raise WeightsNotFoundError(f"HF_HUB_OFFLINE is set and {entry.name} is not cached; {how}")
    for fname in missing:
        for attempt in (1, 2):
            try:
                path = hf_hub_download(entry.repo_id, fname, revision=revision, cache_dir=cache_dir,
                                       force_download=attempt == 2)
            except Exception as exc:
                raise WeightsNotFoundError(f"could not download {fname} of {entry.name}: "
                                           f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}; {how}") from None
            if sha256_file(path) == entry.files[fname]:
                folder = Path(path).parent
                break
            log.warning("%s of %s failed its SHA-256 check (attempt %d)", fname, entry.name, attempt)
        else:
            raise WeightsChecksumError(
                f"{fname} of {entry.name} from {entry.repo_id}@{revision} does not match its recorded SHA-256 "
                "after a fresh download", fname)
    if folder is None:  # no files registered: nothing was fetched
        raise WeightsNotFoundError(f"no files registered for {entry.name}; {how}")
    return folder


def push_weights(name: str, repo_id: str, private: bool = False, pin: bool = False) -> str:
    """Upload the registered files of ``weights/<name>`` (each verified against its SHA-256 first)
    to ``repo_id`` in one commit; returns the commit, recorded as the pinned revision with ``pin``."""
    import json

    from huggingface_hub import CommitOperationAdd, HfApi

    from .errors import WeightsError

    folder = weights_root() / name
    if not (folder / "config.json").exists():
        raise WeightsNotFoundError(f"no weights folder for {name}", folder)
    entry = registry.get(name)
    bad = _verify(folder, entry)
    if bad:
        raise WeightsChecksumError(f"{bad} does not match its recorded SHA-256; refusing to push", folder / bad)
    ops = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(folder / f)) for f in sorted(entry.files)]
    try:
        api = HfApi()
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.create_commit(repo_id=repo_id, operations=ops, commit_message=f"ctmodels: {name}")
    except Exception as exc:
        raise WeightsError(f"push to {repo_id} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    commit = str(getattr(info, "oid", None) or info)
    log.info("pushed %s to %s at %s", name, repo_id, commit)
    if pin:
        path = registry._HASHES
        data = json.loads(path.read_text())
        data.setdefault(name, {}).update(revision=commit, repo_id=repo_id)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return commit
