"""CSV tables kept across runs: the triage report and segment's results.csv.

A run reads the rows an earlier run left (:func:`earlier_rows`), adds its own, and writes the table whole and
atomically (:func:`write_rows`: a temporary file beside it, flushed, then renamed over it), so that a run killed
while writing leaves the earlier table whole. A long run may also add rows one at a time (:func:`append_row`, one
write of one line, flushed): a row a killed run left cut short is dropped when the table is read. A file of that
name that is not such a table is the user's: it is an error, and it is not overwritten.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import uuid
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Type

from .atomic import PARTIAL
from .errors import CTModelsError

log = logging.getLogger(__name__)



def earlier_rows(path: Path, required: Sequence[str], what: str, elsewhere: str,
                 error: Type[CTModelsError]) -> List[Dict[str, str]]:
    """The rows of the table at ``path`` (none where there is none, or it is empty). A table that cannot be read
    or lacks a ``required`` column raises ``error``, saying it is not ``what`` and to move it or use
    ``elsewhere``. Temporary files a killed write left beside it are removed."""
    path = Path(path)
    for stale in path.parent.glob(f"{PARTIAL}{path.name}-*"):
        stale.unlink()
    if path.exists() and not path.is_file():
        raise error(f"is not a file, expected {what}; give {elsewhere}", path)
    if not path.exists() or path.stat().st_size == 0:
        return []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # with or without the BOM a spreadsheet may add
            text = f.read()
        rows, fields = parse_rows(_whole_rows(text, path))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise error(f"could not be read ({exc}), expected {what}; it is not overwritten: move it, or give "
                    f"{elsewhere}", path) from None
    if not set(required) <= set(fields):
        raise error(f"is not {what} (no {', '.join(required)} columns); it is not overwritten: move it, or give "
                    f"{elsewhere}", path)
    return rows


def parse_rows(text: str, delimiter: str = ",") -> Tuple[List[Dict[str, str]], List[str]]:
    """The rows of CSV ``text`` (each a dict of its columns; a missing value is "", values beyond the header are
    dropped) and its columns. ``csv.Error`` where it is not CSV."""
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = [{k: v or "" for k, v in r.items() if k is not None} for r in reader]
    return rows, list(reader.fieldnames or [])


def _whole_rows(text: str, path: Path) -> str:
    """``text`` less a last row cut short (a run killed while adding it, or a disk full): one with no line end
    that has an open quote or fewer fields than the header. A whole last row saved without a line end (by an
    editor) is kept."""
    if not text or text.endswith("\n"):
        return text
    head, _, last = text.rpartition("\n")
    if not head:  # the header alone
        return text
    header = next(csv.reader([text.split("\n", 1)[0]]), [])
    try:
        parsed = next(csv.reader([last], strict=True), [])
    except csv.Error:
        parsed = []
    if last.count('"') % 2 == 0 and len(parsed) >= len(header):
        return text + "\n"
    log.warning("%s: a row cut short at the end is dropped", path.name)
    return head + "\n"


def all_columns(rows: Sequence[Dict[str, object]], fields: Sequence[str]) -> List[str]:
    """``fields``, then any other column a row has, in the order they first come."""
    columns = list(fields)
    for r in rows:
        columns += [k for k in r if k not in columns]
    return columns


def csv_text(rows: Sequence[Dict[str, object]], fields: Sequence[str], delimiter: str = ",") -> str:
    """``rows`` as CSV text with the columns of :func:`all_columns`; a row without a column leaves it empty."""
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=all_columns(rows, fields), restval="", delimiter=delimiter)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_rows(path: Path, rows: Sequence[Dict[str, object]], fields: Sequence[str],
               delimiter: str = ",", encoding: str = "utf-8") -> List[str]:
    """``rows`` to ``path`` atomically, with ``fields`` first, then any other column a row has (an earlier run's
    patient columns, or columns of another version); a row without a column leaves it empty. Returns the columns
    written, for :func:`append_row` (which writes UTF-8: a table it adds to is written in UTF-8)."""
    path = Path(path)
    tmp = path.with_name(f"{PARTIAL}{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "w", newline="", encoding=encoding) as f:
            f.write(csv_text(rows, fields, delimiter))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return all_columns(rows, fields)


def append_row(path: Path, row: Dict[str, object], columns: Sequence[str]) -> None:
    """Add ``row`` at the end of the table at ``path``, whose header is ``columns`` (as :func:`write_rows` wrote
    it): one write of one line, flushed to disk. Columns the row lacks are left empty; others are not written."""
    line = io.StringIO(newline="")
    csv.DictWriter(line, fieldnames=list(columns), restval="", extrasaction="ignore").writerow(row)
    with open(path, "a", newline="", encoding="utf-8") as f:
        f.write(line.getvalue())
        f.flush()
        os.fsync(f.fileno())
