"""Helpers shared by the pages: cached models, uploads -> CTVolume, errors as st.error."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import streamlit as st

from ctmodels.errors import CTModelsError, SeveralStudiesError
from ctmodels.io import DATA_SUFFIXES, IMAGE_SUFFIXES, INPUT_SUFFIXES, parse_spacing, read_ct, suffix_of
from ctmodels.series import SEVERAL_STUDIES_ADVICE, lungless, no_slices, position_note
from ctmodels.types import CTVolume

# (table or file name, ExtentCalibration) of the calibration Cohort classes last fitted on an upload or read from
# one: Study severity classes its study with it too
COHORT_FIT = "cohort_fit"
# what the readers read (".nii.gz" as "gz"), and the data files of .nhdr and .mhd headers, uploaded beside them
UPLOAD_TYPES = list(dict.fromkeys(s.rsplit(".", 1)[-1] for s in INPUT_SUFFIXES + DATA_SUFFIXES))


@st.cache_resource(show_spinner="Loading the lesion model...")
def lesion_model():
    from ctmodels.lesion import LesionSegmenter

    return LesionSegmenter.from_pretrained(device="auto")


@st.cache_resource(show_spinner="Loading the breath-hold model...")
def quality_model():
    from ctmodels.quality import BreathHoldChecker

    return BreathHoldChecker.from_pretrained()


def upload_name(files) -> str:
    """How the user knows the upload: the file's name, the uploaded folder's name, or a count of files."""
    tops = {f.name.split("/")[0] for f in files}
    if len(tops) == 1 and "/" in files[0].name:
        return tops.pop()
    return Path(files[0].name).name if len(files) == 1 else f"{len(files)} files"


def study_upload(label: str, key: str,
                 folder_label: str = "A folder: a DICOM series or study as exported") -> List:
    """The page's uploader; with it empty, the study uploaded earlier in this session on any page.

    One upload is shared by the pages, so that a study uploaded on Lesions is the one Study severity and
    Breath-hold QA show. It stays in this session's memory until another upload replaces it, the user
    takes it out of the uploader or presses "Forget", or the session ends.
    """
    if st.toggle("Upload a folder", key=f"{key}_folder_mode",
                 help="A DICOM series or study folder as exported: any file names (with or without .dcm), "
                      "subfolders; files that are not DICOM are left out."):
        ukey = f"{key}_folder"
        files = st.file_uploader(folder_label, accept_multiple_files="directory", key=ukey)
    else:
        ukey = f"{key}_upload"
        files = st.file_uploader(label, type=UPLOAD_TYPES, accept_multiple_files=True, key=ukey)
    shared = st.session_state.get("upload")
    if files:
        k = upload_key(files)
        if shared is None or shared["key"] != k:
            st.session_state["upload"] = {"key": k, "files": list(files), "name": upload_name(files)}
        st.session_state["_seen"] = (ukey, k)
        return list(files)
    if shared is not None and st.session_state.get("_seen") == (ukey, shared["key"]):
        forget_upload()  # the user took the file out of this uploader (see arrive_on)
        shared = None
    st.session_state["_seen"] = None
    if shared is None:
        return []
    a, b = st.columns([5, 1], vertical_alignment="center")
    a.caption(f"Showing **{shared['name']}**, uploaded earlier in this session. Upload here to replace it.")
    if b.button("Forget", key=f"{key}_forget", help="Drop the upload and its results from this session's memory"):
        forget_upload()
        st.rerun()
    return shared["files"]


def arrive_on(page: str) -> None:
    """Called by app.py before each page runs. On a page just arrived at, the uploader starts empty (Streamlit
    drops the state of widgets that were not drawn); that must not read as the user taking the file out."""
    if st.session_state.get("_page") != page:
        st.session_state["_seen"] = None
    st.session_state["_page"] = page


def forget_upload() -> None:
    shared = st.session_state.pop("upload", None)
    if shared is not None:
        results = st.session_state.get("results", {})
        st.session_state["results"] = {k: v for k, v in results.items() if not k.endswith(shared["key"])}


def upload_or_example(label: str, key: str, what: str) -> "tuple[List, bool]":
    """The page's uploader (or the session's upload) and the synthetic-example switch; stops the page when
    neither is set."""
    files = study_upload(label, key)
    shared = st.session_state.get("upload")
    if shared is not None and files is shared["files"] and shared.get("batch"):  # not uploaded on this page
        st.info(f"{shared['name']} was checked as a batch of studies on Breath-hold QA; upload one study here, "
                "or press Forget.")
        st.stop()
    use_example = not files and st.toggle("Use the built-in SYNTHETIC example (no patient data)",
                                          key=f"{key}_example", value=True)
    if not files and not use_example:
        st.info(f"Upload {what}, or switch on the synthetic example.")
        st.stop()
    return files, use_example


def remember_batch(batch: bool) -> bool:
    """Record that the session's upload is (or is not) a batch of studies, so that Breath-hold QA keeps its batch
    switch when the user comes back to it, and the lesion pages do not read a batch as one study."""
    shared = st.session_state.get("upload")
    if shared is not None:
        shared["batch"] = batch
    return batch


def upload_key(files) -> str:
    """A hash of the uploads' names and bytes, remembered for the latest set of uploaded files, so that a rerun
    (a slider moved) does not hash a 300 MB study again."""
    ids = tuple(getattr(f, "file_id", None) for f in files)
    memo = st.session_state.get("_upload_keys", {})
    if None not in ids and ids in memo:
        return memo[ids]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode("utf-8", "replace"))
        h.update(f.getvalue())
    k = h.hexdigest()[:16]
    if None not in ids:
        st.session_state["_upload_keys"] = {ids: k}
    return k


def upload_spacing(files: List, shared: Optional[dict], page: str) -> Optional[Tuple[float, float, float]]:
    """A single .npy upload gives no voxel size: a box to type it (z,y,x in mm), kept with the session's upload for
    every page; None (1 mm assumed, as the results say) where it is left empty or the upload is not one .npy. A
    size that is not three sizes in mm is one st.error line, and the page stops."""
    if shared is None or len(files) != 1 or suffix_of(files[0].name) != ".npy":
        return None
    text = st.text_input("Voxel size of the .npy array, z,y,x in mm (empty: 1 mm assumed)",
                         value=shared.get("spacing", ""), placeholder="2.5,0.7,0.7",
                         key=f"{page}_spacing_{shared['key']}",
                         help="A .npy array holds no voxel size. With it the volumes are given in mL and the trachea "
                              "is looked for at its size in mm.").strip()
    shared["spacing"] = text
    if not text:
        return None
    try:
        return parse_spacing(text)
    except CTModelsError as exc:
        show_error(exc)
        st.stop()


def volume_from_uploads(files: List, purpose: str = "lesion", series_uid: Optional[str] = None,
                        spacing: Optional[Tuple[float, float, float]] = None) -> CTVolume:
    """Write the uploads into a private temp dir (0700), read them (the series named, or the one chosen for
    ``purpose``; ``spacing`` for a .npy upload), delete the dir."""
    with tempfile.TemporaryDirectory(prefix="ctmodels-upload-") as tmp, st.spinner(f"Reading {upload_name(files)}..."):
        written = []  # (path here, the name the user knows)
        names = [Path(f.name).name or f"upload{i}" for i, f in enumerate(files)]
        # each under its own name where none clash and none names a folder: a header then finds its data file
        own = len(set(names)) == len(names) and not {".", ".."} & set(names)
        for i, (f, name) in enumerate(zip(files, names)):
            p = Path(tmp) / (name if own else f"{i:04d}_{name}")
            p.write_bytes(f.getvalue())
            written.append((p, name))
        target = written[0][0] if len(written) == 1 else Path(tmp)

        def as_uploaded(text: str) -> str:
            """Name each upload as the user knows it, never by its file in the private temp dir."""
            for p, name in sorted(written, key=lambda pn: -len(pn[0].name)):  # 10001_a.dcm before 0001_a.dcm
                text = text.replace(str(p), name).replace(p.name, name)
            return text.replace(str(Path(tmp)), "the uploaded files")

        try:
            vol = read_ct(target, purpose=purpose, series_uid=series_uid, spacing=spacing)
        except CTModelsError as exc:
            raise exc.reworded(as_uploaded(str(exc))) from None
    vol.meta.warnings = [as_uploaded(w) for w in vol.meta.warnings]
    vol.meta.source = upload_name(files)
    return vol


def error_line(exc: Exception) -> str:
    """One line, never a traceback."""
    if isinstance(exc, CTModelsError):
        text = str(exc).replace(tempfile.gettempdir(), "upload")
        if isinstance(exc, SeveralStudiesError):  # the advice the CLI gives, as done in the app
            text = text.replace(SEVERAL_STUDIES_ADVICE, "pick a series of one of them in the Series box below, or "
                                "upload each study on its own")
        return text
    return f"Could not process this input: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def show_error(exc: Exception) -> None:
    st.error(error_line(exc))


def progress_bar(label: str):
    bar = st.progress(0.0, text=label)

    def update(done: int, total: int) -> None:
        bar.progress(min(1.0, done / max(total, 1)), text=f"{label} {done}/{total}")

    return bar, update


def cached_result(key: str) -> Optional[object]:
    return st.session_state.get("results", {}).get(key)


def store_result(key: str, value: object) -> None:
    """Keep this result, the synthetic examples' and those of the session's current upload; results of
    earlier uploads are dropped from memory."""
    shared = st.session_state.get("upload")
    keep = {k: v for k, v in st.session_state.get("results", {}).items()
            if k.startswith("example-") or (shared is not None and k.endswith(shared["key"]))}
    keep[key] = value
    st.session_state["results"] = keep


def _series_labels(infos: List[dict]) -> dict:
    """A label per series: number, slices, kernel and its class, description; the study, when several."""
    studies = list(dict.fromkeys(d.get("study_uid") for d in infos))
    labels = {}
    for d in infos:
        number = "-" if d.get("series_number") is None else d["series_number"]
        text = f"#{number} - {d['n_slices']} slices - kernel {d.get('kernel') or '?'} ({d['kernel_class']})"
        text += f" - {d['description']}" if d.get("description") else ""
        text += position_note(d)
        study = f"study {studies.index(d.get('study_uid')) + 1} - " if len(studies) > 1 else ""
        labels[d["series_uid"]] = study + text
    return labels


# per page: where its series pick is kept with the upload, and the help of its box
SERIES_BOX = {
    "lesion": ("series", "The series the model segments; by default a lung-kernel series"),
    "qa": ("qa_series", "The series the check measures; by default a lung-kernel series. Series whose kernel "
                        "tag names a soft-tissue kernel are not offered: the check needs a lung kernel"),
}


def choose_series(infos: List[dict], current: Optional[str], shared: Optional[dict],
                  page: str = "lesion") -> None:
    """A DICOM upload with several series: let the user read another than the one chosen (``current``), or, with
    none read (``current`` None: the upload holds several studies), pick the one to read. The pick is kept with
    the upload, so that the page's results for it come back on return (both lesion pages share theirs)."""
    slot, help_text = SERIES_BOX[page]
    # reading refuses them: a head series beside the chest's, a dose report
    infos = [d for d in infos if not lungless(d) and not no_slices(d)]
    if shared is None or len(infos) < (2 if current else 1):
        return
    uids = [d["series_uid"] for d in infos]
    labels = _series_labels(infos)
    picked = st.selectbox("Series", uids, index=uids.index(current) if current in uids else None,
                          format_func=labels.get, key=f"{page}_series_{shared['key']}", placeholder="Choose a series",
                          help=help_text)
    if picked is not None and picked != current:
        shared[slot] = picked
        st.rerun()


