"""Score predicted lesion masks against reference masks, slice by slice (numpy and Pillow only).

The measure of the lesion model card, so that anyone can measure the model on their own labelled slices
(such as the COVID-SemiSeg test split) the way its held-out numbers were measured: ``ctmodels segment
images/ --out pred/``, then ``ctmodels score pred/ masks/``. Each slice scores a Dice per class (1.0 where
neither the prediction nor the reference holds the class), and the result is their mean over slices:

* ``infection``: GGO or consolidation (labels 1 or 2);
* ``ggo`` (label 1) and ``consolidation`` (label 2), where the references separate them.

References are label images of the input's size: ``classes`` (0 background, 1 GGO, 2 consolidation; other
lung, 3, counts as background), or one class as any value above 0, such as 0/255 masks: ``infection`` (GGO or
consolidation), ``ggo`` or ``consolidation`` (as Inf-Net's per-class ``GT-1`` and ``GT-2`` folders hold them). They are
one-channel images (the SemiSeg masks are palette images, read as their indices) or, where saved again as RGB,
grey images or images in the SemiSeg palette's colours (dark red GGO, dark green consolidation).
``auto`` takes 0/255 images as ``infection`` and images whose values lie in 0..3 as ``classes``; a binary
infection mask stored as 0/1 is indistinguishable from a GGO-only one, so say ``infection`` for those.

A slice whose reference lacks a class is scored for that class by one of three rules (``empty``):

* ``one`` (the model card's): 1.0 where the prediction lacks it too, else 0.0;
* ``zero`` (Inf-Net's evaluation tool, ``Fmeasure_calu.m``: Dice is 0 wherever there is no true positive): 0.0;
* ``skip``: the slice is left out of that class's mean.

Inf-Net's tool also averages Dice over 256 thresholds of a probability map; for a binary mask that is 255/256 of
this Dice plus 1/256 of the Dice of an all-foreground prediction, which is not reproduced here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from .errors import CTModelsError, EmptyInputError, InvalidInputError
from .io import image_pixels, input_folder

log = logging.getLogger(__name__)

SEMISEG_SCORES = ("infection", "ggo", "consolidation")
REFERENCE_KINDS = ("auto", "classes", "infection", "ggo", "consolidation")
CLASS_LABELS = {"infection": (1, 2), "ggo": (1,), "consolidation": (2,)}  # the labels each scored class is
EMPTY_RULES = ("one", "zero", "skip")
REFERENCE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
MASK_SUFFIX = ".mask.png"  # what ``ctmodels segment`` writes per input


def dice_score(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice of two boolean masks; 1.0 when both are empty."""
    s = pred.sum() + ref.sum()
    return 1.0 if s == 0 else float(2 * np.logical_and(pred, ref).sum() / s)


def semiseg_dice(pred: np.ndarray, ref: np.ndarray) -> Dict[str, tuple]:
    """Per class of :data:`SEMISEG_SCORES`: ``(Dice of pred against ref, whether ref holds the class)`` for
    label images (the labels of :data:`CLASS_LABELS`: 1 GGO, 2 consolidation; infection = either)."""
    out = {}
    for name in SEMISEG_SCORES:
        held = np.isin(ref, CLASS_LABELS[name])
        out[name] = (dice_score(np.isin(pred, CLASS_LABELS[name]), held), bool(held.any()))
    return out


@dataclass
class MaskScores:
    """Per-slice Dice (``rows``: slice name, then one column per scored class) and what was left unscored."""

    kind: str  # classes | infection
    empty: str = "one"  # how slices whose reference lacks a class are scored: see the module
    rows: List[Dict[str, object]] = field(default_factory=list)
    unmatched_references: List[str] = field(default_factory=list)
    unmatched_predictions: List[str] = field(default_factory=list)

    @property
    def classes(self) -> Tuple[str, ...]:
        return SEMISEG_SCORES if self.kind == "classes" else (self.kind,)

    def means(self) -> Dict[str, float]:
        """Mean per-slice Dice of each scored class (over the slices scored for it: all, unless ``empty`` is
        ``skip``; NaN where none is), and the number of slices."""
        out: Dict[str, float] = {}
        for c in self.classes:
            scored = [r[c] for r in self.rows if r[c] is not None]
            out[f"{c}_dice"] = float(np.mean(scored)) if scored else float("nan")
        out["slices"] = len(self.rows)
        return out


