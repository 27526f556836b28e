"""Breath-hold QA: one study or a zip of many; verdicts, trachea crops, pass/fail chart, sorted zip."""

import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import pandas as pd
import streamlit as st

from app_pages.common import (cached_result, choose_series, progress_bar, quality_model, remember_batch, show_error,
                              store_result, study_upload, upload_name, upload_spacing, volume_from_uploads)
from ctmodels import examples
from ctmodels.charts import verdict_chart
from ctmodels.errors import CTModelsError, InvalidInputError, SeveralStudiesError
from ctmodels.figures import middle_panel
from ctmodels.quality import measured_span
from ctmodels.series import checkable
from ctmodels.triage import TriageReport, TriageRow, triage_archive


@dataclass
class Checked:
    """What a run of this page found, kept for reruns: the verdicts, and for a batch the sorted zip, for one study
    how it was read (the series used and why, the series to choose from, the reader's warnings)."""
    report: TriageReport
    archive: Optional[bytes] = None
    series_note: Optional[str] = None
    series_infos: List = field(default_factory=list)
    series_used: Optional[str] = None
    read_warnings: List[str] = field(default_factory=list)


def one_archive(files) -> bool:
    """The upload is what batch mode takes: one zip, or one folder (its files, named by their paths)."""
    return any("/" in f.name for f in files) or (len(files) == 1 and files[0].name.lower().endswith(".zip"))


st.title("Breath-hold quality check")
st.caption("Round trachea above the carina = full inspiration (pass); flattened or crescent with the posterior "
           "wall bowing in = expiration (fail). Lung-kernel series only. Research use only.")

files = study_upload("One study (DICOM zip/files, NIfTI, NRRD, MetaImage) or a zip with one study per folder", "qa",
                     folder_label="A study's folder, or a folder with one study per subfolder (batch)")
if st.session_state.pop("_qa_batch_redraw", False) or "qa_batch" not in st.session_state:
    # the switch as the upload's record has it: when the page is drawn anew, and once switched on below for an
    # upload of several studies (set before the switch is drawn, so that the browser shows it on too)
    st.session_state["qa_batch"] = bool(files) and bool(st.session_state.get("upload", {}).get("batch"))
batch = remember_batch(st.toggle("The upload holds many studies (batch)", key="qa_batch", disabled=not files))
use_example = not files and st.toggle("Use the built-in SYNTHETIC examples (no patient data)",
                                      key="qa_example", value=True)
if not files and not use_example:
    st.info("Upload a study or a zip of studies, or switch on the synthetic examples.")
    st.stop()