def several_images(files) -> bool:
    """Several image slices uploaded together: each is a study of its own (a folder of them is not one)."""
    return len(files) > 1 and all(suffix_of(f.name) in IMAGE_SUFFIXES for f in files)


def one_image_of(files, shared) -> "tuple[List, Optional[int]]":
    """Several image slices uploaded together: the user picks which one the page shows; (that one, its index).
    Anything else: (the files, None)."""
    if shared is None or not several_images(files):
        return files, None
    names = [Path(f.name).name for f in files]
    current = min(int(shared.get("image", 0)), len(files) - 1)
    picked = st.selectbox(f"{len(files)} slice images uploaded, each segmented on its own. Show", range(len(files)),
                          index=current, format_func=names.__getitem__, key=f"image_{shared['key']}")
    if picked != current:
        shared["image"] = picked
        st.rerun()
    return [files[current]], current


def _lesions_key(shared: dict, series: Optional[str], image: Optional[int], spacing) -> str:
    return f"lesions-{series or 'auto'}-{image}-{spacing}-{shared['key']}"


def made_truth(vol: CTVolume, z: Optional[int] = None) -> str:
    """For the synthetic example, what it was made with (over the volume, and in slice ``z``), to read beside what
    the model found; "" for anything else."""
    from ctmodels.examples import made_involvement

    made = made_involvement(vol)
    if made is None:
        return ""
    here = made_involvement(vol, z) if z is not None else None
    return (f"Made in code (this example's truth): GGO {made['ggo_pct']:.1f} % - consolidation "
            f"{made['consolidation_pct']:.1f} % - involved {made['involved_pct']:.1f} % of lung"
            + ("" if here is None else f"; in this slice {here['involved_pct']:.1f} % (GGO {here['ggo_pct']:.1f} %, "
                                      f"consolidation {here['consolidation_pct']:.1f} %)")
            + ". Its smooth made-up textures are not real CT: the model can miss or mislabel them.")


