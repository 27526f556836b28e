"""Copy trained weights into weights/<name>, write the model card, and pin every file's SHA-256
in ctmodels/weights_sha256.json (the registry reads it).

    python scripts/release_weights.py breath-hold-logreg runs/breath-hold-logreg
    python scripts/release_weights.py lesion-unet-effb0 runs/lesion-unet-effb0 ../shared/data  # + re-evaluate
"""

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ctmodels import registry  # noqa: E402
from ctmodels.hub import sha256_file  # noqa: E402
from ctmodels.modelcard import measured_behaviour, write_card  # noqa: E402

KEEP = ("config.json", "model.safetensors", "preprocessing.json", "training.json", "training_features.safetensors")


def main(name: str, src: str) -> None:
    dst = ROOT / "weights" / name
    dst.mkdir(parents=True, exist_ok=True)
    record = dst / "training.json"
    before = json.loads(record.read_text()).get("behaviour") if record.exists() else None
    for f in KEEP:
        if (Path(src) / f).exists():
            shutil.copy2(Path(src) / f, dst / f)
    if before and measured_behaviour(dst, {"behaviour": before}):
        # the same weights again: the figures measured on lesion-free inputs still hold (see modelcard.py)
        rec = json.loads(record.read_text())
        rec.setdefault("behaviour", before)
        record.write_text(json.dumps(rec, indent=2))
    if name == registry.LESION and len(sys.argv) > 3:
        from ctmodels.train_lesion import reevaluate

        pin(name, dst)  # loading the folder verifies its files against the registry
        print(json.dumps(reevaluate(dst, Path(sys.argv[3])), indent=2))
    write_card(dst, name)
    print(json.dumps(pin(name, dst), indent=2))


def pin(name: str, dst: Path) -> dict:
    """Record the SHA-256 of every file in dst for the registry; keeps the recorded revision."""
    hashes_path = ROOT / "ctmodels" / "weights_sha256.json"
    hashes = json.loads(hashes_path.read_text()) if hashes_path.exists() else {}
    files = {p.name: sha256_file(p) for p in sorted(dst.iterdir()) if p.is_file()}
    hashes[name] = {"revision": hashes.get(name, {}).get("revision", "main"), "files": files}
    hashes_path.write_text(json.dumps(hashes, indent=2, sort_keys=True) + "\n")
    return hashes[name]


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