# The colours of the COVID-SemiSeg label palette (its masks are palette images: index 1 is drawn dark red, 2 dark
# green); a reference saved again as RGB keeps these colours, and they are read back as the labels they draw.
LABEL_COLOURS = {(0, 0, 0): 0, (128, 0, 0): 1, (0, 128, 0): 2, (128, 128, 0): 3}


def _colour_labels(rgb: np.ndarray, mode: str, path: Path) -> np.ndarray:
    """A colour reference -> labels: grey pixels (R = G = B, such as a 0/255 mask saved as RGB) give their grey
    value; otherwise every pixel must be one of :data:`LABEL_COLOURS`."""
    rgb = rgb[..., :3]
    if (rgb == rgb[..., :1]).all():
        return rgb[..., 0]
    colours, inverse = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)
    unknown = [tuple(int(v) for v in c) for c in colours if tuple(int(v) for v in c) not in LABEL_COLOURS]
    if unknown:
        shown = ", ".join(str(c) for c in unknown[:3]) + (", ..." if len(unknown) > 3 else "")
        raise InvalidInputError(f"{mode} image with colours {shown}: expected a one-channel label image, or the "
                                "label colours black, (128, 0, 0) GGO, (0, 128, 0) consolidation", path)
    labels = np.array([LABEL_COLOURS[tuple(int(v) for v in c)] for c in colours], np.uint8)
    return labels[inverse.reshape(-1)].reshape(rgb.shape[:2])


def _label_image(path: Path) -> np.ndarray:
    arr, mode = image_pixels(path, lambda im: im.convert("L") if im.mode == "1" else im, "a label image")
    if mode in ("RGB", "RGBA"):
        return _colour_labels(arr, mode, path)
    if mode not in ("L", "P", "1", "I", "I;16"):
        raise InvalidInputError(f"{mode} image, expected a one-channel label image", path)
    return arr


def reference_kind(values: np.ndarray, path: Path) -> str:
    """``classes`` or ``infection`` from a reference's distinct values (see the module); ``""`` for a reference
    without any lesion or lung (all 0), which either kind describes."""
    v = set(int(x) for x in values)
    if v <= {0}:
        return ""
    if v <= {0, 1, 2, 3}:
        return "classes"
    if v <= {0, 255}:
        return "infection"
    shown = ", ".join(str(x) for x in sorted(v)[:8]) + (", ..." if len(v) > 8 else "")
    raise InvalidInputError(f"values {shown}: expected labels 0-3 (classes) or 0/255 (infection); say "
                            "--reference infection for another binary mask", path)


def score(predicted: Path, references: Path, reference: str = "auto", empty: str = "one") -> MaskScores:
    """:func:`score_folders`, where either may also be a zip of such a folder (such as the app's masks.zip),
    extracted safely into a private temp dir that is deleted; errors name the file inside as ``ZIP!name``."""
    from contextlib import ExitStack

    from .archive import extracted

    with ExitStack() as stack:
        folders, zips = [], []
        for p in (Path(predicted), Path(references)):
            if p.is_file() and p.suffix.lower() == ".zip":
                tmp = stack.enter_context(extracted(p))  # with the members' own names, which pair masks and references
                tops = [d for d in tmp.iterdir() if d.name != "__MACOSX"]
                inner = tops[0] if len(tops) == 1 and tops[0].is_dir() else tmp  # a zip of one folder: that folder
                folders.append(inner)
                zips.append((inner, p))
            else:
                folders.append(p)
        try:
            return score_folders(folders[0], folders[1], reference, empty)
        except CTModelsError as exc:
            text = str(exc)
            for inner, p in zips:
                text = text.replace(f"{inner}/", f"{p}!").replace(str(inner), str(p))
            raise exc.reworded(text) from None