def lesion_study(files, use_example: bool):
    """The segmented study for these uploads (or the synthetic example), computed once per session."""
    from ctmodels import examples
    from ctmodels.pipeline import segment_study

    shared = st.session_state.get("upload") if files else None
    series = shared.get("series") if shared is not None else None  # a series the user picked, else ours
    files, image = one_image_of(files, shared)
    spacing = upload_spacing(files, shared, "lesions")
    key = "example-lesions" if shared is None else _lesions_key(shared, series, image, spacing)
    study = cached_result(key)
    if study is None:
        try:
            if key == "example-lesions":
                vol = examples.lesion_volume()
            else:
                vol = volume_from_uploads(files, series_uid=series, spacing=spacing)
            bar, update = progress_bar("Segmenting slices")
            study = segment_study(lesion_model(), vol, progress=update)
            bar.empty()
        except Exception as exc:  # shown as one line
            show_error(exc)
            choose_series(getattr(exc, "series", []), None, shared)  # several studies: the user picks a series
            st.stop()
        store_result(key, study)
    if study.volume.meta.format == "synthetic":
        st.warning("SYNTHETIC example made in code - not a patient, not real CT texture.")
    why = study.volume.meta.extra.get("selection_reason")
    if why:  # a DICOM upload: which of its series the model segmented, and why
        st.caption(f"Series used: {why}")
    choose_series(study.volume.meta.extra.get("series") or [], study.volume.meta.series_uid, shared)
    for w in study.warnings:
        st.warning(w)
    return study


