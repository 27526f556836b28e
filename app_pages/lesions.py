"""Lesions: upload a slice or a study, switch overlays per class, read % involved and the grade."""

import io as _io

import streamlit as st
from PIL import Image

from app_pages.common import (dicom_seg_download, image_table, lesion_study, made_truth, score_against,
                              several_images, show_error, upload_or_example)
from ctmodels import severity
from ctmodels.lesion_model import LABELS
from ctmodels.preprocessing import window_hu
from ctmodels.viz import hex_to_rgb, outline, overlay

WINDOWS = {"Lung (W1500 / L-600)": (-600, 1500), "Mediastinum (W350 / L50)": (50, 350)}

st.title("Lesion segmentation")
st.caption("Ground-glass opacity, consolidation and other lung on each axial CT slice (not on chest radiographs, "
           "which it cannot tell from CT and would grade). One slice per image: a layout of several is refused, and a "
           "slice small in its image (a screenshot) is read in a box round the patient. Research use only.")

# ---- inputs
files, use_example = upload_or_example(
    "Axial CT slice (PNG/JPG in a lung window), DICOM file(s), zip of a DICOM series, NIfTI, NRRD, MetaImage or "
    ".npy", "lesion",
    "a file")

# ---- one library call (cached per upload in this session)
study = lesion_study(files, use_example)
vol, res, rep = study.volume, study.lesions, study.report

# ---- render
left, right = st.columns([3, 2])
with right:
    z = 0
    if vol.shape[0] > 1:
        z = st.slider("Slice", 0, vol.shape[0] - 1, study.key_slice, key="lesion_slice")
    if vol.is_hu:
        wname = st.radio("Window", list(WINDOWS), horizontal=True, key="lesion_window")
        c, w = WINDOWS[wname]
        disp = window_hu(vol.voxels[z], c, w)
    else:
        st.caption("8-bit display image: shown as uploaded (no HU window).")
        disp = vol.voxels[z]
    opacity = st.slider("Opacity", 0.0, 1.0, 0.45, 0.05, key="lesion_opacity")
    shown, colors = [], {}
    for cls, name, default_on, default_color in [(1, "GGO", True, "#FFD200"), (2, "Consolidation", True, "#E62828"),
                                                 (3, "Other lung", False, "#3C8CFF")]:
        a, b = st.columns([3, 1])
        if a.checkbox(name, value=default_on, key=f"show_{cls}"):
            shown.append(cls)
        colors[cls] = hex_to_rgb(b.color_picker(name, default_color, key=f"color_{cls}", label_visibility="collapsed"))
    made_labels = vol.meta.extra.get("made_labels")  # the synthetic example's truth
    show_made = made_labels is not None and st.checkbox(
        "Outline what the example was made with", value=False, key="show_made",
        help="the edges of the GGO and consolidation this synthetic example was made with, in the classes' colours")
    sl = severity.involvement(res.pixel_counts[z])
    st.subheader("This slice")
    m1, m2, m3 = st.columns(3)
    m1.metric("GGO", f"{sl['ggo_pct']:.1f} %")
    m2.metric("Consolidation", f"{sl['consolidation_pct']:.1f} %")
    m3.metric("Involved", f"{sl['involved_pct']:.1f} %", help="of the lung in this slice")
    if vol.shape[0] > 1 and rep.lung_pixels > 0:  # a slice at an end of the lungs: its % rest on a few pixels
        st.caption(f"This slice holds {100 * sl['lung_pixels'] / rep.lung_pixels:.1f} % of the input's lung.")
    st.subheader("Whole input")
    st.metric("Grade", rep.grade, help="MosMed: CT-0 none, CT-1 <25 %, CT-2 25-50 %, CT-3 50-75 %, CT-4 >=75 % of lung")
    st.caption(f"GGO {rep.ggo_pct:.1f} % - consolidation {rep.consolidation_pct:.1f} % - involved "
               f"{rep.involved_pct:.1f} % of lung over {vol.shape[0]} slice(s)")
    made = made_truth(vol, z)
    if made:  # the synthetic example: what it was made with, beside what the model found
        st.caption(made)

rgb = overlay(disp, res.labels[z], classes=shown, colors=colors, alpha=opacity)
if show_made:
    rgb = outline(rgb, made_labels[z], classes=[c for c in shown if c in (1, 2)], colors=colors)
s_mm = vol.position_mm(z)
where = "" if s_mm is None else f" (S {s_mm:.1f} mm)"  # as viewers give the slice's location
if z in vol.meta.interpolated_slices:
    where += ", interpolated: missing from the series"
