"""Command line: ``ctmodels <subcommand>`` (also ``python -m ctmodels``).

Every error the library raises on purpose (:class:`CTModelsError`) is printed as one line on
stderr with exit status 2; unexpected errors print one line too (``--debug`` shows the
traceback) with exit status 1.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional

from . import __version__, registry
from .errors import CTModelsError, InvalidInputError, OutputError

log = logging.getLogger("ctmodels")


# ----------------------------------------------------------------------------- info
def cmd_info(args) -> int:
    from .io import IMAGE_SUFFIXES, image_slices, list_series, suffix_of
    from .series import lungless, no_slices, position_note, select_series

    if args.path is None:
        models = [m.__dict__ for m in registry.all_models()]
        if args.json:
            print(json.dumps({"version": __version__, "models": models}, indent=2, default=str))
        else:
            print(f"ctmodels {__version__}")
            for m in models:
                print(f"  {m['name']}: {m['task']} ({m['repo_id']}@{m['revision']}) licence: {m['licence']}")
        return 0
    images = image_slices(args.path)
    if images:  # a folder of slice images: segment takes each as its own input
        return _info_images(args, images)
    series = list_series(args.path)
    chosen, why = None, None
    if Path(args.path).is_file() and suffix_of(Path(args.path)) in IMAGE_SUFFIXES:  # read as it is, not selected
        chosen, why = (series[0], IMAGES_FOR["lesion"]) if args.purpose == "lesion" else (None, IMAGES_FOR["quality"])
    else:
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
        size = f"{s.rows}x{s.columns}" if s.rows and s.columns else "no image"
        print(f" {mark} [{i}] #{s.series_number if s.series_number is not None else '-'} "
              f"{s.modality or '?'} {s.n_slices} slices {size} {thick} "
              f"kernel={s.kernel or '-'} -> {s.kernel_class} ({s.kernel_reason})"
              f"{' - ' + s.description if s.description else ''}"
              f"{position_note(s)}{' - ' + s.body_part + ' (no lung)' if lungless(s) else ''}"
              f"{' - not CT slices: ' + s.not_slices if no_slices(s) else ''}")
        print(f"       series {s.series_uid}")  # what --series takes
    print(f"selected for {args.purpose}: " + (f"[{series.index(chosen) + 1}] {why}" if chosen else f"none: {why}"))
    return 0


IMAGES_FOR = {"lesion": "8-bit display image(s), segmented as they are, without an HU window (the model was trained "
                        "on such slices); no pixel size, so no volumes in mL",
              "quality": "8-bit display image(s) have no Hounsfield units; the breath-hold check needs a CT study "
                         "in HU"}


def _info_images(args, images: List[Path]) -> int:
    """``info`` of a folder of slice images: each one, its size, and what segment and the breath-hold check do."""
    from PIL import Image

    from .io import EXIF_TURNS, exif_orientation, image_pages

    listed = []
    for f in images:
        try:
            with Image.open(f) as im:  # the header only
                orientation = exif_orientation(im)
                w, h = im.size[::-1] if orientation in (5, 6, 7, 8) else im.size  # as segment reads it
                turn = EXIF_TURNS.get(orientation)
                listed.append({"name": f.name, "rows": h, "columns": w, "mode": im.mode, "exif_turn": turn,
                               "pages": image_pages(im)})
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            listed.append({"name": f.name, "rows": None, "columns": None, "mode": None,
                           "error": f"not a readable image ({type(exc).__name__})"})
    why = IMAGES_FOR[args.purpose]
    if args.json:
        print(json.dumps({"path": str(args.path), "series": [], "images": listed, "selected": None, "reason": why},
                         indent=2))
        return 0
    kinds = ", ".join(sorted({Path(i["name"]).suffix.lower() for i in listed}))
    print(f"{args.path}: {len(listed)} image file(s) ({kinds}), each its own input")
    for n, i in enumerate(listed, 1):
        turn = f", read {i['exif_turn']} (EXIF)" if i.get("exif_turn") else ""
        pages = f", {i['pages']} pages (a slice each)" if i.get("pages", 1) > 1 else ""
        size = f"{i['rows']}x{i['columns']} {i['mode']}{turn}{pages}"
        print(f"   [{n}] {i['name']} " + (i["error"] if "error" in i else size))
    print(f"for {args.purpose}: " + (f"each image, with ctmodels segment {args.path} --out DIR: {why}"
                                     if args.purpose == "lesion" else f"none: {why}"))
    return 0


# ----------------------------------------------------------------------------- voxel size of .npy inputs
SPACING_HELP = ("voxel size in mm (slice, row, column) of .npy inputs, which do not give one (default: 1 mm "
                "assumed, and said)")


def spacing_mm(text: str) -> tuple:
    """``--spacing``: three positive numbers of mm, "2.5,0.7,0.7" (:func:`ctmodels.io.parse_spacing`)."""
    from .io import parse_spacing

    try:
        return parse_spacing(text)
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def seconds(text: str) -> float:
    """``--settle``: a number of seconds, 0 or more."""
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0 <= v < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of seconds, 0 or more")
    return v


def _spacing_for(spacing, inputs) -> None:
    """``--spacing`` is for .npy inputs only: any other input gives its own voxel size (or, an image, none)."""
    if spacing is None:
        return
    for i in inputs:
        if not str(i).lower().endswith(".npy"):
            raise InvalidInputError("--spacing is for .npy inputs, which do not give a voxel size; this input gives "
                                    "its own (or, an image slice, has none): leave --spacing out", i)


# ----------------------------------------------------------------------------- segment
def _stem(path: Path) -> str:
    from .io import INPUT_SUFFIXES, suffix_of

    name, sfx = path.name, suffix_of(path)
    return (name[: -len(sfx)] or name) if sfx in INPUT_SUFFIXES else name


def cmd_segment(args) -> int:
    from tqdm import tqdm

    from . import dicom_seg
    from .io import SEGMENT_OUTPUTS, check_out_folder, image_slices, is_segment_output, read_ct, write_mask_nifti, \
        write_mask_png
    from .lesion import LesionSegmenter
    from .pipeline import segment_study
    from .severity import format_probability, format_volumes
    from .viz import overlay

    out = check_out_folder(args.out)
    _spacing_for(args.spacing, args.inputs)  # before the folder is made
    out.mkdir(parents=True, exist_ok=True)
    from . import ledger
    from .atomic import PARTIAL, write_together
    from .device import resolve_device

    resolve_device(args.device)  # a device that is not there is an error before any work
    if args.dicom_seg and not dicom_seg.available():
        raise InvalidInputError(dicom_seg.NEEDS_HIGHDICOM)
    if args.series and len(args.inputs) != 1:
        raise InvalidInputError(f"--series names a series of one study; got {len(args.inputs)} inputs")
    # results.csv is kept across runs into one folder: an earlier run's rows stay, and its outputs are not
    # overwritten by another input's of the same name (that one gets a stem of its own)
    table = out / "results.csv"
    with out_lock(out):  # checked before any work (another run writing into the folder holds this while it writes)
        _segment_table(table)
        for stale in out.glob(f"{PARTIAL}*"):  # outputs a killed run was writing (under this lock)
            if stale.is_file():
                stale.unlink()
    # a folder of image slices (an image data set's images/ folder) is its slices, each an input of its own; masks
    # and overlays that segment wrote there before are not slices
    expanded = []
    for i in args.inputs:
        slices = image_slices(i)
        theirs = [str(f) for f in slices if not is_segment_output(f)]
        if theirs and len(theirs) < len(slices) and not args.quiet:
            print(f"{Path(i).name}: {len(slices) - len(theirs)} mask or overlay image(s) written by segment left out",
                  file=sys.stderr)
        expanded += theirs or [i]  # none left: the folder, refused in one line that says what it holds
    args.inputs, inputs = [], set()  # each input once, where first given (a glob and the name of one of its files)
    for i in expanded:
        if Path(i).resolve() not in inputs:
            inputs.add(Path(i).resolve())
            args.inputs.append(i)
    if len(args.inputs) < len(expanded) and not args.quiet:
        print(f"{len(expanded) - len(args.inputs)} input(s) given more than once, segmented once", file=sys.stderr)
    seg = None  # loaded at the first readable input: a bad input fails fast
    rows = []
    failures = 0
    for inp in args.inputs:
        p = Path(inp)
        try:
            vol = read_ct(p, series_uid=args.series, spacing=args.spacing)
        except CTModelsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failures += 1
            continue
        if seg is None:
            seg = LesionSegmenter.from_pretrained(args.model, device=args.device)
        where = str(p.resolve())  # the table names inputs by absolute path: runs from other folders
        z = vol.shape[0]
        bar = tqdm(total=z, desc=p.name, unit="slice", disable=z < 8 or args.quiet, file=sys.stderr)
        try:
            study = segment_study(seg, vol, batch_size=args.batch_size,
                                  progress=lambda done, total: bar.update(done - bar.n),
                                  body_only=False if args.no_body_mask else None,
                                  air_anchor=False if args.no_air_anchor else None, zoom=not args.no_zoom)
        except CTModelsError as exc:  # read, but not what the model can take (slices under 8x8): name the input
            bar.leave = False  # the bar goes, so that the error is a line of its own
            bar.close()
            print(f"error: {exc if exc.path else f'{p}: {exc}'}", file=sys.stderr)
            failures += 1
            continue
        finally:
            bar.close()
        res, rep = study.lesions, study.report
        for w in study.warnings:
            if w not in res.warnings:  # the reader and predict have logged theirs already
                print(f"warning: {p.name}: {w}", file=sys.stderr)
        if vol.meta.extra.get("n_series", 1) > 1 and not args.quiet:
            print(f"{p.name}: series used: {vol.meta.extra['selection_reason']}")
        seg_file = _dicom_seg(args, res.labels, vol, p) if args.dicom_seg else None
        disp = seg.to_display(vol.voxels, vol.meta.units)
        k = study.key_slice
        from PIL import Image

        # the stem, the outputs and the row under the folder's lock, against the table as it is now: another run
        # into this folder (two jobs at once) has its rows kept and its outputs left alone, not overwritten
        with out_lock(out):
            current = _segment_table(table)
            taken = {r["stem"]: r["input"] for r in current}
            stem = _stem(p)
            while (taken.get(stem, where) not in (where, str(p))  # this run's rows are in the table too
                   or any((out / f"{stem}{sfx}").resolve() in inputs for sfx in SEGMENT_OUTPUTS)):
                stem += "_"
            shown = overlay(disp[k], res.labels[k], classes=(1, 2, 3) if args.show_lung else (1, 2))
            files = {out / f"{stem}.mask.png": lambda f: write_mask_png(res.labels[k], f),
                     out / f"{stem}.overlay.png": lambda f: Image.fromarray(shown).save(f)}
            if z > 1:
                files[out / f"{stem}.mask.nii.gz"] = lambda f: write_mask_nifti(res.labels, vol.spacing, f,
                                                                                layout=vol.meta.layout)
                files[out / f"{stem}.slices.csv"] = lambda f: f.write_text(study.per_slice_csv())
            if seg_file is not None:
                files[out / f"{stem}{dicom_seg.SEG_SUFFIX}"] = lambda f: seg_file.save_as(str(f))
            row = {"input": where, "stem": stem, **study.summary()}
            try:  # all of an input's outputs, or none: a full disk leaves its earlier outputs and row as they were
                write_together(files)
                ledger.write_rows(table, [r for r in current if r["stem"] != stem] + [row], list(row))
            except OSError as exc:
                left = len(args.inputs) - args.inputs.index(inp) - 1
                what = (f"{exc}; no output of {p.name} written (none half-written), {table.name} as it was"
                        if isinstance(exc, OutputError) else f"{table}: {exc.strerror or exc}; {p.name}: its row not "
                        f"added to {table.name}, which is as it was")
                print(f"error: {what}" + (f"; {left} more input(s) not segmented" if left else ""), file=sys.stderr)
                return 2
            rows.append(row)
        if not args.quiet and not rep.lung_found:
            print(f"{p.name}: {'no' if rep.lung_pixels == 0 else 'too little'} lung found, no grade")
        elif not args.quiet:
            ml = rep.volumes_ml
            print(f"{p.name}: {rep.grade} involved {rep.involved_pct:.1f}% (GGO {rep.ggo_pct:.1f}%, "
                  f"consolidation {rep.consolidation_pct:.1f}%) P(extensive)={format_probability(rep.p_extensive)} "
                  f"class {rep.extent_class}" + ("" if ml is None else f"; {format_volumes(ml)}"))
    if failures and not rows:
        return 2
    return 2 if failures else 0


def _dicom_seg(args, labels, vol, p: Path):
    """The input's labels as a DICOM SEG in memory, or None with a warning saying why there is none (the input
    is not a DICOM series, its headers do not allow one); the other outputs are written either way."""
    from .dicom_seg import make_dicom_seg

    try:
        seg_file, notes = make_dicom_seg(labels, vol, model_name=Path(args.model).name)
    except CTModelsError as exc:
        print(f"warning: {exc}", file=sys.stderr)
        return None
    for n in notes:
        print(f"warning: {p.name}: {n}", file=sys.stderr)
    return seg_file


SEGMENT_LOCK = ".ctmodels-segment.lock"


def out_lock(out: Path):
    """The output folder's lock, waited for: runs into one folder write their outputs and rows in turn."""
    from .locks import folder_lock

    return folder_lock(out, SEGMENT_LOCK)


