"""Command line: ``ctmodels <subcommand>`` (also ``python -m ctmodels``).

Every error the library raises on purpose (:class:`CTModelsError`) is printed as one line on
stderr with exit status 2; unexpected errors print one line too (``--debug`` shows the
traceback) with exit status 1.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

from . import __version__
from .errors import CTModelsError, InvalidInputError

log = logging.getLogger("ctmodels")


# ----------------------------------------------------------------------------- info
def cmd_info(args) -> int:
    from . import registry
    from .io import list_series
    from .series import select_series

    if args.path is None:
        models = [m.__dict__ for m in registry.all_models()]
        if args.json:
            print(json.dumps({"version": __version__, "models": models}, indent=2, default=str))
        else:
            print(f"ctmodels {__version__}")
            for m in models:
                print(f"  {m['name']}: {m['task']} ({m['repo_id']}@{m['revision']}) licence: {m['licence']}")
        return 0
    series = list_series(args.path)
    chosen, why = None, None
    try:
        chosen, why = select_series(series, purpose=args.purpose)
    except CTModelsError as exc:
        why = str(exc)
    if args.json:
        print(json.dumps({"path": str(args.path), "series": [s.as_dict() for s in series],
                          "selected": chosen.series_uid if chosen else None, "reason": why},
                         indent=2, default=str))
        return 0
    print(f"{args.path}: {len(series)} series")
    for i, s in enumerate(series, 1):
        mark = "*" if chosen is not None and s.series_uid == chosen.series_uid else " "
        thick = f"{s.slice_thickness:.2f} mm" if s.slice_thickness else "? mm"
        print(f" {mark} [{i}] #{s.series_number if s.series_number is not None else '-'} "
              f"{s.modality or '?'} {s.n_slices} slices {s.rows}x{s.columns} {thick} "
              f"kernel={s.kernel or '-'} -> {s.kernel_class} ({s.kernel_reason})"
              f"{' - ' + s.description if s.description else ''}")
    print(f"selected for {args.purpose}: " + (f"[{series.index(chosen) + 1}] {why}" if chosen else f"none: {why}"))
    return 0


# ----------------------------------------------------------------------------- segment
def _stem(path: Path) -> str:
    name = path.name
    for sfx in (".nii.gz", ".nii", ".nrrd", ".zip", ".dcm", ".png", ".jpg", ".jpeg", ".npy", ".bmp", ".tif", ".tiff"):
        if name.lower().endswith(sfx):
            return name[: -len(sfx)] or name
    return name


def cmd_segment(args) -> int:
    import numpy as np
    from tqdm import tqdm

    from . import severity
    from .io import read_ct, write_mask_nifti, write_mask_png
    from .lesion import LesionSegmenter
    from .viz import overlay

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seg = LesionSegmenter.from_pretrained(args.model, device=args.device)
    cal = _calibration(seg)
    rows = []
    failures = 0
    used = set()
    for inp in args.inputs:
        p = Path(inp)
        try:
            vol = read_ct(p)
        except CTModelsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failures += 1
            continue
        stem = _stem(p)
        while stem in used:
            stem += "_"
        used.add(stem)
        z = vol.shape[0]
        bar = tqdm(total=z, desc=p.name, unit="slice", disable=z < 8 or args.quiet, file=sys.stderr)
        res = seg.predict(vol, batch_size=args.batch_size, keep_probabilities=False,
                          progress=lambda done, total: bar.update(done - bar.n))
        bar.close()
        rep = severity.assess(res.pixel_counts, res.soft_counts, **cal)
        disp = seg.to_display(vol.voxels, vol.meta.units)
        k = int(np.argmax(res.pixel_counts[:, 1] + res.pixel_counts[:, 2])) if z > 1 else 0
        write_mask_png(res.labels[k], out / f"{stem}.mask.png")
        from PIL import Image

        Image.fromarray(overlay(disp[k], res.labels[k], classes=(1, 2, 3) if args.show_lung else (1, 2))).save(
            out / f"{stem}.overlay.png")
        if z > 1:
            write_mask_nifti(res.labels, vol.spacing, out / f"{stem}.mask.nii.gz")
        rows.append({"input": str(p), "stem": stem, "slices": z, "units": vol.meta.units,
                     "key_slice": k, "ggo_pct": round(rep.ggo_pct, 3),
                     "consolidation_pct": round(rep.consolidation_pct, 3),
                     "involved_pct": round(rep.involved_pct, 3), "grade": rep.grade,
                     "p_extensive": round(rep.p_extensive, 4), "extent_class": rep.extent_class})
        if not args.quiet:
            print(f"{p.name}: {rep.grade} involved {rep.involved_pct:.1f}% (GGO {rep.ggo_pct:.1f}%, "
                  f"consolidation {rep.consolidation_pct:.1f}%) P(extensive)={rep.p_extensive:.2f} "
                  f"class {rep.extent_class}")
    if rows:
        with open(out / "results.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    if failures and not rows:
        return 2
    return 2 if failures else 0


def _calibration(seg) -> dict:
    m = seg.preprocessing.get("involvement_error", {})
    return {"error_bias_pp": float(m.get("bias_pp", 0.0)), "error_sd_pp": float(m.get("sd_pp", 10.0))}


# ----------------------------------------------------------------------------- train-lesion
def cmd_train_lesion(args) -> int:
    from .train_lesion import train

    metrics = train(Path(args.data), Path(args.out), steps=args.steps, batch_size=args.batch_size,
                    seed=args.seed, threads=args.threads, device=args.device)
    print(json.dumps(metrics, indent=2))
    return 0


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from . import registry

    p = argparse.ArgumentParser(prog="ctmodels", description="Chest CT lesion segmentation, severity and "
                                "breath-hold quality checks. Research use only, not for diagnosis.")
    p.add_argument("--version", action="version", version=f"ctmodels {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("info", help="list the series of a study, their kernels and which would be used; "
                       "without PATH: the models")
    s.add_argument("path", nargs="?", type=Path, help="DICOM file/folder, zip, NIfTI, NRRD, PNG/JPG or .npy")
    s.add_argument("--purpose", choices=["lesion", "quality"], default="lesion")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("segment", help="segment lesions; write masks, overlays and results.csv")
    s.add_argument("inputs", nargs="+", help="images, DICOM files/folders, zips, NIfTI volumes")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    s.add_argument("--model", default="lesion-unet-effb0", help=f"registry name ({', '.join(registry.names())}) "
                   "or a weights folder")
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--show-lung", action="store_true", help="also colour 'other lung' in the overlay")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_segment)

    s = sub.add_parser("train-lesion", help="train the lesion UNet on the COVID slice sets")
    s.add_argument("--data", required=True, help="folder holding covid_semiseg_train/ and "
                   "covid_ct_lung_infection_slices/")
    s.add_argument("--out", required=True, help="output weights folder")
    s.add_argument("--steps", type=int, default=2400)
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=cmd_train_lesion)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CTModelsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (OSError, MemoryError) as exc:
        if args.debug:
            raise
        where = getattr(exc, "filename", None)
        print(f"error: {where + ': ' if where else ''}{type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    except Exception as exc:  # never a traceback unless asked
        if args.debug:
            raise
        msg = str(exc).splitlines()[0] if str(exc) else ""
        print(f"internal error: {type(exc).__name__}: {msg} (run with --debug for details)", file=sys.stderr)
        return 1


def entrypoint() -> None:  # console script
    sys.exit(main())


__all__ = ["main", "build_parser", "InvalidInputError"]
