"""A cohort's own extent calibration from tables: fit it on labelled patients, apply it to results.

:func:`read_cohort` reads a CSV of patients: ``ctmodels segment``'s ``results.csv`` with a column added that says
whether each patient's disease was extensive (``1``/``0``, ``yes``/``no``, ``true``/``false``), or any CSV with
``involved_pct`` and such a column. :func:`fit_table` fits :func:`ctmodels.severity.fit_extent_calibration` on it;
:func:`apply_table` writes a results table again with the calibration's ``cohort_p_extensive`` and
``cohort_class`` added. A row whose involvement was not assessed (``involved_pct`` empty, or ``grade`` n/a: no lung
found, where segment writes 0 % by definition) is left out of the fit and gets no probability; a row without a
label is left out of the fit. Both are counted in what the functions return. Nothing is overwritten.

A table is read as a spreadsheet may save it (:func:`parse_table`: values separated by commas, or by ``;`` or tabs
with decimal commas or points; UTF-8 with or without a byte-order mark, or UTF-16) and written back the same way
(delimiter, decimal mark, encoding); the app passes uploads' bytes to
:func:`parse_table`, :func:`fit_rows` and :func:`classed_rows`.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from . import ledger
from .errors import InvalidInputError
from .severity import NOT_ASSESSED, ExtentCalibration, fit_extent_calibration

log = logging.getLogger(__name__)

INVOLVED = "involved_pct"
LABEL = "extensive"
ADDED = ("cohort_p_extensive", "cohort_class")
YES, NO = {"1", "1.0", "true", "yes", "y"}, {"0", "0.0", "false", "no", "n"}
CHART_SUFFIXES = (".png", ".svg", ".html")
RESULTS = "results.csv"  # what segment writes in its --out folder
TABLE = "a CSV with an involved_pct column (ctmodels segment's results.csv)"


@dataclass
class Table:
    """A table's rows (each a dict of its column's text), its columns, and how it was written: the delimiter
    (``,``; or ``;`` or a tab, as spreadsheets set to a language with a decimal comma save CSV), and whether its
    numbers have a decimal comma (a delimiter other than a comma, and an involvement written with one), and its
    encoding (``utf-8``; ``utf-8-sig`` with the byte-order mark a spreadsheet writes; ``utf-16``, a spreadsheet's
    "Unicode text")."""

    rows: List[Dict[str, str]]
    columns: List[str]
    delimiter: str = ","
    decimal_comma: bool = False
    encoding: str = "utf-8"

    @classmethod
    def of(cls, rows: List[Dict[str, str]]) -> "Table":
        """A comma-separated table of these rows (their first row's columns)."""
        return cls(rows, list(rows[0]) if rows else [])

    def copy(self) -> "Table":
        return Table([dict(r) for r in self.rows], list(self.columns), self.delimiter, self.decimal_comma,
                     self.encoding)

    def number(self, text: str) -> str:
        """A number as this table writes it."""
        return text.replace(".", ",") if self.decimal_comma else text

    def csv(self) -> str:
        """The table as CSV text, written as it was read (delimiter, decimal mark), with any added column last."""
        return ledger.csv_text(self.rows, self.columns, self.delimiter)

    def data(self) -> bytes:
        """:meth:`csv` in the table's encoding (a spreadsheet's UTF-16 "Unicode text" back as UTF-16 with its
        byte-order mark, so that the spreadsheet opens it as it saved it)."""
        return self.csv().encode(self.encoding)


def _read(path: Path, required: Tuple[str, ...]) -> Table:
    path = Path(path)
    if path.is_dir():  # segment's --out folder: its results.csv
        if not (path / RESULTS).is_file():
            raise InvalidInputError(f"is a folder without a {RESULTS}, expected {TABLE}, or the folder ctmodels "
                                    "segment wrote it into", path)
        path = path / RESULTS
    if not path.is_file():
        raise InvalidInputError(f"{'not a file' if path.exists() else 'no such file'}, expected {TABLE}", path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"could not be read ({exc}), expected {TABLE}", path) from None
    return parse_table(text, path, required)


def _text(data: bytes) -> Tuple[str, str]:
    """The text and its encoding: UTF-8 with or without the byte-order mark a spreadsheet adds (``utf-8-sig``,
    ``utf-8``), or UTF-16 with its mark ("Unicode text")."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16"), "utf-16"
    return data.decode("utf-8-sig"), "utf-8-sig" if data[:3] == b"\xef\xbb\xbf" else "utf-8"


def _delimiter(text: str) -> str:
    """The delimiter that makes an involved_pct column of the first line: a comma, else ``;`` or a tab; a comma
    where none does (the error then lists the columns)."""
    first = text.lstrip("\r\n").split("\n", 1)[0]
    for d in (",", ";", "\t"):
        if INVOLVED in [c.strip() for c in next(csv.reader([first], delimiter=d), [])]:
            return d
    return ","


def parse_table(data: bytes, source, required: Tuple[str, ...] = (INVOLVED,)) -> Table:
    """The table in a CSV file's bytes (an upload, or a file's), checked to have the ``required`` columns and a
    row; ``source`` names it in errors. Comma-separated, or separated by ``;`` or tabs (with decimal commas or
    points)."""
    try:
        text, encoding = _text(data)
        delimiter = _delimiter(text)
        rows, columns = ledger.parse_rows(text, delimiter)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInputError(f"could not be read ({exc}), expected {TABLE}", source) from None
    twice = sorted({c for c in columns if c.strip() and columns.count(c) > 1})
    if twice:  # csv would keep the last one's values only: a fit on the wrong column, or a column lost
        raise InvalidInputError(f"has more than one column named {' and more than one named '.join(twice)}, "
                                "expected each column once", source)
    missing = [c for c in required if c not in columns]
    if missing:
        raise InvalidInputError(f"has no {' or '.join(missing)} column (columns: {', '.join(columns) or 'none'}), "
                                f"expected {TABLE}" + (f" and a column {required[1]} of 1/0 labels"
                                                       if len(required) > 1 else ""), source)
    if not rows:
        raise InvalidInputError(f"has no rows, expected {TABLE}", source)
    return Table(rows, columns, delimiter, delimiter != "," and any("," in r.get(INVOLVED, "") for r in rows),
                 encoding)


def involvement_of(row: Dict[str, str], line: int, path: Path, decimal_comma: bool = False) -> Optional[float]:
    """The row's involvement (%), or None where it was not assessed (empty, or graded n/a)."""
    if row.get("grade", "").strip() == NOT_ASSESSED:
        return None
    text = row.get(INVOLVED, "").strip()
    if not text:
        return None
    try:
        v = float(text.replace(",", ".") if decimal_comma else text)
    except ValueError:
        raise InvalidInputError(f"line {line}: {INVOLVED} {text!r} is not a number, expected a % of lung "
                                "(0-100)", path) from None
    if not 0 <= v <= 100:
        raise InvalidInputError(f"line {line}: {INVOLVED} {text} is outside 0-100, expected a % of lung", path)
    return v