shared = st.session_state.get("upload") if files else None
series = shared.get("qa_series") if shared is not None and not batch else None  # picked in the Series box
# the hash study_upload keyed the session's upload by
spacing = None if batch else upload_spacing(files, shared, "qa")
key = "example-qa" if shared is None else f"qa-{int(batch)}-{series or 'auto'}-{spacing}-" + shared["key"]
result = cached_result(key)
if result is None:
    bar, update = progress_bar("Checking")
    try:
        checker = quality_model()
        if key == "example-qa":
            studies = examples.breath_hold_studies()
            rows = []
            for i, (name, vol) in enumerate(studies.items()):
                update(i, len(studies))
                r = checker.predict(vol, keep_crops=True)
                rows.append(TriageRow(name, name, r.verdict, r.probability_fail, r.reason,
                                      figure=middle_panel(r, scale=4)))
            result = Checked(TriageReport(rows))
        elif batch:
            folder = any("/" in f.name for f in files)  # an uploaded folder: its files, named by their paths
            if not one_archive(files):
                raise InvalidInputError("batch mode needs one zip, or one folder, with one study per subfolder, "
                                        "zip or volume file", upload_name(files))
            with tempfile.TemporaryDirectory(prefix="ctmodels-qa-") as tmp:
                zp = Path(tmp) / "upload.zip"
                if folder:
                    with zipfile.ZipFile(zp, "w") as zf:  # stored: the triage reads it like an uploaded zip
                        for f in files:
                            zf.writestr(f.name, f.getvalue())
                else:
                    zp.write_bytes(files[0].getvalue())
                try:
                    rep, archive = triage_archive(zp, Path(tmp) / "work", checker,
                                                  progress=lambda i, n, _name: update(i, n),
                                                  name=Path(upload_name(files)).stem)
                except CTModelsError as exc:  # named as the user knows the upload, not by this temp folder
                    said = str(exc).replace(str(Path(tmp) / "work" / "in"), upload_name(files))
                    raise exc.reworded(said.replace(str(zp), upload_name(files)).replace(tmp, "the upload")) from None
                result = Checked(rep, archive.read_bytes())
        else:
            vol = volume_from_uploads(files, purpose="quality", series_uid=series, spacing=spacing)
            r = checker.predict(vol, keep_crops=True)
            row = TriageRow("study", upload_name(files), r.verdict, r.probability_fail, r.reason,
                            slices_mm=measured_span(vol, r), figure=middle_panel(r, scale=4))
            result = Checked(TriageReport([row]), None, r.series_reason, checkable(vol.meta.extra.get("series") or []),
                             vol.meta.series_uid, list(vol.meta.warnings))  # how it was read: gaps filled, slices made
    except Exception as exc:
        bar.empty()
        if isinstance(exc, SeveralStudiesError) and files and one_archive(files) and not shared.get("auto_batch"):
            # a zip or folder of several studies, the batch switch off: check them as a batch (once per upload, so
            # that switching it off again shows the studies' series to pick from)
            shared.update(batch=True, auto_batch=True)
            st.session_state["_qa_batch_redraw"] = True
            st.rerun()
        show_error(exc)
        if not batch:  # an upload of several studies: the user picks the series to check
            choose_series(checkable(getattr(exc, "series", [])), None, shared, page="qa")
        st.stop()
    bar.empty()
    store_result(key, result)

report = result.report
if batch and shared is not None and shared.get("auto_batch"):
    st.info(f"{upload_name(files)} holds several studies, so each was checked on its own, as a batch. Switch off "
            "the batch switch to check one series of it instead.")
if key == "example-qa":
    st.warning("SYNTHETIC examples made in code (the expiration case is a simulated 50 % area loss).")
for note in report.skipped:
    st.info(f"Not checked: {note}.")
counts = report.counts()
c1, c2, c3 = st.columns(3)
c1.metric("Pass", counts["pass"])
c2.metric("Fail", counts["fail"])
c3.metric("Undetermined", counts["undetermined"])
st.altair_chart(verdict_chart(counts), width="content")
table = pd.DataFrame([{"study": r.study, "verdict": r.verdict,
                       "P(fail)": None if r.probability_fail is None else round(r.probability_fail, 3),
                       "reason": r.reason, "slices (mm)": r.slices_mm, "series": r.series, "warnings": r.warnings}
                      for r in report.rows])
for col in ("slices (mm)", "series", "warnings"):
    if not table[col].any():  # no study gave a position (images, .npy, the examples), no DICOM series, no warning
        table = table.drop(columns=col)
st.dataframe(table, hide_index=True, width="stretch")
if result.series_note:
    st.caption(f"Series used: {result.series_note}")
choose_series(result.series_infos, result.series_used, shared, page="qa")
for w in result.read_warnings:  # as the Lesions page shows them
    st.warning(w)
cols = st.columns(4)  # a single study's crop at a quarter of the width, not blown up to the page's
for i, r in enumerate(report.rows):
    with cols[i % len(cols)]:
        if r.figure is not None:
            st.image(r.figure, caption=f"{r.study}: {r.verdict.upper()}", width="stretch")
        else:
            st.caption(f"{r.study}: {r.verdict.upper()} (no trachea crop)")
if result.archive is not None:
    st.download_button("Download sorted studies (passed/ failed/ undetermined/ not_checked/ + report.csv)",
                       result.archive, "breath_hold_sorted.zip", "application/zip")
