"""The cohort calibration from the command line: fit on a labelled table, apply to results.csv."""

import codecs
import csv
import io
import json
import math

import numpy as np
import pytest

from ctmodels import severity as S
from ctmodels.cli import main
from ctmodels.errors import InvalidInputError


def _table(path, rows, columns):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(columns)
        w.writerows(rows)
    return path


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def cohort(tmp_path):
    """3000 patients whose true P(extensive | x) = logistic((x - 50) / 5), labelled yes/no as a person would, in
    segment's results.csv columns; plus a patient without lung (0 %, graded n/a) labelled no, and one unlabelled."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 100, 3000)
    y = rng.random(x.size) < 1 / (1 + np.exp(-(x - 50) / 5))
    rows = [[f"p{i}.nii.gz", f"{a:.3f}", S.mosmed_grade(a), "yes" if b else "no"] for i, (a, b) in enumerate(zip(x, y))]
    rows += [["blank.png", "0.0", "n/a", "no"], ["unknown.png", "40.0", "CT-2", ""]]
    return _table(tmp_path / "cohort.csv", rows, ["input", "involved_pct", "grade", "extensive"]), x, y


def test_fit_and_apply_from_the_command_line_give_the_library_s_answer(cohort, tmp_path, capsys):
    """The fit on the table is the library's fit on the same patients (thresholds near the known 46.5 and 53.5);
    applied to a results table, each row gets its bin's P and class, a row without lung n/a, the other columns
    as they were; nothing is overwritten."""
    table, x, y = cohort
    assert main(["calibrate", "fit", str(table), "--out", str(tmp_path / "cal.json")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"fitted on 3000 patient(s), {int(y.sum())} extensive; 1 left out (not assessed); 1 left "
                          "out (unlabelled)")
    ref = S.fit_extent_calibration(np.round(x, 3), y)
    cal = S.ExtentCalibration.load(tmp_path / "cal.json")
    assert (cal.t_ab_pct, cal.t_bc_pct) == (ref.t_ab_pct, ref.t_bc_pct)
    assert cal.t_ab_pct == pytest.approx(50 + 5 * math.log(0.5), abs=2) and cal.t_bc_pct == pytest.approx(
        50 + 5 * math.log(2), abs=2)
    assert np.allclose(cal.p_smooth, ref.p_smooth, atol=1e-6) and (cal.n_patients, cal.n_extensive) == (3000, y.sum())

    results = _table(tmp_path / "results.csv", [["a.png", "5", "CT-1"], ["b.png", "49.5", "CT-2"],
                                                ["c.png", "88", "CT-4"], ["d.png", "0", "n/a"], ["e.png", "", ""]],
                     ["input", "involved_pct", "grade"])
    before = results.read_bytes()
    assert main(["calibrate", "apply", str(tmp_path / "cal.json"), str(results), "--out",
                 str(tmp_path / "classed.csv")]) == 0
    assert capsys.readouterr().out.startswith("3 row(s) classed, 2 not assessed (n/a)")
    rows = _rows(tmp_path / "classed.csv")
    assert [r["input"] for r in rows] == ["a.png", "b.png", "c.png", "d.png", "e.png"]
    assert [r["cohort_class"] for r in rows] == ref.predict_class([5, 49.5, 88]) + ["n/a", "n/a"]
    assert [r["cohort_p_extensive"] for r in rows] == [f"{p:.4f}" for p in ref.predict_proba([5, 49.5, 88])] + ["", ""]
    assert rows[1]["grade"] == "CT-2" and results.read_bytes() == before

    for args in (["apply", str(tmp_path / "cal.json"), str(results), "--out", str(results)],
                 ["apply", str(tmp_path / "cal.json"), str(results), "--out", str(tmp_path / "classed.csv")],
                 ["fit", str(table), "--out", str(tmp_path / "cal.json")]):
        written = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
        assert main(["calibrate"] + args) == 2
        assert "exists; give another --out (nothing is overwritten)" in capsys.readouterr().err
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == written


@pytest.mark.parametrize("edit, said", [
    (lambda rows: [r[:3] for r in rows], "has no extensive column (columns: input, involved_pct, grade)"),
    (lambda rows: [r[:3] + ["maybe"] for r in rows], "line 2: extensive 'maybe', expected 1/0, yes/no or true/false"),
    (lambda rows: [[r[0], "12,5", r[2], r[3]] for r in rows], "line 2: involved_pct '12,5' is not a number"),
    (lambda rows: [[r[0], "140", r[2], r[3]] for r in rows], "line 2: involved_pct 140 is outside 0-100"),
    (lambda rows: [r[:3] + ["no"] for r in rows], "all 4 patients are labelled not extensive"),
    (lambda rows: [[r[0], f"{float(r[1]) / 100:g}", r[2], r[3]] for r in rows],
     "every involvement is at most 1 % (largest 0.9), yet 2 patient(s) are labelled extensive"),
    (lambda rows: rows[:1], "need at least two patients"),
    (lambda rows: [r + ["3"] for r in rows], "has more than one column named involved_pct, expected each column once"),
])
def test_a_table_the_fit_cannot_use_is_one_line_naming_it(tmp_path, capsys, edit, said):
    rows = [[f"p{i}", str(v), "CT-2", str(int(v >= 50))] for i, v in enumerate((10, 40, 60, 90))]
    columns = ["input", "involved_pct", "grade", "extensive", "involved_pct"]  # the last: a column pasted twice
    table = _table(tmp_path / "t.csv", edit(rows), columns[:len(edit(rows)[0])])
    assert main(["calibrate", "fit", str(table), "--out", str(tmp_path / "cal.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {table}: ") and said in err and err.count("\n") == 1
    assert not (tmp_path / "cal.json").exists()


def test_a_table_saved_by_a_spreadsheet_and_other_label_columns_are_read(tmp_path):
    """Excel's UTF-8 CSV starts with a byte-order mark; labels may be true/false or 1/0 in a column of any name."""
    from ctmodels import cohort

    path = tmp_path / "t.csv"
    path.write_text("\ufeffinvolved_pct,severe\n10,FALSE\n60,TRUE\n70,1\n", encoding="utf-8")
    x, y, left = cohort.read_cohort(path, label="severe")
    assert x.tolist() == [10, 60, 70] and y.tolist() == [False, True, True] and left == {"not_assessed": 0,
                                                                                           "unlabelled": 0}