@dataclass
class ImageTable:
    """Every slice image of an upload segmented: one row each as ``ctmodels segment`` writes results.csv (the
    upload's name as ``input``, the stem its mask is named by), the masks as segment names them
    (``<stem>.mask.png``, for ``ctmodels score``), and one line per image that could not be read."""

    rows: List[dict]
    masks: Dict[str, bytes]
    errors: List[str]

    def csv(self) -> str:
        import pandas as pd

        return pd.DataFrame(self.rows).to_csv(index=False)

    def masks_zip(self) -> bytes:
        import io
        import zipfile

        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in self.masks.items():
                z.writestr(name, data)
        return buf.getvalue()


def dicom_seg_download(study, column) -> None:
    """For an uploaded DICOM series: a button that makes its labels' DICOM SEG (seconds for a long series), then the
    SEG's download; a caption where none can be made; nothing for other inputs."""
    import io

    from ctmodels import dicom_seg

    vol, shared = study.volume, st.session_state.get("upload")
    if vol.meta.format != "dicom" or shared is None:
        return
    problem = dicom_seg.seg_problem(vol) or (None if dicom_seg.available() else dicom_seg.NEEDS_HIGHDICOM)
    if problem:
        column.caption(f"No DICOM SEG: {problem}")
        return
    key = f"dicom-seg-{vol.meta.series_uid}-{shared['key']}"
    made, slot = cached_result(key), column.empty()
    if made is None:
        if not slot.button("Make DICOM SEG", key="lesion_make_seg",
                           help="the labels as a DICOM Segmentation of this series, for PACS viewers"):
            return
        try:
            with slot, st.spinner("Making the DICOM SEG..."):
                seg, notes = dicom_seg.make_dicom_seg(study.lesions.labels, vol)
        except CTModelsError as exc:
            show_error(exc)
            return
        slot.empty()  # the button goes: its SEG is made
        buf = io.BytesIO()
        seg.save_as(buf)
        made = (buf.getvalue(), notes)
        store_result(key, made)
    for note in made[1]:
        column.caption(note)
    column.download_button("DICOM SEG", made[0], "lesions.seg.dcm", "application/dicom",
                           help="segments 1 GGO, 2 consolidation, 3 other lung, each frame on the slice it references; "
                                "it carries the patient's name and ID from the slices, as a SEG must")


