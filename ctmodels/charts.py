"""Altair charts shared by the CLI reports and the app (no streamlit here)."""

from __future__ import annotations

from typing import Dict, Sequence

COLORS = {"pass": "#2ca02c", "fail": "#d62728", "undetermined": "#7f7f7f"}


def _integer_ticks(top: int, most: int = 6) -> list:
    """Whole-number axis ticks 0, step, 2 step, ... covering ``top``; step 1, 2, 5, 10, 20, 50, ..."""
    top = max(int(top), 1)
    decade = 1
    while True:
        for m in (1, 2, 5):
            step = m * decade
            if -(-top // step) <= most - 1:
                return list(range(0, -(-top // step) * step + 1, step))
        decade *= 10


def verdict_chart(counts: Dict[str, int], title: str = "Breath-hold check"):
    """Bar chart of pass / fail / undetermined counts, each bar labelled with its share of the batch."""
    import altair as alt
    import pandas as pd

    total = max(1, sum(counts.values()))
    order = ["pass", "fail", "undetermined"]
    df = pd.DataFrame({"verdict": order, "studies": [int(counts.get(k, 0)) for k in order]})
    df["share"] = df["studies"] / total
    df["label"] = [f"{n} ({s:.0%})" for n, s in zip(df["studies"], df["share"])]
    ticks = _integer_ticks(max(df["studies"]))
    base = alt.Chart(df, title=f"{title}: {counts.get('fail', 0)} of {sum(counts.values())} failed").encode(
        x=alt.X("verdict:N", sort=order, title=None, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("studies:Q", title="studies", axis=alt.Axis(format="d", values=ticks),
                scale=alt.Scale(domain=[0, max(ticks[-1], max(df["studies"]) * 1.15)], nice=False)),
    )
    bars = base.mark_bar().encode(
        color=alt.Color("verdict:N", scale=alt.Scale(domain=order, range=[COLORS[k] for k in order]), legend=None),
        tooltip=["verdict", "studies", alt.Tooltip("share:Q", format=".0%")],
    )
    text = base.mark_text(dy=-7, fontSize=12, color="#888888").encode(text="label:N")
    return (bars + text).properties(width=320, height=220)


def involvement_chart(per_slice: Sequence[Dict[str, float]]):
    """Where the lesions lie: each slice's GGO and consolidation as a share of all the lung found in the input,
    as stacked bars one slice wide (GGO below), so that the bars add up to the input's involvement; each bar's
    tooltip also gives its share of its own slice's lung. Not each slice's own share: at the ends of the lungs a
    slice holds a few hundred lung pixels, and the few the model calls lesion there (where the lung bases meet the
    diaphragm) drew bars of 100 % over a study 1.6 % involved. Slices without lung are left out (an empty chart
    says that no lung was found)."""
    import altair as alt
    import pandas as pd

    total = sum(max(float(r.get("lung_pixels", 0)), 0.0) for r in per_slice)
    rows = []
    for r in per_slice:
        lung = float(r.get("lung_pixels", 0))
        if lung <= 0:
            continue
        low = 0.0
        for cls, key in (("GGO", "ggo_pct"), ("consolidation", "consolidation_pct")):
            share = r[key] * lung / total
            rows.append({"slice": r["slice"], "from": r["slice"] - 0.5, "to": r["slice"] + 0.5, "class": cls,
                         "of_all": share, "of_slice": r[key], "low": low, "high": low + share})
            low += share
    df = pd.DataFrame(rows, columns=["slice", "from", "to", "class", "of_all", "of_slice", "low", "high"])
    return (
        alt.Chart(df, title="Lesions per slice" if rows else "Lesions per slice: no lung found")
        .mark_rect(opacity=0.85)
        .encode(x=alt.X("from:Q", title="slice", axis=alt.Axis(format="d", tickMinStep=1)), x2="to:Q",
                y=alt.Y("low:Q", title="% of all the lung"), y2="high:Q",
                color=alt.Color("class:N", scale=alt.Scale(domain=["GGO", "consolidation"],
                                                           range=["#ffd200", "#e62828"])),
                tooltip=["slice:Q", "class:N", alt.Tooltip("of_all:Q", title="% of all the lung", format=".2f"),
                         alt.Tooltip("of_slice:Q", title="% of this slice's lung", format=".1f")])
        .properties(height=220)
    )


CLASS_COLORS = {"A": "#2ca02c", "B": "#ff9f1c", "C": "#d62728"}


def calibration_chart(cal):
    """An extent calibration (:class:`ctmodels.severity.ExtentCalibration`): the share of extensive patients in
    each 1 % bin of involvement (points; bins without patients left out), its smoothed P(extensive) (line) and
    the classes A/B/C it chose (shaded bands)."""
    import altair as alt
    import numpy as np
    import pandas as pd

    x = np.arange(len(cal.p_smooth)) + 0.5  # the middle of each 1 % bin
    curve = pd.DataFrame({"involved": x, "p": cal.p_smooth, "raw": cal.p_raw})
    bands = pd.DataFrame({"class": ["A", "B", "C"], "from": [0.0, cal.t_ab_pct, cal.t_bc_pct],
                          "to": [cal.t_ab_pct, cal.t_bc_pct, 100.0]})
    bands["middle"] = (bands["from"] + bands["to"]) / 2
    bands = bands[bands["to"] > bands["from"]]  # a class the fit left empty has no band
    xs = alt.Scale(domain=[0, 100], nice=False)
    ys = alt.Scale(domain=[0, 1.15], nice=False)  # room above P = 1 for the class names
    color = alt.Color("class:N", scale=alt.Scale(domain=list(CLASS_COLORS), range=list(CLASS_COLORS.values())),
                      legend=None)
    shade = alt.Chart(bands).mark_rect(opacity=0.18).encode(
        x=alt.X("from:Q", scale=xs, title="involved (% of lung)"), x2="to:Q", color=color,
        tooltip=["class", alt.Tooltip("from:Q", title="from %"), alt.Tooltip("to:Q", title="to %")])
    names = alt.Chart(bands).mark_text(y=12, fontSize=13, fontWeight="bold").encode(
        x=alt.X("middle:Q", scale=xs), text="class:N", color=color)
    points = alt.Chart(curve.dropna(subset=["raw"])).mark_circle(size=22, color="#888888").encode(
        x=alt.X("involved:Q", scale=xs), y=alt.Y("raw:Q", scale=ys),
        tooltip=[alt.Tooltip("involved:Q", title="bin middle %"), alt.Tooltip("raw:Q", title="share extensive",
                                                                             format=".2f")])
    line = alt.Chart(curve).mark_line(color="#4c78a8", strokeWidth=2.5).encode(
        x=alt.X("involved:Q", scale=xs),
        y=alt.Y("p:Q", scale=ys, title="P(extensive)", axis=alt.Axis(values=[0, 0.25, 0.5, 0.75, 1], format=".2f")),
        tooltip=[alt.Tooltip("p:Q", title="P(extensive)", format=".2f")])
    title = (f"P(extensive) by involvement, fitted on {cal.n_patients} patients ({cal.n_extensive} extensive): "
             f"A below {cal.t_ab_pct:g} %, C from {cal.t_bc_pct:g} %")
    return alt.layer(shade, names, points, line, title=title).properties(height=260)