def test_a_calibration_file_is_checked_when_loaded(tmp_path):
    cal = S.fit_extent_calibration(np.linspace(0, 100, 500), np.linspace(0, 100, 500) >= 60)
    good = cal.save(tmp_path / "cal.json")
    assert S.ExtentCalibration.load(good).predict_class([10, 90]) == ["A", "C"]
    d = json.loads(good.read_text())
    for name, edit in (("falling", lambda d: d["p_smooth"].reverse()), ("short", lambda d: d["p_smooth"].pop()),
                       ("order", lambda d: d.update(t_ab_pct=80.0, t_bc_pct=20.0)),
                       ("above_one", lambda d: d["p_smooth"].__setitem__(-1, 1.5))):
        bad = json.loads(json.dumps(d))
        edit(bad)
        (tmp_path / f"{name}.json").write_text(json.dumps(bad))
        with pytest.raises(InvalidInputError, match=f"{name}.json: holds an impossible calibration"):
            S.ExtentCalibration.load(tmp_path / f"{name}.json")
    (tmp_path / "other.json").write_text(json.dumps({"t_ab_pct": 1}))
    with pytest.raises(InvalidInputError, match="not an extent calibration"):
        S.ExtentCalibration.load(tmp_path / "other.json")


def test_no_involvement_gets_no_probability_or_class():
    """NaN (no lung found) was given the first bin's P and class C (NaN < threshold is false)."""
    cal = S.fit_extent_calibration(np.linspace(0, 100, 500), np.linspace(0, 100, 500) >= 60)
    p = cal.predict_proba([float("nan"), 90.0])
    assert math.isnan(p[0]) and p[1] == pytest.approx(1.0)
    assert cal.predict_class([float("nan"), 10.0]) == [S.NOT_ASSESSED, "A"]