def image_table(files, run: bool) -> Optional[ImageTable]:
    """The table of every uploaded slice image: kept for this upload once made; made (with a progress bar, each
    image's study from the page reused where it was already segmented) only when ``run``; else None."""
    import io

    from PIL import Image

    from ctmodels.pipeline import segment_study

    shared = st.session_state["upload"]
    key = f"lesions-table-{shared['key']}"
    table = cached_result(key)
    if table is not None or not run:
        return table
    table, stems = ImageTable([], {}, []), set()
    bar, update = progress_bar("Segmenting every slice image")
    for i, f in enumerate(files):
        name = Path(f.name).name
        study = cached_result(_lesions_key(shared, None, i, None))
        try:
            if study is None:
                study = segment_study(lesion_model(), volume_from_uploads([f]))
        except Exception as exc:  # one line for this image; the others are still segmented
            line = error_line(exc)  # a library error names the file already
            table.errors.append(line if isinstance(exc, CTModelsError) else f"{name}: {line}")
            update(i + 1, len(files))
            continue
        stem = Path(name).stem or f"image{i}"
        while stem in stems:  # two uploads of one name: each mask keeps its own
            stem += "_"
        stems.add(stem)
        table.rows.append({"input": name, "stem": stem, **study.summary()})
        buf = io.BytesIO()
        Image.fromarray(study.lesions.labels[0]).save(buf, format="PNG")
        table.masks[f"{stem}.mask.png"] = buf.getvalue()
        update(i + 1, len(files))
    bar.empty()
    store_result(key, table)
    return table


def score_against(table: ImageTable, references: List, empty: str = "one"):
    """The table's masks scored against uploaded reference label images (``ctmodels score``, the model card's
    measure), both written into a private temp dir that is deleted; a CTModelsError names the files as uploaded."""
    from ctmodels.mask_scores import score_folders

    with tempfile.TemporaryDirectory(prefix="ctmodels-score-") as tmp:
        pred, ref = Path(tmp) / "masks", Path(tmp) / "references"
        pred.mkdir()
        ref.mkdir()
        for name, data in table.masks.items():
            (pred / name).write_bytes(data)
        for f in references:
            (ref / (Path(f.name).name or "reference")).write_bytes(f.getvalue())
        try:
            return score_folders(pred, ref, empty=empty)
        except CTModelsError as exc:
            text = str(exc).replace(f"{ref}/", "").replace(f"{pred}/", "").replace(str(ref), "the references")
            raise exc.reworded(text.replace(str(pred), "the masks")) from None
