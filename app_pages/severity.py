"""Study severity: involvement per slice, study % per class, grade and P(extensive pneumonia)."""

import streamlit as st

from app_pages.common import COHORT_FIT, lesion_study, made_truth, upload_or_example
from ctmodels.charts import involvement_chart
from ctmodels.severity import NOT_ASSESSED, T_AB, T_BC, format_probability, format_volumes

st.title("Study severity")

files, use_example = upload_or_example("A whole study: zip of a DICOM series, DICOM files, NIfTI, NRRD or MetaImage",
                                       "severity", "a study")

study = lesion_study(files, use_example)
vol, rep = study.volume, study.report

c = st.columns(5)
c[0].metric("GGO", f"{rep.ggo_pct:.1f} %")
c[1].metric("Consolidation", f"{rep.consolidation_pct:.1f} %")
c[2].metric("Involved", f"{rep.involved_pct:.1f} %")
c[3].metric("Grade", rep.grade)
c[4].metric("P(extensive)", format_probability(rep.p_extensive), help=f"class {rep.extent_class}")
fit = st.session_state.get(COHORT_FIT)
if fit is not None:  # the user's own calibration, from Cohort classes
    name, cal = fit
    x = float("nan") if rep.grade == NOT_ASSESSED else rep.involved_pct
    f1, f2 = st.columns([5, 1])
    f1.caption(f"By the cohort calibration of {name} (Cohort classes page): class {cal.predict_class([x])[0]}, "
               f"P(extensive) {format_probability(float(cal.predict_proba([x])[0]))} at this involvement (A below "
               f"{cal.t_ab_pct:g} %, C from {cal.t_bc_pct:g} %).")
    if f2.button("Forget it", key="forget_cohort_fit", help="stop classing studies with this calibration"):
        st.session_state.pop(COHORT_FIT, None)
        st.rerun()
if rep.volumes_ml is not None:
    st.caption(f"Volumes, from the scan's voxel size: {format_volumes(rep.volumes_ml)}.")
made = made_truth(vol)
if made:  # the synthetic example: what it was made with, beside what the model found
    st.caption(made)
st.altair_chart(involvement_chart(rep.per_slice), width="stretch")
st.markdown(f"""
**What the numbers mean.** The model labels every pixel; *involved* is the share of the lung that is
ground-glass opacity or consolidation, over all {vol.shape[0]} slice(s). The grade follows MosMed
(CT-0 no findings, CT-1 < 25 %, CT-2 25-50 %, CT-3 50-75 %, CT-4 >= 75 %). **P(extensive)** is the
probability that the true involvement is 50 % or more, given the model's per-pixel probabilities and its
error measured on held-out slices; class **{rep.extent_class}** (A below {T_AB:.0%}, B up to {T_BC:.0%},
C above). The chart shows where the lesions lie: each slice's GGO and consolidation as a share of all the
lung found, so that its bars add up to *involved* (a bar's tooltip also gives its share of its own slice's lung).

**What they don't mean.** This is not a diagnosis. The model was trained on 8-bit slices of COVID-19
CT; other diseases, scanners or reconstructions can be mislabelled, and a study's grade depends on
how much of the lungs the upload covers.
""")