def label_of(row: Dict[str, str], column: str, line: int, path: Path, decimal_comma: bool = False) -> Optional[bool]:
    text = row.get(column, "").strip()
    if decimal_comma:
        text = text.replace(",", ".")  # "1,0"
    if not text:
        return None
    if text.lower() in YES | NO:
        return text.lower() in YES
    try:
        if float(text) in (0.0, 1.0):  # "1.00", as a spreadsheet may format the column
            return float(text) == 1.0
    except ValueError:
        pass
    raise InvalidInputError(f"line {line}: {column} {text!r}, expected 1/0, yes/no or true/false", path)


def read_cohort(path: Path, label: str = LABEL) -> Tuple[np.ndarray, np.ndarray, Dict[str, int]]:
    """Involvement (%) and label of each patient of the table at ``path`` with both, and how many rows were left
    out: ``{"not_assessed": ..., "unlabelled": ...}`` (a row counts once, as not assessed where it is both)."""
    return cohort_of(_read(Path(path), (INVOLVED, label)), label, path)


def cohort_of(table: Table, label: str, source) -> Tuple[np.ndarray, np.ndarray, Dict[str, int]]:
    """:func:`read_cohort` of a table already read (:func:`parse_table`)."""
    x, y, left = [], [], {"not_assessed": 0, "unlabelled": 0}
    for line, row in enumerate(table.rows, start=2):  # the header is line 1
        v = involvement_of(row, line, source, table.decimal_comma)
        is_extensive = label_of(row, label, line, source, table.decimal_comma)
        if v is None:
            left["not_assessed"] += 1
        elif is_extensive is None:
            left["unlabelled"] += 1
        else:
            x.append(v)
            y.append(is_extensive)
    return np.array(x, float), np.array(y, bool), left