def _segment_table(table: Path):
    """The rows of segment's results table (none where there is none); a file of that name that is not one is an
    error, and is left as it is."""
    from . import ledger

    return ledger.earlier_rows(table, ("input", "stem"), "a ctmodels segment results table", "another --out folder",
                               InvalidInputError)


# ----------------------------------------------------------------------------- train-lesion
def cmd_train_lesion(args) -> int:
    from tqdm import tqdm

    from .io import check_out_folder
    from .train_lesion import train

    bar = None  # made when training starts: a refusal before it is one line, with no bar above it

    def progress(step: int, steps: int, loss: Optional[float]) -> None:
        nonlocal bar
        if bar is None:  # a resumed run's bar starts where its state was
            bar = tqdm(total=steps, initial=step, unit="step", desc="training", file=sys.stderr)
        if loss is not None:
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        bar.update(step - bar.n)
        if step == steps and not bar.disable:
            bar.close()
            if args.data:  # what the minutes after the bar are
                print("measuring the held-out split ...", file=sys.stderr)

    try:
        metrics = train(args.data and Path(args.data), check_out_folder(args.out), steps=args.steps,
                        batch_size=args.batch_size, seed=args.seed, threads=args.threads, device=args.device,
                        validate=args.validate, semiseg_share=args.semiseg_share, lr=args.lr, init=args.init,
                        ema=args.ema, intensity=args.intensity_aug, pack=args.pack, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if metrics:
        print(json.dumps(metrics, indent=2))
    else:
        print(f"{args.out}: trained; the held-out split was not in the pack, measure it with "
              "scripts/release_weights.py lesion-unet-effb0 OUT DATA")
    return 0


# ----------------------------------------------------------------------------- breath-hold
def cmd_check_breath_hold(args) -> int:
    from .io import read_ct
    from .quality import BreathHoldChecker, measured_span

    if args.save_figure:  # before any work
        from .figures import figure_path

        figure_path(args.save_figure, args.study)
    _spacing_for(args.spacing, [args.study])
    checker = BreathHoldChecker.from_pretrained(args.model)
    vol = read_ct(args.study, purpose="quality", series_uid=args.series, spacing=args.spacing)
    res = checker.predict(vol, keep_crops=bool(args.save_figure))
    d = res.as_dict()
    d["study"] = str(args.study)
    span = measured_span(vol, res)  # where viewers show the measured slices (inputs with a position)
    if span:
        d["slice_positions_mm"] = [round(vol.position_mm(z), 2) for z in res.slices_used]
        d["carina_position_mm"] = None if res.carina_z is None else round(vol.position_mm(res.carina_z), 2)
    if args.save_figure:
        from .figures import save_trachea_figure

        d["figure"] = str(save_trachea_figure(res, args.save_figure))
    if args.json:
        print(json.dumps(d, indent=2))
    else:
        p = "-" if res.probability_fail is None else f"{res.probability_fail:.2f}"
        print(f"{args.study}: {res.verdict.upper()} (P(fail)={p})")
        print(f"  {res.reason}")
        if res.series_reason:
            print(f"  series: {res.series_reason}")
        if res.slices_used:
            lo, hi, cz = min(res.slices_used), max(res.slices_used), res.carina_z
            where = f", slice positions {span} mm" if span else ""
            carina = "?" if cz is None else f"{cz}" + (f" ({vol.position_mm(cz):.1f} mm)" if span else "")
            print(f"  slices used: {len(res.slices_used)} (z {lo}..{hi}{where}), carina at z {carina}")
        for k, v in res.features.items():
            print(f"  {k}: {v:.3f}")
    return 0


def cmd_triage(args) -> int:
    from tqdm import tqdm

    from .quality import BreathHoldChecker
    from .triage import run_triage

    checker = BreathHoldChecker.from_pretrained(args.model)
    bar = None

    def progress(i, n, name):
        nonlocal bar
        if bar is None:
            bar = tqdm(total=n, unit="study", disable=args.json, file=sys.stderr)
        bar.total = n
        bar.n = i
        bar.set_postfix_str(name[:30])
        bar.refresh()

    report = run_triage(Path(args.input_dir), Path(args.failed_dir),
                        Path(args.passed_dir) if args.passed_dir else None, move=not args.copy,
                        dry_run=args.dry_run, checker=checker, progress=progress,
                        include_patient_ids=args.include_patient_ids,
                        undetermined_dir=Path(args.undetermined_dir) if args.undetermined_dir else None,
                        report_dir=Path(args.report_dir or args.failed_dir), settle_s=args.settle)
    if bar is not None:
        bar.close()
    files = {k: str(v) for k, v in report.files.items()}
    if args.json:
        print(json.dumps({"counts": report.counts(), "studies": [r.as_dict() for r in report.rows],
                          "report_counts": report.report_counts(), "earlier_rows": len(report.earlier),
                          "notes": report.notes, "skipped": report.skipped, "files": files,
                          "dry_run": args.dry_run}, indent=2))
        return 0
    for n in report.notes:
        print(f"recovered: {n}")
    for n in report.skipped:
        print(f"not checked: {n}")
    for r in report.rows:
        p = "-" if r.probability_fail is None else f"{r.probability_fail:.2f}"
        print(f"{r.verdict:13s} {p:>5s}  {r.study}  [{r.key}]  {r.action}")
    c = report.counts()
    print(f"{c['pass']} passed, {c['fail']} failed, {c['undetermined']} undetermined"
          + (" (dry run: nothing was touched)" if args.dry_run else f"; report: {files.get('csv')}"))
    if report.earlier and not args.dry_run:
        t = report.report_counts()
        print(f"the report keeps earlier runs' rows: {sum(t.values())} studies in all, {t['pass']} passed, "
              f"{t['fail']} failed, {t['undetermined']} undetermined (charted)")
    for r in report.rows:
        if r.verdict == "undetermined":
            print(f"undetermined ({r.action}): {r.study}: {r.reason}")
    return 0


# ----------------------------------------------------------------------------- score
def cmd_score(args) -> int:
    from .mask_scores import score

    res = score(Path(args.predicted), Path(args.references), reference=args.reference, empty=args.empty)
    means = res.means()
    if args.csv:
        from . import ledger

        ledger.write_rows(Path(args.csv), [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                                           for r in res.rows], list(res.rows[0]))
    if args.json:
        print(json.dumps({"reference": res.kind, "empty": res.empty, **{k: (None if v != v else v)
                                                                       for k, v in means.items()},
                          "per_slice": res.rows,
                          "unmatched_references": res.unmatched_references,
                          "unmatched_predictions": res.unmatched_predictions}, indent=2))
        return 0
    print(f"{means['slices']} slice(s), references {res.kind}: mean per-slice Dice "
          + ", ".join(f"{c} {means[c + '_dice']:.3f}" for c in res.classes)
          + ("" if res.empty == "one" else f" (a class the reference lacks: {res.empty})"))
    for what, names in (("reference(s) without a prediction", res.unmatched_references),
                        ("prediction(s) without a reference", res.unmatched_predictions)):
        if names:
            print(f"{len(names)} {what}, not scored: {', '.join(names[:5])}{', ...' if len(names) > 5 else ''}")
    return 0


def cmd_calibrate(args) -> int:
    from . import cohort
    from .severity import ExtentCalibration

    if args.action == "fit":
        cal, left = cohort.fit_table(Path(args.table), Path(args.out), label=args.label, window=args.window,
                                     polyorder=args.polyorder, chart=args.chart and Path(args.chart))
        print(f"fitted on {cal.n_patients} patient(s), {cal.n_extensive} extensive"
              + "".join(f"; {n} left out ({why.replace('_', ' ')})" for why, n in left.items() if n))
        print(f"class A below {cal.t_ab_pct:g} % involved, B {cal.t_ab_pct:g}-{cal.t_bc_pct:g} %, "
              f"C from {cal.t_bc_pct:g} %; P(extensive) " + ", ".join(
                  f"{x} % {float(cal.predict_proba([x])[0]):.2f}" for x in (10, 25, 50, 75)))
        print(f"written to {args.out}" + (f" and {args.chart}" if args.chart else ""))
        return 0
    done = cohort.apply_table(ExtentCalibration.load(Path(args.calibration)), Path(args.table), Path(args.out))
    print(f"{done['classed']} row(s) classed, {done['not_assessed']} not assessed (n/a); written to {args.out}")
    return 0


def cmd_train_quality(args) -> int:
    from .io import check_out_folder

    check_out_folder(args.out)
    if args.pass_dir or args.fail_dir:
        if not (args.pass_dir and args.fail_dir):
            raise InvalidInputError("give both --pass-dir and --fail-dir to fine-tune")
        from .hub import resolve_model_dir
        from .train_quality import fine_tune

        used = fine_tune(resolve_model_dir(args.base or registry.BREATH_HOLD), Path(args.pass_dir),
                         Path(args.fail_dir), Path(args.out))
        print(json.dumps(used, indent=2))
        return 0
    from .train_quality import train

    rec = train(Path(args.data) if args.data else None, Path(args.out), seed=args.seed)
    print(json.dumps(rec["metrics_held_out"], indent=2))
    return 0


# ----------------------------------------------------------------------------- hub
def cmd_download(args) -> int:
    from .hub import resolve_model_dir

    names = args.names or registry.names()
    out = {}
    for n in names:
        out[n] = str(resolve_model_dir(n, revision=args.revision))
        if not args.json:
            print(f"{n}: {out[n]} (every file matches its SHA-256)")
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


def cmd_push(args) -> int:
    from .hub import push_weights

    commit = push_weights(args.name, args.repo_id, private=args.private, pin=args.pin)
    print(f"pushed {args.name} to {args.repo_id} at commit {commit}"
          + (" (pinned in ctmodels/weights_sha256.json)" if args.pin else "; pin it with --pin"))
    return 0


# ----------------------------------------------------------------------------- bench
def cmd_bench(args) -> int:
    from .bench import format_table, run

    result = run(tiny=args.tiny, device=args.device, out=Path(args.out) if args.out else None,
                 naive=not args.no_naive)
    print(format_table(result))
    if args.out:
        print(f"written: {args.out}")
    return 0


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ctmodels", description="Chest CT lesion segmentation, severity and "
                                "breath-hold quality checks. Research use only, not for diagnosis.")
    p.add_argument("--version", action="version", version=f"ctmodels {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("info", help="list the series of a study, their kernels and which would be used; "
                       "without PATH: the models")
    s.add_argument("path", nargs="?", type=Path, help="DICOM file/folder, zip, NIfTI, NRRD, MetaImage, PNG/JPG or .npy")
    s.add_argument("--purpose", choices=["lesion", "quality"], default="lesion")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("segment", help="segment lesions; write masks, overlays, per-slice tables and results.csv")
    s.add_argument("inputs", nargs="+", help="images (or a folder of them), DICOM files/folders, zips, NIfTI volumes")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    s.add_argument("--model", default=registry.LESION, help=f"registry name ({', '.join(registry.names())}), "
                   "a weights folder, or a Hub repository at a commit (USER/REPO@COMMIT)")
    s.add_argument("--batch-size", type=int, default=None, help="slices per network call (default 16 on CPU, 64 on GPU)")
    s.add_argument("--show-lung", action="store_true", help="also colour 'other lung' in the overlay")
    s.add_argument("--series", metavar="UID", default=None,
                   help="segment this series (SeriesInstanceUID, as `ctmodels info` lists) instead of the one chosen")
    s.add_argument("--no-body-mask", action="store_true",
                   help="allow labels outside the patient's body (default: background there; found in HU, or in a "
                        "slice image's grey levels)")
    s.add_argument("--no-air-anchor", action="store_true",
                   help="HU input: keep labels that are not anchored in the lungs' air, such as on stomach and "
                   "bowel below the diaphragm (default: background there)")
    s.add_argument("--no-zoom", action="store_true",
                   help="read the whole image even where the patient spans under 80 %% of it (default: a box round "
                        "the body, in which it spans as in the training slices)")
    s.add_argument("--spacing", metavar="Z,Y,X", type=spacing_mm, default=None, help=SPACING_HELP)
    s.add_argument("--dicom-seg", action="store_true",
                   help="DICOM series: also write <stem>.seg.dcm, the labels as a DICOM SEG that references the "
                        "series' slices, for PACS viewers (needs highdicom: the \"seg\" extra)")
    s.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bars and no line per input (warnings and errors are still printed)")
    s.set_defaults(func=cmd_segment)

    s = sub.add_parser("score", help="mean per-slice Dice of segment's masks against reference label images, "
                       "as the model card measures it")
    s.add_argument("predicted", help="folder of <stem>.mask.png, as segment writes (or a zip of one, such as the "
                   "app's masks.zip)")
    s.add_argument("references", help="folder of <stem>.png (or .jpg ...) label images of the same sizes (or a zip "
                   "of one)")
    s.add_argument("--reference", choices=("auto", "classes", "infection", "ggo", "consolidation"), default="auto",
                   help="classes: 0 background, 1 GGO, 2 consolidation (3 other lung); infection, ggo, "
                        "consolidation: that one class, any value above 0 (Inf-Net's GT-1 is ggo, GT-2 "
                        "consolidation); auto: 0/255 is infection, 0..3 classes")
    s.add_argument("--empty", choices=("one", "zero", "skip"), default="one",
                   help="a class a slice's reference lacks scores 1.0 where the prediction lacks it too (one, the "
                        "model card's), 0.0 (zero, as Inf-Net's evaluation tool), or is left out of that class's mean "
                        "(skip)")
    s.add_argument("--csv", metavar="FILE", help="also write each slice's Dice to FILE")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("calibrate", help="fit the extent classes A/B/C on your own labelled patients, or apply "
                       "such a fit to a results.csv")
    cal = s.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = cal.add_parser("fit", help="P(extensive) per 1 %% bin of involvement, Savitzky-Golay smoothed, and the "
                       "A/B and B/C thresholds that maximise the area each class holds")
    c.add_argument("table", help="results.csv from segment with a column of 1/0 labels added (or any CSV with "
                   "involved_pct and that column; a folder: its results.csv)")
    c.add_argument("--out", required=True, help="calibration JSON to write (must not exist)")
    c.add_argument("--label", default="extensive", help="the column of labels: 1/0, yes/no or true/false "
                   "(default: extensive)")
    c.add_argument("--window", type=int, default=11, help="Savitzky-Golay window in 1 %% bins (default 11)")
    c.add_argument("--polyorder", type=int, default=2, help="Savitzky-Golay polynomial order (default 2)")
    c.add_argument("--chart", metavar="FILE", help="also draw the fit: share extensive per bin, smoothed "
                   "P(extensive) and the classes (.png, .svg or .html; must not exist)")
    c.set_defaults(func=cmd_calibrate)
    c = cal.add_parser("apply", help="add cohort_p_extensive and cohort_class to each row of a results.csv")
    c.add_argument("calibration", help="what calibrate fit wrote")
    c.add_argument("table", help="results.csv from segment (or any CSV with involved_pct; a folder: its "
                   "results.csv, as segment --out wrote it)")
    c.add_argument("--out", required=True, help="CSV to write (must not exist)")
    c.set_defaults(func=cmd_calibrate)

    s = sub.add_parser("check-breath-hold", help="breath-hold quality of one study from the trachea's shape")
    s.add_argument("study", help="DICOM folder/file, zip, NIfTI, NRRD, MetaImage or .npy")
    s.add_argument("--json", action="store_true")
    s.add_argument("--save-figure", metavar="FILE", help="PNG of the trachea crop with its contour")
    s.add_argument("--series", metavar="UID", default=None,
                   help="check this series (SeriesInstanceUID, as `ctmodels info` lists) instead of the one chosen")
    s.add_argument("--model", default=None, help="registry name, weights folder or USER/REPO@COMMIT")
    s.add_argument("--spacing", metavar="Z,Y,X", type=spacing_mm, default=None, help=SPACING_HELP)
    s.set_defaults(func=cmd_check_breath_hold)

    s = sub.add_parser("triage", help="check every study in a folder; sort failed studies out safely")
    s.add_argument("input_dir", help="one study per subfolder, zip or volume file")
    s.add_argument("--failed-dir", required=True)
    s.add_argument("--passed-dir", default=None, help="where passed studies go (default: left in place)")
    s.add_argument("--undetermined-dir", default=None,
                   help="where studies that could not be judged go, for a person to look at (default: left in "
                        "place, and checked again by the next run)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--move", action="store_true", help="move studies (copy, verify, delete; default)")
    g.add_argument("--copy", action="store_true", help="copy studies, leave the input untouched")
    s.add_argument("--dry-run", action="store_true", help="print the plan; touch nothing")
    s.add_argument("--include-patient-ids", action="store_true",
                   help="add PatientName and PatientID columns to the report (off: pseudonymous keys only)")
    s.add_argument("--report-dir", default=None,
                   help="where report.csv and the chart go (default: --failed-dir); a re-run keeps the rows of "
                        "earlier runs there")
    s.add_argument("--settle", metavar="SECONDS", type=seconds, default=0.0,
                   help="leave studies with a file changed less than SECONDS ago for a later run (still arriving: "
                        "an inbox a PACS exports into; default 0, off)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--model", default=None, help="registry name, weights folder or USER/REPO@COMMIT")
    s.set_defaults(func=cmd_triage)

    s = sub.add_parser("train-quality", help="train the breath-hold classifier (simulated expiration), "
                       "or fine-tune it with --pass-dir/--fail-dir")
    s.add_argument("--data", default=None, help="../shared/data (real inspiration scans)")
    s.add_argument("--out", required=True)
    s.add_argument("--pass-dir", default=None, help="folder of studies labelled pass")
    s.add_argument("--fail-dir", default=None, help="folder of studies labelled fail")
    s.add_argument("--base", default=None, help="model to fine-tune (default: bundled breath-hold-logreg)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_train_quality)

    s = sub.add_parser("download", help="fetch and verify model weights (bundled, cache or Hub at the pinned revision)")
    s.add_argument("names", nargs="*", help=f"models (default: all of {', '.join(registry.names())})")
    s.add_argument("--revision", default=None, help="override the pinned revision")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_download)

    s = sub.add_parser("push", help="upload a bundled model folder to the Hugging Face Hub")
    s.add_argument("name", choices=registry.names())
    s.add_argument("--repo-id", required=True)
    s.add_argument("--private", action="store_true")
    s.add_argument("--pin", action="store_true", help="record the new commit as the pinned revision")
    s.set_defaults(func=cmd_push)

    s = sub.add_parser("bench", help="benchmark the fast path against the naive path; prints a table")
    s.add_argument("--tiny", action="store_true", help="tiny sizes (a smoke test)")
    s.add_argument("--device", default="cpu")
    s.add_argument("--out", default="bench.json", help="JSON file for the results")
    s.add_argument("--no-naive", action="store_true", help="skip the (slow) naive study row")
    s.set_defaults(func=cmd_bench)

    from .train_lesion import INTENSITY_AUGMENTATION, train  # its signature holds the defaults

    d = {k: v.default for k, v in inspect.signature(train).parameters.items()}
    s = sub.add_parser("train-lesion", help="train the lesion UNet on the COVID slice sets",
                       description="Train the lesion UNet. A run stopped part-way goes on from its last saved "
                       "state (OUT/training-state.safetensors, every 100 steps) when the same command is run again.")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="folder holding covid_semiseg_train/ and covid_ct_lung_infection_slices/")
    src.add_argument("--pack", type=Path, help="train on the training slices of a pack (scripts/lesion_cv.py "
                     "pack) instead, e.g. on a GPU machine without the data; the held-out split is measured "
                     "afterwards by scripts/release_weights.py")
    s.add_argument("--out", required=True, help="output weights folder")
    s.add_argument("--steps", type=int, default=d["steps"], help="training steps (default %(default)s)")
    s.add_argument("--batch-size", type=int, default=d["batch_size"], help="slices per step (default %(default)s)")
    s.add_argument("--seed", type=int, default=d["seed"])
    s.add_argument("--threads", type=int, default=d["threads"])
    s.add_argument("--device", default=d["device"])
    s.add_argument("--validate", action="store_true", help="hold out a validation split from the training "
                   "groups and keep the checkpoint that scores best on it")
    s.add_argument("--semiseg-share", type=float, default=d["semiseg_share"], help="share of each batch drawn from "
                   "COVID-SemiSeg, the slices that separate GGO from consolidation (default %(default)s)")
    s.add_argument("--lr", type=float, default=d["lr"], help="peak learning rate (default %(default)s)")
    s.add_argument("--init", type=Path, default=None, metavar="FOLDER",
                   help="continue from these trained weights (same held-out and validation split)")
    s.add_argument("--ema", type=float, default=d["ema"], metavar="DECAY", help="use an exponential moving "
                   "average of the weights with this decay, e.g. 0.998 (default %(default)s: off)")
    s.add_argument("--intensity-aug", choices=list(INTENSITY_AUGMENTATION), default=d["intensity"],
                   help="range of the gamma, contrast and brightness augmentation (default %(default)s)")
    s.set_defaults(func=cmd_train_lesion)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from .io import quiet_readers

    quiet_readers(args.verbose)
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
    except BrokenPipeError:  # what read the output has gone (| head): stop without a word, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nor one at exit, flushing into the pipe
        return 141
    except (OSError, MemoryError) as exc:
        if args.debug:
            raise
        where = getattr(exc, "filename", None)
        what = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
        print(f"error: {str(where) + ': ' if where else ''}{what}".splitlines()[0], file=sys.stderr)
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
