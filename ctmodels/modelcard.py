"""Model cards (README.md beside the weights) generated from the registry and the training record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

from . import registry
from .hub import sha256_file

INTENDED_USE = ("Research and education only. Not a medical device; not for diagnosis, triage of "
                "patients or any clinical decision.")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _inf_net_rule(m: Dict[str, Any]) -> str:
    """How the held-out numbers read by the rule of Inf-Net's evaluation tool, where the record has them."""
    if "semiseg_consolidation_dice_absent_zero" not in m:
        return ""
    return ("\nInf-Net's figures were measured by its own evaluation tool, which scores a class that a slice's reference "
            "lacks as 0 (and averages over 256 thresholds of a probability map). By that rule ours are infection "
            f"{m['semiseg_infection_dice_absent_zero']:.3f}, GGO {m['semiseg_ggo_dice_absent_zero']:.3f} and "
            f"consolidation {m['semiseg_consolidation_dice_absent_zero']:.3f} (`ctmodels score --empty zero`).")


def _metrics_table(m: Dict[str, Any]) -> str:
    lines = ["| metric | value |", "| --- | --- |"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in m.items()]
    return "\n".join(lines)


def _batch_mix(rec: Dict[str, Any]) -> str:
    n_semi = rec.get("semiseg_per_batch", rec["batch_size"] // 2)
    if 2 * n_semi == rec["batch_size"]:
        return "half SemiSeg, half\nlung-infection slices"
    return f"{n_semi} SemiSeg and {rec['batch_size'] - n_semi}\nlung-infection slices each"


def _selection(rec: Dict[str, Any]) -> str:
    """How the shipped checkpoint was chosen, without ever looking at the held-out split."""
    val = rec.get("validation")
    choice = f"\n* Choice of recipe: {rec['recipe_choice']}" if rec.get("recipe_choice") else ""
    if not val:
        return ("* Nothing was tuned on the held-out slices: the schedule was fixed before training and the last\n"
                "  checkpoint is the one shipped." + choice)
    scores = ", ".join(f"{h['step']}: {h['score']:.3f}" for h in val["history"])
    return (f"* Validation split, carved out of the training groups: SemiSeg slices "
            f"{', '.join(val['covid_semiseg_train'])}; lung-infection volumes "
            f"{val['covid_ct_lung_infection_slices_volumes']} ({val['covid_ct_lung_infection_slices_count']} slices).\n"
            f"  It was not trained on. Score ({val['score']}) by step: {scores}.\n"
            f"* The checkpoint shipped is the one that scored best on validation (step {val['best_step']}). "
            "Nothing was tuned on\n  the held-out slices; they were measured once, at the end." + choice)


def _recipe_extras(rec: dict) -> str:
    """Intensity augmentation and weight averaging, for records that name them (newer runs)."""
    out = ""
    aug = rec.get("intensity_augmentation")
    if aug:
        lo, hi = aug["contrast"]
        out += (f", {aug['name']} intensity augmentation (gamma exp(+-{aug['gamma']:g}), contrast {lo:g}-{hi:g}, "
                f"brightness +-{aug['brightness']:g})")
    if rec.get("ema"):
        out += f", exponential moving average of the weights (decay {rec['ema']:g}) used as the result"
    return out


def _time_note(rec: Dict[str, Any]) -> str:
    """What the training time stands for, where the record says (a run stopped and resumed, cores shared)."""
    return f"\n{rec['train_time_note']}" if rec.get("train_time_note") else ""


def _start(rec: Dict[str, Any]) -> str:
    """Where training started: random weights, or an earlier run's weights (training in stages)."""
    init = rec.get("init")
    if not init:
        return "from random weights"
    best = f", its best validation checkpoint, step {init['best_step']}" if init.get("best_step") else ""
    return (f"continuing from earlier weights (model.safetensors SHA-256 {init['model_sha256'][:12]}...: "
            f"{init['steps']} steps of\n`{init['command']}`{best}; to reproduce, run that first and pass its output\n"
            "folder to `--init`)")


INF_NET = {"infection": 0.739, "ggo": 0.646, "consolidation": 0.458}  # Fan et al. 2020, COVID-SemiSeg test


def _uncertainty(rec: Dict[str, Any]) -> str:
    """The held-out means with their bootstrap intervals, and the lung-infection Dice per volume."""
    u = rec.get("uncertainty_held_out")
    if not u:
        return ""
    m = rec["metrics_held_out"]
    lines = ["### How far these numbers can be trusted", "",
             f"With {m['semiseg_slices']} SemiSeg slices the means are rough. Intervals: {u['method']}. They "
             "treat the slices as independent, so they are if anything too narrow.", "",
             "| held-out SemiSeg Dice | mean | 95 % interval | Inf-Net |", "| --- | --- | --- | --- |"]
    for k, label in (("infection", "infection"), ("ggo", "GGO"), ("consolidation", "consolidation")):
        lo, hi = u[f"semiseg_{k}_dice_ci95"]
        where = "above the interval" if INF_NET[k] > hi else "below the interval" if INF_NET[k] < lo \
            else "inside the interval"
        lines.append(f"| {label} | {m[f'semiseg_{k}_dice']:.3f} | {lo:.3f} - {hi:.3f} | {INF_NET[k]} ({where}) |")
    count = u.get("infection_slices_count_by_volume", {})
    for k in ("infection", "lung"):
        per = u[f"infection_slices_{k}_dice_by_volume"]
        lines += ["", f"Lung-infection {k} Dice per held-out volume: " + ", ".join(
            f"volume {v}" + (f" ({count[v]} slice{'s' if count[v] > 1 else ''})" if v in count else "")
            + f": {d:.3f}" for v, d in per.items()) + "."]
    return "\n".join(lines) + "\n"


def _volume_note(rec: Dict[str, Any]) -> str:
    v = rec.get("lung_infection_volumes")
    if not v or not v["single_slice_groups"]:
        return ""
    return (f". The source documents 20 volumes; the jumps give {v['groups']} groups, and slice"
            f"{'s' if len(v['single_slice_groups']) > 1 else ''} {', '.join(v['single_slice_groups'])} each form a "
            "group of one, so the split by volume is approximate there: such a slice may belong to a neighbouring "
            "volume")


def _offset_note(pre: Dict) -> str:
    """The card's line on a GGO / consolidation decision offset, when the model has one."""
    d = float(pre.get("consolidation_offset", 0.0))
    if not d:
        return ""
    return (f"\n* **GGO / consolidation decision**: inside the infection mask a pixel is consolidation when "
            f"log p(consolidation) - log p(GGO) {d:+.2f} > 0\n  (`consolidation_offset` in preprocessing.json, "
            "fitted on out-of-fold predictions; `ctmodels/lesion_offset.py`).")


def measured_behaviour(folder: Path, rec: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The record's figures on lesion-free inputs, if they were measured with the folder's own weights."""
    b = rec.get("behaviour")
    if b and b.get("model_sha256") == sha256_file(folder / "model.safetensors"):
        return b
    return None


def _behaviour(b: Optional[Dict[str, Any]]) -> str:
    """The limitations measured on inputs without lesions (the record's `behaviour`; tests measure each again)."""
    if not b:
        return ("Every training slice also shows infection, so the model may find some in clear lungs. How much these "
                "weights find\non lesion-free inputs has not been measured yet (`tests/test_eval_models.py` and "
                "`tests/test_lesion.py`\nmeasure it, and say what to write in the record's `behaviour`).")
    c = b["clear_lung_ct"]
    return f"""Every training slice also shows infection, so the model is quick to find some: on the real contrast CT of
clear lungs in `../shared/data` it finds {c['involved_pct']} % of the lung involved ({c['grade']}, not CT-0), \
{100 * c['lowest_quarter_share']:.0f} % of it
in the lowest quarter of the lungs, mostly as consolidation where the lung bases meet the diaphragm, the rest as
scattered ground glass.
On HU input the labels also depend on what the network sees around the body: a lesion-free synthetic
chest with grey air around it (-1024 HU; 12 slices of 512 x 512 at 0.7 mm) came out {b['grey_air_phantom_ggo_pct']} % \
GGO, and
{b['black_air_phantom_ggo_pct']} % with the outside black, as scanners pad their round field of view \
(`docs/lesion-experiments.md`, session 27).
With only the corners outside its round field of view black (a DICOM series whose header marks them as padding)
such a phantom still came out {b['padding_phantom_ggo_pct']} % GGO: the air left grey inside the field of view \
misleads the model too.
No labelled HU scan exists here to measure this on real disease."""


def lesion_card(folder: Path) -> str:
    e = registry.get(registry.LESION)
    rec = json.loads((folder / "training.json").read_text())
    m = rec["metrics_held_out"]
    pre = json.loads((folder / "preprocessing.json").read_text())
    return f"""---
license: cc-by-nc-sa-4.0
library_name: segmentation-models-pytorch
tags: [medical-imaging, chest-ct, covid-19, segmentation, research-only]
---

# {e.name}

{e.description}

* **Architecture**: `smp.Unet("efficientnet-b0", encoder_weights=None, in_channels=1, classes=4)`
* **Labels**: {", ".join(f"{i} {n}" for i, n in enumerate(e.labels))}
* **Input**: one axial slice, resized to {pre['input_size']}x{pre['input_size']}; 8-bit intensities
  scaled to [0, 1], normalised with mean {pre['mean']} / std {pre['std']}. HU input is first mapped to
  8 bits with the lung window W {pre['hu_window']['width']:.0f} / L {pre['hu_window']['center']:.0f}.
  Outputs are resized back to the input grid.{_offset_note(pre)}
* **Intended use**: {INTENDED_USE}
* **Licence of these weights**: {e.licence}. The code of ctmodels is Apache-2.0; the weights inherit the
  non-commercial terms of their training data.

## Training data
* `covid_semiseg_train` (COVID-SemiSeg / MedSeg, 8-bit lung-window JPEG slices, GGO and consolidation
  labels, no lung mask; non-commercial).
* `covid_ct_lung_infection_slices` (Zenodo 3757476, 20 volumes, 256x256 CLAHE slices, lung and
  infection masks; CC BY-NC-SA).

Partial labels are handled with a *set cross-entropy* (the probability of the set of classes a pixel
may belong to) plus soft Dice on the quantities each set defines; see `ctmodels/train_lesion.py`.

## Split (by volume, never by random slice)
* Held out from COVID-SemiSeg: slices {", ".join(rec['held_out']['covid_semiseg_train'])}
  (blocks of consecutive slice numbers).
* Held out from the lung-infection set: volumes {rec['held_out']['covid_ct_lung_infection_slices_volumes']}
  ({rec['held_out']['covid_ct_lung_infection_slices_count']} slices; volumes found from the jumps
  between consecutive slices){_volume_note(rec)}.
{_selection(rec)}

## Training
`{rec['command']}` - {rec['steps']} steps of batch {rec['batch_size']} ({_batch_mix(rec)}), random {rec['crop']} px crops, AdamW (peak learning rate {rec['lr']:g}), warm-up + cosine schedule, seed {rec['seed']}{_recipe_extras(rec)},
{_start(rec)},
{rec['train_seconds'] / 60:.0f} min on {rec.get('device_name', rec['device'])}.{_time_note(rec)} Loss: {rec['loss']}.

## Metrics on the held-out split (mean per-slice Dice)
`*_nonempty` averages only slices where the class is present in the reference; `*_absent_zero` counts a slice
whose reference lacks the class as 0, as Inf-Net's evaluation tool does (its Dice is 0 wherever there is no true
positive); the others count a slice with neither reference nor prediction as Dice 1. `ctmodels score --empty
skip|zero|one` gives each.

{_metrics_table(m)}
{chr(10) + rec['metrics_held_out_note'] if 'metrics_held_out_note' in rec else ''}

{rec.get('evaluation', '')}

To measure the model the same way on your own labelled slices (label images: 0 background, 1 GGO,
2 consolidation, as the SemiSeg palette masks, also when saved as RGB in their colours; or 0/255 infection masks):
`ctmodels segment images/ --out pred/`, then
`ctmodels score pred/ masks/`. On the {m['semiseg_slices']} held-out SemiSeg slices this gives the three SemiSeg numbers above.

{_uncertainty(rec)}
{"Without TTA (how volumes are segmented, and what the severity module's error model uses):" if 'metrics_held_out_without_tta' in rec else ''}

{_metrics_table(rec['metrics_held_out_without_tta']) if 'metrics_held_out_without_tta' in rec else ''}

The Inf-Net paper's numbers (infection {INF_NET['infection']}, GGO {INF_NET['ggo']}, consolidation {INF_NET['consolidation']}) are on the 48-slice
COVID-SemiSeg test split, which is not in our data; ours come from {m['semiseg_slices']} held-out SemiSeg slices
and are not directly comparable. On this held-out split the infection Dice is
{'at or above' if m['semiseg_infection_dice'] >= INF_NET['infection'] else 'below'} Inf-Net's figure, GGO is
{'at or above' if m['semiseg_ggo_dice'] >= INF_NET['ggo'] else 'below'} it and consolidation is
{'at or above' if m['semiseg_consolidation_dice'] >= INF_NET['consolidation'] else 'below'} it: separating GGO from
consolidation is learned from only {len(rec['train_slices']['covid_semiseg_train'])} labelled slices.{_inf_net_rule(m)}

## Limitations
Trained on 8-bit display slices from a few dozen patients with COVID-19; not validated on other
diseases, scanners, children, or true-HU input beyond the lung-window mapping. Every training slice
shows lung, so slices without it confuse the model: on a real contrast CT it called bowel contents below
the diaphragm consolidation and bowel gas lung. On HU input ctmodels removes labels outside the
patient's body (`ctmodels/body.py`) and labels not anchored in the lungs' air, such as stomach and
bowel (`ctmodels/lung_air.py`). On 8-bit images it removes labels outside the body found in the image's
grey levels (the table and mattress), but not stomach or bowel gas: there is no HU, nor a volume, to tell
the lungs' air from it.
{_behaviour(measured_behaviour(folder, rec))}
Research use only.
"""


def quality_card(folder: Path) -> str:
    from . import quality as Q

    e = registry.get(registry.BREATH_HOLD)
    rec = json.loads((folder / "training.json").read_text())
    return f"""---
license: apache-2.0
tags: [medical-imaging, chest-ct, quality-control, research-only]
---

# {e.name}

{e.description}

* **Model**: logistic regression on four shape features of the tracheal lumen above the carina,
  aggregated (median) over the slices from the thoracic inlet to 15 mm above the carina:
  circularity, AP/transverse diameter ratio, solidity, posterior-wall bowing depth.
  Coefficients (standardised features): {rec['coefficients']}.
* **Fail threshold**: simulated cross-sectional area loss >= {rec['fail_area_loss']:.0%} with the
  posterior membranous wall bowing in (normal forced expiration loses 35 +- 18 %, Stern et al.,
  Radiology 1993; static end-expiration ~9-17 %, see `ctmodels/quality.py`).
* **Intended use**: {INTENDED_USE}
* **Licence**: {e.licence}.

## Training data: the failure class is simulated
No expiration scans were available. Failures were made by `simulate_expiration`: the posterior
membranous wall is displaced anteriorly in a parabolic bow on an 8x supersampled grid until the
requested fraction of lumen area is lost; displaced air becomes wall tissue by partial volume; then
scanner variation (Gaussian blur up to 0.8 voxel, noise up to 30 HU) is added to every case.
Area losses: {rec['losses']}.

* Training: {rec['n_train_phantoms']} synthetic phantoms (in-plane 0.5-1.6 mm, slices 1-5 mm, trachea 14-24 mm)
  and the real scans {rec['train_sources']}.
* Held out (never fitted on, nothing tuned on them): {rec['n_test_phantoms']} other phantoms and the real
  scans {rec['held_out_sources']} at losses {rec['held_out_losses']}.

`{rec['command']}` ({rec['seconds']:.0f} s on CPU).

## Metrics on the held-out cases

{_metrics_table(rec['metrics_held_out'])}

`severe_caught_rate`: share of cases with >= 40 % area loss judged fail; `mild_pass_rate`: share with
<= 10 % loss judged pass (an unmeasurable case counts against both).

## Limitations
Validated on simulated deformation only; real expiratory scans may differ (e.g. lateral wall motion,
tracheomalacia, masses, tubes). Fine-tune on labelled studies with
`ctmodels train-quality --pass-dir A --fail-dir B --out DIR`.
Studies with in-plane pixels over {Q.MAX_PIXEL_MM:g} mm get no verdict (undetermined, the shape still measured): on
the training phantoms block-averaged to about 4 mm pixels 86 % of simulated expirations (>= 40 % area loss) were
caught, against 94 % at 3 mm (`docs/quality-experiments.md`). The 4 mm `chest_ct64` scan among the training
data is therefore itself left undetermined when checked. Slices up to 7.5 mm held on the held-out real scan; at
10.5 mm a third of its inspirations passed, and no limit is set there, since only that held-out scan shows it.
The AP/transverse ratio and the bowing are read along the image's axes, which are the patient's where the patient
lies straight. Turned by up to 30 degrees about the long axis, the phantoms' and the held-out scan's clear cases
(<= 10 % and >= 40 % area loss) kept their verdicts, but borderline ones may not: the held-out scan with a 30 % loss
went from P(fail) 0.63 to 0.36 at 30 degrees. ctmodels does not measure a patient's rotation.
Axial slices tilted more than {Q.MAX_TILT_DEG:g} degrees off the patient's axial plane (an oblique reformat, a tilted
gantry; from ImageOrientationPatient or a NIfTI or NRRD file's directions) get no verdict: on the training phantoms
resliced 30 degrees against their trachea's slope, 86 % of mild cases passed, against 97 % at 20 degrees
(`docs/quality-experiments.md`, slice-tilt look). Arrays and `.npy` files give no directions and are judged as given.
"""


def write_card(folder: Path, name: str) -> Path:
    folder = Path(folder)
    text = lesion_card(folder) if name == registry.LESION else quality_card(folder)
    out = folder / "README.md"
    out.write_text(text)
    return out