def fit_rows(table: Table, source, label: str = LABEL, window: int = 11,
             polyorder: int = 2) -> Tuple[ExtentCalibration, Dict[str, int]]:
    """The calibration fitted on the labelled rows of a table (:func:`parse_table`), and the rows left out."""
    x, y, left = cohort_of(table, label, source)
    try:
        return fit_extent_calibration(x, y, window=window, polyorder=polyorder), left
    except InvalidInputError as exc:
        raise InvalidInputError(str(exc), source) from None


def fit_table(path: Path, out: Path, label: str = LABEL, window: int = 11, polyorder: int = 2,
              chart: Optional[Path] = None) -> Tuple[ExtentCalibration, Dict[str, int]]:
    """Fit the calibration on the table at ``path`` and save it to ``out`` (JSON), and its chart
    (:func:`ctmodels.charts.calibration_chart`) to ``chart`` where given (.png, .svg or .html); neither may
    exist. Both are checked before the table is read."""
    out = _new_file(out)
    if chart is not None:
        chart = _new_file(chart, "--chart")
        if chart.suffix.lower() not in CHART_SUFFIXES:
            raise InvalidInputError(f"is not a chart file name, expected one ending in {', '.join(CHART_SUFFIXES)}",
                                    chart)
        if chart.resolve() == out.resolve():
            raise InvalidInputError("is also the --out calibration; give the chart another name", chart)
    from .atomic import write_together

    cal, left = fit_rows(_read(Path(path), (INVOLVED, label)), path, label, window, polyorder)
    text = cal.to_json()
    files = {out: lambda f: f.write_text(text, encoding="utf-8")}
    if chart is not None:
        from .charts import calibration_chart

        drawn = calibration_chart(cal).properties(width=640)
        files[chart] = lambda f: drawn.save(str(f))
    write_together(files)  # both or neither: a chart that cannot be written leaves no calibration without it
    log.info("calibration fitted on %d patients written to %s", cal.n_patients, out)
    return cal, left


def classed_rows(cal: ExtentCalibration, table: Table, source) -> Dict[str, int]:
    """Add ``cohort_p_extensive`` (4 decimals, with the table's decimal mark) and ``cohort_class`` to each row of
    the table, in place, and to its columns: empty and n/a where the involvement was not assessed. Returns how many
    rows got a class and how many did not."""
    done = {"classed": 0, "not_assessed": 0}
    for line, row in enumerate(table.rows, start=2):
        v = involvement_of(row, line, source, table.decimal_comma)
        if v is None:
            row[ADDED[0]], row[ADDED[1]] = "", NOT_ASSESSED
            done["not_assessed"] += 1
        else:
            row[ADDED[0]] = table.number(f"{float(cal.predict_proba([v])[0]):.4f}")
            row[ADDED[1]] = cal.predict_class([v])[0]
            done["classed"] += 1
    table.columns = [c for c in table.columns if c not in ADDED] + list(ADDED)
    return done


def apply_table(cal: ExtentCalibration, path: Path, out: Path) -> Dict[str, int]:
    """The table at ``path`` written to ``out`` (which must not exist) as it was read (delimiter, decimal mark,
    encoding), with the calibration's columns added (:func:`classed_rows`); the other columns as they were."""
    out = _new_file(out)
    table = _read(Path(path), (INVOLVED,))
    done = classed_rows(cal, table, path)
    ledger.write_rows(out, table.rows, table.columns, table.delimiter, table.encoding)
    return done


def _new_file(out: Path, flag: str = "--out") -> Path:
    """``out`` where it can be written without replacing anything (the table read, say): its folder exists and it
    does not."""
    out = Path(out)
    if out.exists():
        raise InvalidInputError(f"exists; give another {flag} (nothing is overwritten)", out)
    if not out.parent.is_dir():
        raise InvalidInputError("no such folder to write into", out.parent)
    return out