def test_the_fit_can_be_drawn_and_its_chart_is_checked_before_the_fit(cohort, tmp_path, capsys):
    """--chart draws the fit (PNG or SVG, its thresholds in the title); a chart name that exists, is not a chart
    file or is the --out calibration is refused before anything is written."""
    table, _, _ = cohort
    assert main(["calibrate", "fit", str(table), "--out", str(tmp_path / "cal.json"), "--chart",
                 str(tmp_path / "fit.svg")]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"written to {tmp_path / 'cal.json'} and {tmp_path / 'fit.svg'}")
    cal = S.ExtentCalibration.load(tmp_path / "cal.json")
    svg = (tmp_path / "fit.svg").read_text()
    assert svg.startswith("<svg") and f"A below {cal.t_ab_pct:g} %, C from {cal.t_bc_pct:g} %" in svg
    assert main(["calibrate", "fit", str(table), "--out", str(tmp_path / "cal2.json"), "--chart",
                 str(tmp_path / "fit.png")]) == 0
    assert (tmp_path / "fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    for chart, said in (("fit.png", "exists; give another --chart"), ("fit.txt", "is not a chart file name"),
                        ("new.html", "is also the --out calibration")):
        out = tmp_path / ("new.html" if chart == "new.html" else "cal3.json")
        written = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
        assert main(["calibrate", "fit", str(table), "--out", str(out), "--chart", str(tmp_path / chart)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {tmp_path / chart}: {said}") and err.count("\n") == 1
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == written


def test_a_chart_that_cannot_be_written_leaves_no_calibration_without_it(cohort, tmp_path, capsys, monkeypatch):
    """The calibration was written before its chart: a chart that could not be written (a full disk) left cal.json
    there, so that the same command run again stopped at "exists". Both are written, or neither."""
    import errno

    import altair as alt

    table, _, _ = cohort

    def full(self, fp, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(alt.LayerChart, "save", full)
    monkeypatch.setattr(alt.Chart, "save", full)
    args = ["calibrate", "fit", str(table), "--out", str(tmp_path / "cal.json"), "--chart", str(tmp_path / "fit.png")]
    assert main(args) == 2
    assert capsys.readouterr().err == f"error: {tmp_path}: could not write fit.png: No space left on device\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort.csv"]
    monkeypatch.undo()
    assert main(args) == 0 and (tmp_path / "cal.json").exists() and (tmp_path / "fit.png").exists()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_synthetic_cohort_has_the_answer_it_is_made_with(seed):
    """The app's example cohort: measured = true + N(0, 6) points, extensive where true >= 50, so P(extensive | x)
    ~ Phi((x - 50) / 6) and the classes holding the most area change where P = 1/3 and 2/3 (47.4 % and 52.6 %)."""
    from statistics import NormalDist

    from ctmodels import cohort, examples

    rows = examples.labelled_cohort(seed=seed)
    cal, left = cohort.fit_rows(cohort.Table.of(rows), "example")
    sd = examples.COHORT_ERROR_SD
    assert cal.n_patients == 1000 and left == {"not_assessed": 0, "unlabelled": 0}
    assert cal.t_ab_pct == pytest.approx(50 + sd * NormalDist().inv_cdf(1 / 3), abs=3)
    assert cal.t_bc_pct == pytest.approx(50 + sd * NormalDist().inv_cdf(2 / 3), abs=3)
    assert cal.predict_proba([20])[0] < 0.05 and cal.predict_proba([80])[0] > 0.95
    assert all(r["grade"] == S.mosmed_grade(float(r["involved_pct"])) for r in rows)


def test_tables_and_calibrations_are_read_from_bytes_as_from_files(cohort, tmp_path):
    """What the app does with uploads: the same rows, fit, classes and CSV as the files give, and errors name the
    upload."""
    from ctmodels import cohort as C

    table, _, _ = cohort
    read = C.parse_table(table.read_bytes(), "upload.csv", (C.INVOLVED, C.LABEL))
    cal, left = C.fit_rows(read, "upload.csv")
    ref, ref_left = C.fit_table(table, tmp_path / "cal.json")
    assert (cal.t_ab_pct, cal.t_bc_pct, left) == (ref.t_ab_pct, ref.t_bc_pct, ref_left)
    assert S.ExtentCalibration.from_json(cal.to_json().encode(), "c.json").as_dict() == ref.as_dict()
    C.classed_rows(cal, read, "upload.csv")
    C.apply_table(ref, table, tmp_path / "classed.csv")
    assert read.csv().encode() == (tmp_path / "classed.csv").read_bytes()
    with pytest.raises(InvalidInputError, match="^upload.csv: has no extensive column"):
        C.parse_table(b"involved_pct\n3\n", "upload.csv", (C.INVOLVED, C.LABEL))
    with pytest.raises(InvalidInputError, match="^upload.csv: has more than one column named x, expected each"):
        C.parse_table(b"involved_pct,x,x,,\n1,2,3,,\n", "upload.csv")  # classed, it would lose a column x
    assert C.parse_table(b"involved_pct,,\n1,,\n", "upload.csv").rows == [{"involved_pct": "1", "": ""}]
    with pytest.raises(InvalidInputError, match="^upload.csv: could not be read"):
        C.parse_table(b"involved_pct\n\xff\x00bad\n", "upload.csv")
    with pytest.raises(InvalidInputError, match="^c.json: not readable JSON"):
        S.ExtentCalibration.from_json(b"\x89PNG", "c.json")


@pytest.mark.parametrize("encoding, delimiter, comma", [("utf-8-sig", ";", True), ("utf-16", "\t", True),
                                                       ("utf-8", ";", False), ("utf-8", ",", False)])
def test_a_table_saved_by_a_spreadsheet_with_decimal_commas_is_read_and_written_back_so(tmp_path, capsys, encoding,
                                                                                          delimiter, comma):
    """A spreadsheet set to a language with a decimal comma saves CSV with ';' between values ("12,5"), or as
    "Unicode text" (UTF-16, tabs): such a table gives the fit a comma-separated one does, and the classed table
    comes back as it was written (its delimiter, decimal mark and values), with the two columns added."""
    x = np.linspace(0.25, 99.75, 400)
    num = (lambda v: f"{v:.2f}".replace(".", ",")) if comma else (lambda v: f"{v:.2f}")
    lines = [delimiter.join(["input", "involved_pct", "grade", "extensive"])]
    lines += [delimiter.join([f'"Patient {i}, left"', num(v), S.mosmed_grade(v), num(float(v >= 55))])
              for i, v in enumerate(x)]  # a value holding a comma is quoted, as spreadsheets write it
    table = tmp_path / "t.csv"
    table.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    ref = S.fit_extent_calibration(np.round(x, 2), x >= 55)
    assert main(["calibrate", "fit", str(table), "--out", str(tmp_path / "cal.json")]) == 0
    cal = S.ExtentCalibration.load(tmp_path / "cal.json")
    assert (cal.t_ab_pct, cal.t_bc_pct, cal.n_patients) == (ref.t_ab_pct, ref.t_bc_pct, 400)
    assert main(["calibrate", "apply", str(tmp_path / "cal.json"), str(table), "--out", str(tmp_path / "o.csv")]) == 0
    raw = (tmp_path / "o.csv").read_bytes()  # in the table's encoding: a spreadsheet opens it as it saved it
    bom = {"utf-8-sig": codecs.BOM_UTF8, "utf-16": codecs.BOM_UTF16, "utf-8": b""}[encoding]
    assert raw.startswith(bom) and raw.decode(encoding).startswith("input")
    assert bom or not raw.startswith(codecs.BOM_UTF8)
    out = list(csv.reader(io.StringIO(raw.decode(encoding), newline=""), delimiter=delimiter))
    assert out[0] == ["input", "involved_pct", "grade", "extensive", "cohort_p_extensive", "cohort_class"]
    p = f"{float(ref.predict_proba([x[1]])[0]):.4f}"
    assert out[2] == ["Patient 1, left", num(x[1]), S.mosmed_grade(x[1]), num(0), p.replace(".", ",") if comma else p,
                      ref.predict_class([x[1]])[0]]
    assert [r[3] for r in out[1:]] == [num(float(v >= 55)) for v in x]  # labels "1,00" and "0,00" as written


def test_segment_s_out_folder_can_be_given_for_its_results_csv(cohort, tmp_path, capsys):
    """calibrate reads results.csv from the folder segment wrote it into; a folder without one is one line."""
    table, _, _ = cohort
    (tmp_path / "seg").mkdir()
    (tmp_path / "seg" / "results.csv").write_bytes(table.read_bytes())
    assert main(["calibrate", "fit", str(tmp_path / "seg"), "--out", str(tmp_path / "a.json")]) == 0
    assert main(["calibrate", "fit", str(table), "--out", str(tmp_path / "b.json")]) == 0
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert main(["calibrate", "apply", str(tmp_path / "a.json"), str(tmp_path / "seg"), "--out",
                 str(tmp_path / "c.csv")]) == 0
    capsys.readouterr()
    assert main(["calibrate", "apply", str(tmp_path / "a.json"), str(tmp_path), "--out", str(tmp_path / "d.csv")]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path}: is a folder without a results.csv, expected a CSV with an "
                                       "involved_pct column (ctmodels segment's results.csv), or the folder ctmodels "
                                       "segment wrote it into\n")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_a_table_s_bytes_come_back_in_its_encoding_for_the_app_s_download(encoding):
    """The Cohort classes page offers the classed table as Table.data(): a spreadsheet's UTF-16 "Unicode text"
    comes back as UTF-16 (before: UTF-8, which a spreadsheet opening it as it saved it shows garbled)."""
    from ctmodels import cohort as C

    text = "input\tinvolved_pct\textensive\r\nMüller, Ådne\t12,5\t0\r\nb\t70,0\t1\r\n"
    table = C.parse_table(text.encode(encoding), "t.txt")
    assert table.encoding == encoding
    data = table.data()
    assert data == table.csv().encode(encoding) and data.decode(encoding).splitlines()[1].startswith("Müller")
    assert data.startswith({"utf-8-sig": codecs.BOM_UTF8, "utf-16": codecs.BOM_UTF16, "utf-8": b""}[encoding])