with left:
    shown_text = ", ".join(LABELS[c] for c in shown) or "no overlay"
    if show_made:
        shown_text += "; outlined: what the example was made with"
    st.image(rgb, caption=f"slice {z}{where} - {shown_text}", width="stretch")

# ---- downloads
buf = _io.BytesIO()
Image.fromarray(rgb).save(buf, format="PNG")
mask = _io.BytesIO()
Image.fromarray(res.labels[z]).save(mask, format="PNG")
d1, d2, d3, d4 = st.columns(4)
d1.download_button("Overlay PNG", buf.getvalue(), f"overlay_slice{z}.png", "image/png")
if vol.shape[0] > 1:
    import tempfile
    from pathlib import Path

    from ctmodels.io import write_mask_nifti

    with tempfile.TemporaryDirectory(prefix="ctmodels-out-") as tmp:
        p = write_mask_nifti(res.labels, vol.spacing, Path(tmp) / "mask.nii.gz", layout=vol.meta.layout)
        d2.download_button("Label mask (NIfTI)", p.read_bytes(), "mask.nii.gz", "application/gzip")
else:
    d2.download_button("Label mask (PNG)", mask.getvalue(), "mask.png", "image/png")
d3.download_button("CSV", study.per_slice_csv(), "involvement.csv", "text/csv",
                   help="per slice: position (S, mm), whether it was filled in, lung mL, % GGO, consolidation, either")
dicom_seg_download(study, d4)
st.caption("Mask labels: 0 background, 1 GGO, 2 consolidation, 3 other lung.")

# ---- several slice images: all of them in one table
if several_images(files):
    st.subheader(f"All {len(files)} slice images")
    table = image_table(files, run=False)
    if table is None and st.button(f"Segment all {len(files)}", key="lesion_all_images",
                                   help="one row per image, as ctmodels segment writes results.csv"):
        image_table(files, run=True)
        st.rerun()  # drawn again with the table, without the button
    if table is not None:
        for line in table.errors:
            st.error(line)
        if table.rows:
            names = {"input": "Image", "grade": "Grade", "ggo_pct": "GGO %", "consolidation_pct": "Consolidation %",
                     "involved_pct": "Involved %", "warnings": "Warnings"}
            st.dataframe([{k: r[k] for k in names} for r in table.rows], hide_index=True,
                         column_config={k: st.column_config.Column(v) for k, v in names.items()})
            t1, t2 = st.columns(2)
            t1.download_button("Table (CSV)", table.csv(), "results.csv", "text/csv",
                               help="the columns of ctmodels segment's results.csv")
            t2.download_button("Masks (zip)", table.masks_zip(), "masks.zip", "application/zip",
                               help="<name>.mask.png per image (0 background, 1 GGO, 2 consolidation, 3 other lung), "
                                    "as ctmodels segment names them: ctmodels score masks.zip references/ gives the "
                                    "model card's Dice")
            refs = st.file_uploader("Reference label images, to score the masks against (optional): one per image, "
                                    "of the same name and size (0 background, 1 GGO, 2 consolidation; or 0/255 "
                                    "infection masks)", type=["png", "bmp", "tif", "tiff"], accept_multiple_files=True,
                                    key="lesion_references")
            if refs:
                rules = {"one": "1 if not predicted either (the model card's rule)",
                         "zero": "0 (Inf-Net's evaluation tool)", "skip": "left out of that class's mean"}
                empty = st.radio("A class that a slice's reference lacks scores", list(rules), format_func=rules.get,
                                 horizontal=True, key="lesion_empty_rule")
                try:
                    scores = score_against(table, refs, empty)
                except Exception as exc:  # one line
                    show_error(exc)
                else:
                    means = scores.means()
                    cols = st.columns(len(scores.classes) + 1)
                    titles = {"infection": "Infection", "ggo": "GGO", "consolidation": "Consolidation"}
                    for col, c in zip(cols, scores.classes):
                        col.metric(f"{titles[c]} Dice", f"{means[c + '_dice']:.3f}",
                                   help="mean per-slice Dice, as the model card and ctmodels score measure it")
                    cols[-1].metric("Slices scored", means["slices"])
                    st.caption("Slices the model trained on score higher than new ones: the Models page lists the "
                               "training data and the held-out COVID-SemiSeg slices.")
                    if scores.unmatched_predictions or scores.unmatched_references:
                        st.caption(f"Not scored: {len(scores.unmatched_predictions)} image(s) without a reference, "
                                   f"{len(scores.unmatched_references)} reference(s) without an image.")
                    st.dataframe(scores.rows, hide_index=True)
