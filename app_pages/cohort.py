"""Cohort classes: fit the extent classes A/B/C on labelled patients (as `ctmodels calibrate fit`), class a
results table with a fit (as `ctmodels calibrate apply`)."""

import streamlit as st

from app_pages.common import COHORT_FIT, show_error
from ctmodels import cohort, examples
from ctmodels.charts import calibration_chart
from ctmodels.severity import NOT_ASSESSED, ExtentCalibration

st.title("Cohort classes")
st.caption("One competition team's approach: P(extensive pneumonia, 50 % or more of the lung involved) estimated "
           "per 1 % of involvement on your own labelled patients, smoothed (Savitzky-Golay), and classes A "
           "(unlikely), B (uncertain) and C (likely) placed where each holds the most area. What `ctmodels "
           "calibrate fit` and `apply` do. Research use only.")


def _probabilities(cal: ExtentCalibration) -> str:
    return ", ".join(f"{x} % {float(cal.predict_proba([x])[0]):.2f}" for x in (10, 25, 50, 75))


def _classed(cal: ExtentCalibration, table: cohort.Table, source) -> "tuple[bytes, list]":
    """A copy of the table's rows with the calibration's columns added, and its CSV file's bytes (written as the
    table was: delimiter, decimal mark, encoding)."""
    table = table.copy()
    cohort.classed_rows(cal, table, source)
    return table.data(), table.rows


# ---- 1. fit
st.subheader("Fit on labelled patients")
up = st.file_uploader("Labelled patients (CSV): ctmodels segment's results.csv with a column of labels added, or "
                      "any CSV with involved_pct and such a column", type=["csv", "tsv", "txt"], key="cohort_table")
use_example = up is None and st.toggle("Use a built-in SYNTHETIC cohort (no patient data)", value=True,
                                       key="cohort_example")
c1, c2, c3 = st.columns(3)
label = c1.text_input("Label column", cohort.LABEL, key="cohort_label", disabled=up is None,
                      help="1/0, yes/no or true/false: extensive or not; a row without a label is left out")
window = c2.number_input("Smoothing window (1 % bins)", 1, 99, 11, key="cohort_window")
polyorder = c3.number_input("Polynomial order", 0, 10, 2, key="cohort_polyorder")

cal = None
if up is None and not use_example:
    st.info("Upload a table of labelled patients, or switch on the synthetic cohort. A calibration saved earlier "
            "can be used below without one.")
else:
    if use_example:
        source, table, label = "the synthetic cohort", cohort.Table.of(examples.labelled_cohort()), cohort.LABEL
        st.warning(f"SYNTHETIC cohort made in code: {len(table.rows)} patients whose true involvement is spread "
                   f"evenly over 0-100 %, measured with an error of {examples.COHORT_ERROR_SD:g} points (sd) and "
                   "labelled extensive where the true involvement is 50 % or more. The best thresholds for it are near "
                   "47 % and 53 %.")
    try:
        if not use_example:
            source = up.name
            table = cohort.parse_table(up.getvalue(), source, (cohort.INVOLVED, label))
        cal, left = cohort.fit_rows(table, source, label, int(window), int(polyorder))
    except Exception as exc:  # one line naming the table, never a traceback
        show_error(exc)
    else:
        m = st.columns(4)
        m[0].metric("Patients", cal.n_patients, help="with an involvement and a label")
        m[1].metric("Extensive", cal.n_extensive)
        m[2].metric("A below", f"{cal.t_ab_pct:g} %", help="of lung involved")
        m[3].metric("C from", f"{cal.t_bc_pct:g} %", help="of lung involved; B between")
        out = [f"{n} not assessed (no lung found: grade n/a, or no involved_pct)" if why == "not_assessed"
               else f"{n} without a label" for why, n in left.items() if n]
        if out:
            st.caption("Left out of the fit: " + "; ".join(out) + ".")
        st.altair_chart(calibration_chart(cal), width="stretch")
        st.caption(f"P(extensive) at {_probabilities(cal)}. Points: the share of extensive patients in each 1 % bin "
                   "with patients; line: smoothed and made not to fall with involvement.")
        if not use_example:  # Study severity classes the study shown there with it
            st.session_state[COHORT_FIT] = (source, cal)
        data, _ = _classed(cal, table, source)
        d1, d2 = st.columns(2)
        d1.download_button("Calibration (JSON)", cal.to_json(), "calibration.json", "application/json",
                           help="ctmodels calibrate apply reads it, and so does the box below")
        d2.download_button("These patients, classed (CSV)", data, "classed.csv", "text/csv",
                           help="the table with cohort_p_extensive and cohort_class added")

# ---- 2. apply
st.subheader("Class other patients")
saved = st.file_uploader("A calibration saved earlier (JSON; without one, the fit above is used)", type=["json"],
                         key="cohort_calibration")
results = st.file_uploader("Results to class (CSV with involved_pct: ctmodels segment's results.csv)",
                           type=["csv", "tsv", "txt"], key="cohort_results")
try:
    if saved is not None:
        cal = ExtentCalibration.from_json(saved.getvalue(), saved.name)
        st.session_state[COHORT_FIT] = (saved.name, cal)
        st.caption(f"{saved.name}: fitted on {cal.n_patients} patients, A below {cal.t_ab_pct:g} %, C from "
                   f"{cal.t_bc_pct:g} %; P(extensive) at {_probabilities(cal)}.")
    if results is not None and cal is None:
        st.info("Fit a calibration above, or upload one, to class these results.")
    elif results is not None:
        data, rows = _classed(cal, cohort.parse_table(results.getvalue(), results.name), results.name)
        k = st.columns(4)
        for col, cls in zip(k, ["A", "B", "C", NOT_ASSESSED]):
            col.metric(f"Class {cls}" if cls != NOT_ASSESSED else "Not assessed",
                       sum(r[cohort.ADDED[1]] == cls for r in rows),
                       help=None if cls != NOT_ASSESSED else "no lung found (grade n/a), or no involved_pct")
        shown = [c for c in ("input", cohort.INVOLVED, "grade", *cohort.ADDED) if c in rows[0]]
        st.dataframe([{c: r[c] for c in shown} for r in rows], hide_index=True, width="stretch")
        st.download_button("Classed results (CSV)", data, "classed.csv", "text/csv",
                           help="the table with cohort_p_extensive and cohort_class added")
except Exception as exc:
    show_error(exc)