def score_folders(predicted: Path, references: Path, reference: str = "auto", empty: str = "one") -> MaskScores:
    """Pair ``<stem>.mask.png`` in ``predicted`` with ``<stem>.<image suffix>`` in ``references`` and score each
    pair. Every reference must be of one kind; a prediction of another size than its reference is an error that
    names both. Unpaired files are listed, not scored."""
    if reference not in REFERENCE_KINDS:
        raise InvalidInputError(f"reference kind {reference!r}, expected one of {', '.join(REFERENCE_KINDS)}")
    if empty not in EMPTY_RULES:
        raise InvalidInputError(f"rule for classes a reference lacks {empty!r}, expected one of "
                                f"{', '.join(EMPTY_RULES)}")
    for folder in (predicted, references):
        input_folder(folder, "a folder of masks or a zip of one")
    preds = {p.name[: -len(MASK_SUFFIX)]: p for p in sorted(Path(predicted).iterdir())
             if p.name.endswith(MASK_SUFFIX) and p.is_file()}
    refs = {p.stem: p for p in sorted(Path(references).iterdir())
            if p.suffix.lower() in REFERENCE_SUFFIXES and not p.name.endswith(MASK_SUFFIX) and p.is_file()}
    if not preds:
        raise EmptyInputError(f"no *{MASK_SUFFIX} files (what ctmodels segment writes)", predicted)
    if not refs:
        raise EmptyInputError("no reference label images", references)
    stems = sorted(set(preds) & set(refs), key=lambda s: (len(s), s))  # 2 before 10
    if not stems:
        raise InvalidInputError(f"no prediction has a reference of the same name (such as {next(iter(preds))}"
                                f"{MASK_SUFFIX} and {next(iter(preds))}.png)", references)
    out = MaskScores(kind=reference, empty=empty, unmatched_references=sorted(set(refs) - set(preds)),
                     unmatched_predictions=sorted(set(preds) - set(refs)))
    ref_of = {stem: _label_image(refs[stem]) for stem in stems}
    kinds = {reference} if reference != "auto" else \
        {reference_kind(np.unique(r), refs[stem]) for stem, r in ref_of.items()} - {""}
    if reference == "classes":  # 0/255 or other values are not classes: said, not scored as no lesion
        for stem, r in ref_of.items():
            if reference_kind(np.unique(r), refs[stem]) not in ("", "classes"):
                raise InvalidInputError("values 0 and 255: expected labels 0-3 for --reference classes", refs[stem])
    if len(kinds) > 1:
        raise InvalidInputError("references of both kinds (labels 0-3 and 0/255 masks); expected one kind, or "
                                "say which with --reference", references)
    kind = kinds.pop() if kinds else "classes"
    out.kind = kind
    lacks = {"one": lambda d: d, "zero": lambda d: 0.0, "skip": lambda d: None}[empty]  # a class the reference lacks
    for stem in stems:
        pred, ref = _label_image(preds[stem]), ref_of[stem]
        if pred.shape != ref.shape:
            raise InvalidInputError(f"{pred.shape[1]}x{pred.shape[0]} prediction against a {ref.shape[1]}x"
                                    f"{ref.shape[0]} reference ({refs[stem].name}); expected masks of the input's "
                                    "size", preds[stem])
        if kind in CLASS_LABELS:  # one class, any value above 0 (such as Inf-Net's per-class GT-1 and GT-2 folders)
            scores = {kind: (dice_score(np.isin(pred, CLASS_LABELS[kind]), ref > 0), bool((ref > 0).any()))}
        else:
            scores = semiseg_dice(pred, ref)  # other lung (3) is no class scored
        out.rows.append({"slice": stem, **{c: d if held else lacks(d) for c, (d, held) in scores.items()}})
    log.info("scored %d slice(s); %d reference(s) and %d prediction(s) unpaired", len(out.rows),
             len(out.unmatched_references), len(out.unmatched_predictions))
    return out
