"""Training data for the lesion model: loading, partial labels, by-volume splits.

Labels in the two training sets are partial, so each pixel carries the *set*
of classes it may belong to, stored as a bit mask (bit ``c`` set = class ``c``
allowed):

* ``covid_semiseg_train`` labels GGO (1) and consolidation (2) but has no lung
  mask: an unlabelled pixel is background *or* other lung, ``{0, 3}``.
* ``covid_ct_lung_infection_slices`` has a lung mask and an infection mask that
  does not separate GGO from consolidation: outside the lung ``{0}``, lung
  without infection ``{3}``, infection ``{1, 2}``.

The training loss (see :mod:`ctmodels.train_lesion`) maximises the probability
of the allowed set, so neither data set is forced to invent labels it lacks.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from .errors import InvalidInputError

log = logging.getLogger(__name__)

BACKGROUND, GGO, CONSOLIDATION, LUNG = 0, 1, 2, 3
BIT = {c: 1 << c for c in range(4)}


@dataclass
class SliceSet:
    """Images (uint8, N x S x S), allowed-class bit masks (uint8, N x S x S), names and groups."""

    images: np.ndarray
    allowed: np.ndarray
    names: List[str]
    groups: np.ndarray  # volume / patient group per slice
    multiclass: bool  # True where GGO and consolidation are separated
    originals: list = field(default_factory=list)  # (image, label) at native size, for evaluation

    def subset(self, index: Sequence[int]) -> "SliceSet":
        index = np.asarray(index, dtype=int)
        return SliceSet(
            images=self.images[index],
            allowed=self.allowed[index],
            names=[self.names[i] for i in index],
            groups=self.groups[index],
            multiclass=self.multiclass,
            originals=[self.originals[i] for i in index] if self.originals else [],
        )

    def __len__(self) -> int:
        return len(self.names)


def _resize(a: np.ndarray, size: int, nearest: bool) -> np.ndarray:
    im = Image.fromarray(a)
    return np.asarray(im.resize((size, size), Image.NEAREST if nearest else Image.BILINEAR))


def _numeric_key(p: Path) -> Tuple[int, str]:
    m = re.search(r"\d+", p.stem)
    return (int(m.group()) if m else -1, p.name)


def load_semiseg(root: Path, size: int = 256) -> SliceSet:
    """COVID-SemiSeg training slices: ``images/N.jpg`` and ``masks/N.png`` (0 bg, 1 GGO, 2 consolidation)."""
    root = Path(root)
    paths = sorted((root / "images").glob("*.jpg"), key=_numeric_key)
    if not paths:
        raise InvalidInputError("no images/*.jpg found (expected the COVID-SemiSeg layout)", root)
    images, allowed, names, originals = [], [], [], []
    for p in paths:
        img = np.asarray(Image.open(p).convert("L"))
        lab = np.asarray(Image.open(root / "masks" / (p.stem + ".png")))
        if lab.shape != img.shape:
            raise InvalidInputError(f"mask shape {lab.shape} differs from image {img.shape}", p)
        bits = np.where(lab == 1, BIT[GGO], np.where(lab == 2, BIT[CONSOLIDATION], BIT[BACKGROUND] | BIT[LUNG]))
        images.append(_resize(img, size, nearest=False))
        allowed.append(_resize(bits.astype(np.uint8), size, nearest=True))
        names.append(p.stem)
        originals.append((img, lab.astype(np.uint8)))
    n = len(names)
    # No patient ids are given; consecutive slice numbers are kept together in blocks of 5.
    groups = np.array([_numeric_key(Path(x))[0] // 5 for x in names])
    log.info("loaded %d COVID-SemiSeg slices", n)
    return SliceSet(np.stack(images), np.stack(allowed), names, groups, True, originals)


def volume_boundaries(images: np.ndarray, jump: float = 3.5) -> np.ndarray:
    """Start index of each volume in a stack of consecutive slices from several volumes.

    Adjacent slices of one volume differ little; a new volume starts where the mean absolute
    difference to the previous slice exceeds ``jump`` times the median difference.
    """
    x = images.astype(np.float32)
    d = np.abs(x[1:] - x[:-1]).mean(axis=(1, 2))
    starts = [0] + [i + 1 for i in np.flatnonzero(d > jump * np.median(d))]
    return np.asarray(starts)


def load_infection_slices(root: Path, size: int = 256) -> SliceSet:
    """Zenodo 3757476 slices: ``ct/NNNN.png``, ``lungs/NNNN.png``, ``covid/NNNN.png`` (0/255 masks)."""
    root = Path(root)
    paths = sorted((root / "ct").glob("*.png"), key=_numeric_key)
    if not paths:
        raise InvalidInputError("no ct/*.png found (expected the lung-infection slice layout)", root)
    images, allowed, names = [], [], []
    for p in paths:
        img = np.asarray(Image.open(p).convert("L"))
        lung = np.asarray(Image.open(root / "lungs" / p.name)) > 127
        inf = np.asarray(Image.open(root / "covid" / p.name)) > 127
        bits = np.full(img.shape, BIT[BACKGROUND], np.uint8)
        bits[lung] = BIT[LUNG]
        bits[inf] = BIT[GGO] | BIT[CONSOLIDATION]
        if img.shape != (size, size):
            img, bits = _resize(img, size, False), _resize(bits, size, True)
        images.append(img)
        allowed.append(bits)
        names.append(p.stem)
    images_a = np.stack(images)
    starts = volume_boundaries(images_a)
    groups = np.searchsorted(starts, np.arange(len(names)), side="right") - 1
    log.info("loaded %d lung-infection slices in %d volumes", len(names), len(starts))
    return SliceSet(images_a, np.stack(allowed), names, groups, False)


def split_by_group(s: SliceSet, every: int = 5, offset: int = 4) -> Tuple[SliceSet, SliceSet]:
    """Deterministic by-group split: groups ``offset, offset+every, ...`` are held out."""
    ug = np.unique(s.groups)
    held = ug[offset::every]
    test = np.isin(s.groups, held)
    return s.subset(np.flatnonzero(~test)), s.subset(np.flatnonzero(test))


META_KEY = "_meta"  # the key of save_slice_sets' optional JSON record (not a slice set's name)


def save_slice_sets(path: Path, sets: dict, meta: Optional[dict] = None) -> None:
    """Write named :class:`SliceSet` s to one xz-compressed ``.npz`` (no pickles), e.g. to carry the
    training slices to another machine without the held-out ones. ``meta``: a JSON-able record kept
    beside them (read back with ``load_slice_sets(path, with_meta=True)``)."""
    import io
    import json
    import lzma

    arrays = {} if meta is None else {META_KEY: np.asarray(json.dumps(meta))}
    for key, s in sets.items():
        arrays.update({f"{key}.images": s.images, f"{key}.allowed": s.allowed, f"{key}.groups": s.groups,
                       f"{key}.names": np.asarray(s.names, dtype=str), f"{key}.multiclass": np.asarray(s.multiclass)})
        for i, (img, lab) in enumerate(s.originals):
            arrays[f"{key}.original_image.{i}"], arrays[f"{key}.original_label.{i}"] = img, lab
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with lzma.open(path, "wb", preset=6) as f:
        f.write(buf.getvalue())


def load_slice_sets(path: Path, with_meta: bool = False):
    """Read what :func:`save_slice_sets` wrote: ``{name: SliceSet}``, or ``(sets, meta)`` with
    ``with_meta`` (``meta`` is ``{}`` when none was written)."""
    import io
    import json
    import lzma

    try:
        with lzma.open(path, "rb") as f:
            z = np.load(io.BytesIO(f.read()), allow_pickle=False)
    except (lzma.LZMAError, ValueError, OSError) as exc:
        raise InvalidInputError(f"not a slice-set file written by save_slice_sets ({type(exc).__name__})",
                                path) from None
    out = {}
    for key in sorted({k.split(".")[0] for k in z.files} - {META_KEY}):
        n_orig = sum(1 for k in z.files if k.startswith(f"{key}.original_image."))
        originals = [(z[f"{key}.original_image.{i}"], z[f"{key}.original_label.{i}"]) for i in range(n_orig)]
        out[key] = SliceSet(z[f"{key}.images"], z[f"{key}.allowed"], [str(n) for n in z[f"{key}.names"]],
                            z[f"{key}.groups"], bool(z[f"{key}.multiclass"]), originals)
    if not with_meta:
        return out
    return out, (json.loads(str(z[META_KEY])) if META_KEY in z.files else {})
