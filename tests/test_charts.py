"""Charts: whole-number axes that cover the data, bars labelled with their share."""

import pytest

from ctmodels.charts import _integer_ticks, involvement_chart, verdict_chart


@pytest.mark.parametrize("top", [0, 1, 2, 5, 6, 7, 12, 99, 137, 187, 1000, 2600, 123457])
def test_integer_ticks_cover_the_top_with_few_whole_steps(top):
    ticks = _integer_ticks(top)
    assert ticks[0] == 0 and ticks[-1] >= max(top, 1) and len(ticks) <= 6
    steps = {b - a for a, b in zip(ticks, ticks[1:])}
    assert len(steps) == 1 and str(steps.pop()).rstrip("0") in {"1", "2", "5"}


def test_verdict_chart_labels_each_bar_with_count_and_share():
    spec = verdict_chart({"pass": 137, "fail": 41, "undetermined": 9}).to_dict()
    assert spec["layer"][0]["title"] == "Breath-hold check: 41 of 187 failed"
    values = next(iter(spec["datasets"].values()))
    assert [v["label"] for v in values] == ["137 (73%)", "41 (22%)", "9 (5%)"]
    assert {layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]
            for layer in spec["layer"]} == {"bar", "text"}


def test_involvement_chart_leaves_out_slices_without_lung():
    from ctmodels.severity import assess

    counts = [[900, 0, 0, 0], [500, 100, 20, 380], [400, 300, 0, 300], [1000, 0, 0, 0]]
    rep = assess(counts, [[float(c) for c in row] for row in counts])
    values = next(iter(involvement_chart(rep.per_slice).to_dict()["datasets"].values()))
    assert sorted({v["slice"] for v in values}) == [1, 2]
    bars = {(v["slice"], v["class"]): v for v in values}
    assert bars[(1, "consolidation")]["of_slice"] == 4.0  # 20 of slice 1's 500 lung pixels
    assert bars[(1, "consolidation")]["of_all"] == pytest.approx(100 * 20 / 1100)  # of both slices' 1100
    assert sum(v["of_all"] for v in values) == pytest.approx(rep.involved_pct)  # the bars add up to the input's
    assert bars[(1, "consolidation")]["low"] == bars[(1, "GGO")]["high"]  # stacked, GGO below
    one = assess([[500, 100, 20, 380]], [[500.0, 100, 20, 380]])
    values = next(iter(involvement_chart(one.per_slice).to_dict()["datasets"].values()))
    assert [(v["class"], v["of_all"]) for v in values] == [("GGO", 20.0), ("consolidation", 4.0)]
    assert involvement_chart(one.per_slice).to_dict()["mark"]["type"] == "rect"  # an area drew one slice as nothing
    empty = involvement_chart(assess([[900, 0, 0, 0]], [[900.0, 0, 0, 0]]).per_slice).to_dict()
    assert empty["title"].endswith("no lung found")

