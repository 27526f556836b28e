"""Batch breath-hold QA over a folder of studies, with crash-safe sorting.

One study per subfolder, zip, or volume file (NIfTI, NRRD, .npy, single DICOM file) directly
inside the input folder; names starting with '.' are ignored. Loose DICOM files that share a series are
slices, not studies, and subfolders that share a StudyInstanceUID are series of one study: they, links (not
followed) and other files are reported as not checked and left alone.

Moving a study is: copy into ``<target>/.ctmodels-partial-<name>-<token>``, flush, verify every
file (size and SHA-256) against the source, rename atomically to ``<target>/<name>``, then
rename the source to ``<input>/.ctmodels-trash-<name>`` and delete that. Nothing is overwritten:
a target that exists with other content is a conflict and the study stays where it is. A run
killed at any point and run again finishes the job: partial copies are removed and redone, a
finished copy whose source still exists is verified and the source removed, leftover trash is
removed once its copy is verified. ``dry_run`` only plans.

The report (``report.csv``) is the batch's ledger, kept across runs. A run first writes the earlier rows back,
merged (atomically), then adds each study's row as it goes: marked unfinished before the study is placed, and
again once it is placed, so that a killed run leaves a row for every study it checked; at its end it writes the
report merged again. A re-run keeps the rows of earlier runs, marks as finished the moves it finished for them,
and replaces the row of a study it checks again (one left in place, or one copied; the same name in the same
input folder): see :func:`merge_rows`. The chart counts every row. A report.csv that is not a triage report is an
error, and is not overwritten.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import shutil
import time
import uuid
from collections import Counter
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from . import ledger
from .io import DETACHED_HEADERS, VOLUME_SUFFIXES
from .errors import CTModelsError, EmptyInputError, InvalidInputError, TriageError
from .atomic import PARTIAL, write_together

log = logging.getLogger(__name__)

STUDIES_FOLDER = "a folder with one study per subfolder or file"  # what triage reads

TRASH = ".ctmodels-trash-"
# a study each; not headers whose voxels lie in a file of their own (NRRD .nhdr, MetaImage .mhd): moved alone, the
# pair would break
STUDY_FILE_SUFFIXES = (".zip", ".dcm") + tuple(s for s in VOLUME_SUFFIXES if s not in DETACHED_HEADERS)


@dataclass
class FolderScan:
    """What lies directly inside a folder of studies: ``studies`` (subfolders, zips, volume files and
    single-file DICOM studies), ``slices`` (loose DICOM files that are slices of one multi-file series:
    a series laid out flat, not a study each), ``series`` (subfolders that hold series of one study, as
    a PACS export lays a study out: the folder above them is the study), ``other`` (other files), ``links``
    (symbolic links, not followed: what they point to lies outside the folder, and is neither checked nor moved)
    and ``headers`` (``.nhdr`` and ``.mhd`` files, whose voxels lie in another file: a study only in a subfolder
    with its data file, so that the two are moved together)."""

    studies: List[Path]
    slices: List[Path]
    other: List[Path]
    series: List[Path] = field(default_factory=list)
    links: List[Path] = field(default_factory=list)
    headers: List[Path] = field(default_factory=list)

    def notes(self) -> List[str]:
        """One line per kind of entry that is not checked."""
        out = []
        if self.slices:
            out.append(f"{len(self.slices)} loose DICOM file(s) ({_names(self.slices)}): slices of a series, not "
                       "studies; put each series in its own subfolder to check it as a study")
        if self.series:
            out.append(f"{len(self.series)} subfolders ({_names(self.series)}) hold series of one study (the same "
                       "StudyInstanceUID): put them in one folder to check them as one study")
        if self.other:
            out.append(f"{len(self.other)} file(s) that are not studies ({_names(self.other)}): expected "
                       "subfolders, zips or volume files")
        if self.headers:
            out.append(f"{len(self.headers)} header file(s) ({_names(self.headers)}) whose voxels lie in another "
                       "file: put each with its data file in a subfolder of its own to check it as a study")
        if self.links:
            out.append(f"{len(self.links)} link(s) ({_names(self.links)}): links are not followed, so that nothing "
                       "outside the folder is moved; put the study itself in the folder to check it")
        return out


def _names(paths: List[Path], first: int = 3) -> str:
    names = [p.name for p in paths[:first]]
    return ", ".join(names) + (f" and {len(paths) - first} more" if len(paths) > first else "")


def _header_uid(p: Path, keyword: str) -> Optional[str]:
    """The UID ``keyword`` of a DICOM file's header, or None (unreadable, or no such UID)."""
    from .dicom import malformed_errors, read_header

    ds = read_header(p)
    if ds is None:  # an unreadable file is a study of its own, which read_ct then explains
        return None
    try:
        return str(ds.get(keyword, "")) or None
    except malformed_errors():  # a value that does not decode: as unreadable
        return None


def _study_uid(folder: Path, tries: int = 20) -> Optional[str]:
    """The StudyInstanceUID of the first readable DICOM file below ``folder`` (None: none in ``tries`` files)."""
    from .dicom import is_dicom_file

    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for f in sorted(files):
            p = Path(root) / f
            if f.startswith(".") or f.upper() == "DICOMDIR" or not is_dicom_file(p):
                continue
            uid = _header_uid(p, "StudyInstanceUID")
            if uid:
                return uid
            tries -= 1
            if tries <= 0:
                return None
    return None


def _sharing(paths: List[Path], uid_of: Callable[[Path], Optional[str]]) -> List[Path]:
    """The paths whose UID (``uid_of``; None: no UID) at least one other of ``paths`` has too."""
    if len(paths) < 2:
        return []
    uids = {p: uid_of(p) for p in paths}
    counts = Counter(u for u in uids.values() if u)
    return [p for p in paths if counts.get(uids[p], 0) > 1]


def scan_folder(folder: Path) -> FolderScan:
    """Sort the entries directly inside ``folder`` by name; names starting with '.' and macOS's ``__MACOSX``
    folder of zip metadata are ignored, and links are listed, not followed."""
    from .dicom import has_dicom_preamble
    from .io import input_folder

    folder = input_folder(folder, STUDIES_FOLDER)
    studies, other, dicoms, links, headers = [], [], [], [], []
    for p in sorted(folder.iterdir(), key=lambda q: q.name):
        if p.name.startswith(".") or p.name == "__MACOSX":
            continue
        if p.is_symlink():
            links.append(p)
            continue
        name = p.name.lower()
        if p.is_file() and (name.endswith(".dcm") or (not name.endswith(STUDY_FILE_SUFFIXES) and name != "dicomdir"
                                                      and has_dicom_preamble(p))):
            dicoms.append(p)  # .dcm, or a DICOM file by its marker (PACS exports often have no suffix)
        elif p.is_dir() or (p.is_file() and name.endswith(STUDY_FILE_SUFFIXES)):
            studies.append(p)
        elif p.is_file() and name.endswith(DETACHED_HEADERS):
            headers.append(p)
        elif p.is_file():
            other.append(p)
    slices = _sharing(dicoms, lambda p: _header_uid(p, "SeriesInstanceUID"))  # slices of one series
    series = _sharing([p for p in studies if p.is_dir()], _study_uid)  # series folders of one study
    studies = sorted([p for p in studies if p not in series] + [p for p in dicoms if p not in slices],
                     key=lambda q: q.name)
    return FolderScan(studies, slices, other, series, links, headers)


def discover_studies(folder: Path) -> List[Path]:
    """The studies directly inside ``folder`` (sorted by name); see :func:`scan_folder`."""
    return scan_folder(folder).studies


def study_key(path: Path, study_uid: Optional[str] = None) -> str:
    """Pseudonymous key: a hash of the StudyInstanceUID (or the file name), never patient data."""
    base = study_uid or path.name
    return "S-" + hashlib.sha256(base.encode("utf-8", "surrogateescape")).hexdigest()[:12]


# ----------------------------------------------------------------------------- safe file moves
def _files(root: Path) -> Dict[str, Path]:
    if root.is_file():
        return {"": root}
    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = p
    return out


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(root: Path) -> Dict[str, Tuple[int, int, int]]:
    """Each file of a study (a folder's files, or the file) with its size, modification time (ns) and inode: what a
    study still being written (an export into the inbox while triage runs) changes. The inode tells a file replaced
    by another of the same size within the file system's time resolution (1-2 s on FAT or some shares), as exports
    that write a temporary file and rename it over the old one do; renaming the study keeps it. Cheap: no file is
    read."""
    out = {}
    for rel, p in _files(root).items():
        st = p.stat()
        out[rel] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return out


CHANGED_WHILE = ("changed while it was {} (a file added, removed or rewritten: still being written?); left in place "
                 "for a later run")
CHANGED = CHANGED_WHILE.format("checked")


def same_content(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` hold the same files with the same sizes and SHA-256."""
    fa, fb = _files(a), _files(b)
    if set(fa) != set(fb):
        return False
    for rel, pa in fa.items():
        pb = fb[rel]
        if pa.stat().st_size != pb.stat().st_size or _sha256(pa) != _sha256(pb):
            return False
    return True


def _fsync_tree(root: Path) -> None:
    for p in _files(root).values():
        with open(p, "rb+") as f:
            os.fsync(f.fileno())


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def recover(input_dir: Path, targets: List[Path]) -> List[str]:
    """Finish what a killed run left: drop partial copies, drop trash whose copy is in a target."""
    notes = []
    for t in targets:
        if t.is_dir():
            for p in t.iterdir():
                if p.name.startswith(PARTIAL):
                    _remove(p)
                    notes.append(f"removed an unfinished copy {p.name}")
    for p in Path(input_dir).iterdir():
        if not p.name.startswith(TRASH):
            continue
        name = p.name[len(TRASH):]
        done = [t / name for t in targets if (t / name).exists() and same_content(p, t / name)]
        if done:
            _remove(p)
            notes.append(f"finished removing {name} (verified copy in {done[0].parent})")
        else:  # the copy is not verified anywhere: put the study back
            back = Path(input_dir) / name
            if not back.exists():
                p.rename(back)
                notes.append(f"restored {name} to the input folder")
    return notes


def place(src: Path, target_dir: Path, move: bool, checked: Optional[Dict[str, Tuple[int, int, int]]] = None) -> str:
    """Copy (and with ``move`` delete) ``src`` into ``target_dir`` safely; returns what happened.

    ``checked``: the study's :func:`fingerprint` when it was read for its verdict. A study that differs from it
    (still being written) is not copied; one that changes while it is copied and moved is put back where it was,
    with this run's copy removed, rather than deleted with what was written into it meanwhile."""
    def changed(p: Path) -> bool:
        return checked is not None and fingerprint(p) != checked

    if changed(src):
        raise TriageError(CHANGED, src)
    target_dir.mkdir(parents=True, exist_ok=True)
    final = target_dir / src.name
    if final.exists():
        if not same_content(src, final):
            raise TriageError(f"{final} exists with different content; not overwritten", src)
        status = "already in place"
    else:
        tmp = target_dir / f"{PARTIAL}{src.name}-{uuid.uuid4().hex[:8]}"
        try:
            if src.is_dir():
                shutil.copytree(src, tmp, symlinks=True)
            else:
                shutil.copy2(src, tmp)
            _fsync_tree(tmp)
            if not same_content(src, tmp):
                raise TriageError("copy does not match the source (size or SHA-256)", src)
            os.rename(tmp, final)  # atomic on one filesystem; never replaces: final did not exist
        except OSError as exc:
            if tmp.exists():
                _remove(tmp)
            raise TriageError(f"could not copy to {target_dir}: {exc.strerror or exc}", src) from None
        except BaseException:
            if tmp.exists():
                _remove(tmp)
            raise
        status = "copied"
    if changed(src):  # written into while it was copied: no partial copy
        if status == "copied":
            _remove(final)
        raise TriageError(CHANGED_WHILE.format("copied"), src)
    if move:
        trash = src.parent / f"{TRASH}{src.name}"
        if trash.exists():
            _remove(trash)
        try:
            os.rename(src, trash)
        except OSError as exc:  # read-only source: the verified copy stays, the source is untouched
            return f"copied; source kept ({exc.strerror or exc})"
        if changed(trash):  # written into since: put back, not deleted
            if not src.exists():
                os.rename(trash, src)
            if status == "copied":
                _remove(final)
            raise TriageError(CHANGED_WHILE.format("moved") + (
                "" if src.exists() and not trash.exists() else f" (kept as {trash.name})"), src)
        _remove(trash)
        status = "moved" if status == "copied" else "moved (copy was already in place)"
    return status


# ----------------------------------------------------------------------------- the batch
def series_text(vol) -> str:
    """Which series of a DICOM study was read and why (number, then the selection's reason, which names what it
    set aside); empty for volume files, which hold one series. No UID, description or patient data."""
    why = vol.meta.extra.get("selection_reason")
    if vol.meta.format != "dicom" or not why:
        return ""
    return f"#{'-' if vol.meta.series_number is None else vol.meta.series_number}: {why}"


@dataclass
class TriageRow:
    key: str
    study: str
    verdict: str
    probability_fail: Optional[float]
    reason: str
    action: str = "none"
    destination: str = ""
    slices_mm: str = ""  # the measured slices' S coordinates ("lo..hi" mm), to find them in a viewer
    series: str = ""  # the series measured ("#number: why it was chosen, what was set aside"), for DICOM studies
    warnings: str = ""  # how the study was read (slices filled in, a tilted gantry, coronal slices...), " | " between
    figure: Optional[object] = None  # uint8 RGB trachea crop with contour, when asked for
    patient: Optional[Dict[str, str]] = None  # PatientName / PatientID, only when opted in
    folder: str = ""  # the input folder it was checked in: studies of one name in two folders are two studies

    def as_dict(self) -> Dict[str, object]:
        d = dict(self.__dict__)
        d.pop("figure")
        patient = d.pop("patient")
        if patient is not None:
            d.update(patient_name=patient.get("PatientName", ""), patient_id=patient.get("PatientID", ""))
        return d


def patient_identity(study: Path, max_files: int = 50) -> Dict[str, str]:
    """PatientName and PatientID from the first DICOM file of a study (folder, zip or file), read
    without pixel data and without extracting anything; empty for non-DICOM studies. Only called
    when a report is asked to include patient identifiers."""
    import io
    import zipfile

    from .archive import member_errors
    from .dicom import malformed_errors, read_header

    def identity(src) -> Optional[Dict[str, str]]:
        ds = read_header(src)
        try:
            return None if ds is None else {t: str(getattr(ds, t, "") or "") for t in ("PatientName", "PatientID")}
        except malformed_errors():  # a value that does not decode: as unreadable
            return None

    study = Path(study)
    try:
        if study.is_dir():
            files = (p for p in sorted(study.rglob("*")) if p.is_file() and not p.is_symlink())
            for f in itertools.islice(files, max_files):
                got = identity(f)
                if got:
                    return got
        elif study.name.lower().endswith(".zip"):
            with zipfile.ZipFile(study) as zf:
                for info in [i for i in zf.infolist() if not i.is_dir()][:max_files]:
                    if info.file_size <= 64 * 1024 * 1024:
                        got = identity(io.BytesIO(zf.read(info)))
                        if got:
                            return got
        elif study.name.lower().endswith(".dcm"):
            return identity(study) or {}
    except member_errors():  # a corrupt zip: no identity from it (its reading says what is wrong)
        pass
    return {}


@dataclass
class TriageReport:
    rows: List[TriageRow] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)  # what a re-run recovered from an interrupted one
    skipped: List[str] = field(default_factory=list)  # entries of the input folder that are not studies
    earlier: List[Dict[str, str]] = field(default_factory=list)  # rows of earlier runs in the report, kept
    files: Dict[str, Path] = field(default_factory=dict)  # the report's files, where the run wrote them

    def counts(self) -> Dict[str, int]:
        """Studies per verdict checked in this run."""
        return _counts(r.verdict for r in self.rows)

    def report_rows(self) -> List[Dict[str, object]]:
        """The report's rows: those of earlier runs, then this run's, each replacing what it supersedes
        (:func:`merge_rows`)."""
        return merge_rows(self.earlier + [r.as_dict() for r in self.rows])

    def report_counts(self) -> Dict[str, int]:
        """Studies per verdict in the report, earlier runs' included."""
        return _counts(str(r.get("verdict", "")) for r in self.report_rows())


def _counts(verdicts) -> Dict[str, int]:
    out = {"pass": 0, "fail": 0, "undetermined": 0}
    for v in verdicts:
        out[v] = out.get(v, 0) + 1
    return out


REPORT_FIELDS = ["key", "study", "folder", "verdict", "probability_fail", "reason", "slices_mm", "series", "warnings",
                 "action", "destination"]
PATIENT_FIELDS = ["patient_name", "patient_id"]
UNFINISHED = "unfinished: "  # the action of a study whose placing had begun when the report was last written


def _placed(row: Dict[str, object]) -> bool:
    """The row of a study that lies at its destination (moved or copied there)."""
    return bool(row.get("destination")) and not str(row.get("action", "")).startswith(UNFINISHED)


def _other_folder(a: Dict[str, object], b: Dict[str, object]) -> bool:
    """Rows of studies checked in two input folders (a row of a report written before the folder was recorded is
    of any folder)."""
    return bool(a.get("folder")) and bool(b.get("folder")) and a.get("folder") != b.get("folder")


def merge_rows(rows: List[Dict[str, object]]) -> List[Dict[str, object]]:
    """Report rows in the order they were written -> the report: a row replaces the earlier rows of its study
    (the same pseudonymous key and name, checked in the same input folder) that do not lie at a destination (left
    in place, or unfinished), and, once its study is placed, the row of a copy placed at the same destination before.
    The row of a study placed elsewhere, of another study of the same name that lies where this one would have gone
    (a conflict), or of a study of the same name in another input folder (two inboxes sorted into one failed
    folder), stays. Each study's row comes where it was last written."""
    by: Dict[tuple, List[Dict[str, object]]] = {}
    for r in rows:
        k = (r.get("key"), r.get("study"))
        final = not str(r.get("action", "")).startswith(UNFINISHED)
        kept = [e for e in by.pop(k, []) if _other_folder(e, r)
                or (_placed(e) and not (final and e.get("destination") == r.get("destination")))]
        by[k] = kept + [r]
    return [r for group in by.values() for r in group]


def earlier_rows(folder: Path) -> List[Dict[str, str]]:
    """The report an earlier run left in ``folder`` (none where there is none), as :func:`merge_rows` reads it. A
    report.csv that cannot be read or is not a triage report (no key, study and verdict columns) is a TriageError:
    it is the user's, and is not overwritten."""
    return merge_rows(ledger.earlier_rows(Path(folder) / "report.csv", ("key", "study", "verdict"),
                                          "a ctmodels triage report", "another report folder", TriageError))


def _finish_earlier(rows: List[Dict[str, str]], input_dir: Path) -> None:
    """Mark as finished the earlier rows whose placing a killed run left unfinished and :func:`recover` (or the
    run itself) finished: the verified copy is at the destination and the source is gone. Rows whose source is
    back in their input folder are checked again, and their new row replaces them."""
    for r in rows:
        if not r.get("action", "").startswith(UNFINISHED) or not r.get("destination"):
            continue
        source = Path(r.get("folder") or input_dir) / r.get("study", "")  # a study of another folder: its own
        if Path(r["destination"]).exists() and not source.exists():
            r["action"] = "moved (finished by a later run)"


LOCK = ".ctmodels-triage.lock"


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s triage lock (the file ``.ctmodels-triage.lock`` in it) while a run sorts it: a second run on
    the folder (an overlapping scheduled run, say) is a TriageError before it touches anything, instead of racing
    the first for the same studies and report. A killed run never leaves the folder locked; a folder where the file
    cannot be made (read-only media, copied from) is not locked: nothing there is moved (see :mod:`ctmodels.locks`)."""
    from .locks import folder_lock as held

    with held(folder, LOCK, busy=lambda: TriageError("another triage run is sorting this folder; run again once it "
                                                     "has finished", folder)):
        yield


def run_triage(input_dir: Path, failed_dir: Path, passed_dir: Optional[Path] = None, move: bool = True,
               dry_run: bool = False, checker=None, progress: Optional[Callable[[int, int, str], None]] = None,
               undetermined_dir: Optional[Path] = None, keep_figures: bool = False,
               include_patient_ids: bool = False, report_dir: Optional[Path] = None,
               settle_s: float = 0.0) -> TriageReport:
    """Check every study; put failed ones in ``failed_dir`` (passed ones in ``passed_dir`` and
    undetermined ones in ``undetermined_dir`` when given; otherwise they stay where they are).

    Rows are keyed by a pseudonymous study key; ``include_patient_ids`` (opt-in) adds PatientName
    and PatientID columns to the report. Logs never carry them either way. With ``report_dir`` (and not
    ``dry_run``), the report there is kept as the batch's ledger (see the module's docstring), written as the
    run goes, with the chart at the end (:func:`write_report`). A run that sorts holds the input folder's
    :func:`folder_lock`, and waits for the report folder's :func:`report_lock`; a dry run takes neither.

    ``settle_s``: a study with a file changed less than this many seconds ago is still arriving (an export into
    the inbox): it is listed as not checked and left for a later run, as DICOM routers wait for a study to be
    stable. Off (0) by default; a study that changes while it is checked is not moved either way (:func:`place`)."""
    if not settle_s >= 0:
        raise InvalidInputError(f"settle time must be 0 or more seconds, got {settle_s}")
    input_dir, failed_dir = Path(input_dir), Path(failed_dir)
    passed_dir = Path(passed_dir) if passed_dir else None
    undetermined_dir = Path(undetermined_dir) if undetermined_dir else None
    from .io import check_out_folder, input_folder

    input_folder(input_dir, STUDIES_FOLDER)

    named = [(n, t) for n, t in (("--failed-dir", failed_dir), ("--passed-dir", passed_dir),
                                 ("--undetermined-dir", undetermined_dir)) if t]
    for i, (n, t) in enumerate(named):
        if t.resolve() == input_dir.resolve():
            raise InvalidInputError("output folder must differ from the input folder", t)
        for other, u in named[:i]:  # the verdicts sorted into one folder are not sorted
            if t.resolve() == u.resolve():
                raise InvalidInputError(f"{n} is the {other} folder; studies of different verdicts would be mixed "
                                        "in it: give each its own folder", t)
    for t in [failed_dir] + [d for d in (passed_dir, undetermined_dir, report_dir) if d]:
        check_out_folder(t)
    with nullcontext() if dry_run else folder_lock(input_dir), \
            nullcontext() if dry_run or not report_dir else report_lock(Path(report_dir)):
        return _run_triage(input_dir, failed_dir, passed_dir, move, dry_run, checker, progress, undetermined_dir,
                           keep_figures, include_patient_ids, report_dir, settle_s)


REPORT_LOCK = ".ctmodels-report.lock"


@contextmanager
def report_lock(folder: Path) -> Iterator[None]:
    """The report folder's lock, waited for: runs over two input folders that report into one folder (two inboxes
    sorted into one failed folder) take turns, so that neither writes its report over the other's rows. A folder
    made for the lock is removed again where the run left it empty (a run refused before it wrote anything)."""
    from .locks import folder_lock as held

    made = [f for f in [folder, *folder.parents] if not f.exists()]  # the folder and any parents it lacks
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with held(folder, REPORT_LOCK, waiting=lambda: log.warning(
                "%s: another triage run is writing its report here; waiting for it to finish", folder)):
            yield
    finally:
        for f in made:  # the deepest first; only where empty
            try:
                f.rmdir()
            except OSError:
                break


def _run_triage(input_dir: Path, failed_dir: Path, passed_dir: Optional[Path], move: bool, dry_run: bool,
                checker, progress, undetermined_dir: Optional[Path], keep_figures: bool, include_patient_ids: bool,
                report_dir: Optional[Path], settle_s: float = 0.0) -> TriageReport:
    from .io import read_ct
    from .quality import FAIL, PASS, UNDETERMINED, BreathHoldChecker, measured_span

    report = TriageReport()
    targets = [failed_dir] + [d for d in (passed_dir, undetermined_dir) if d]
    report_csv = Path(report_dir) / "report.csv" if report_dir and not dry_run else None
    if report_csv is not None:  # before anything is touched: a report.csv that is not a triage report stops the run
        report.earlier = earlier_rows(report_csv.parent)
    if not dry_run:
        report.notes += recover(input_dir, targets)
    _finish_earlier(report.earlier, input_dir)

    skip = {t.resolve() for t in targets + ([Path(report_dir)] if report_dir else [])}  # output folders inside
    scan = scan_folder(input_dir)
    studies = [s for s in scan.studies if s.resolve() not in skip]
    if not studies and (scan.slices or scan.series):
        what = (f"{len(scan.slices)} loose DICOM slices" if scan.slices else
                f"{len(scan.series)} subfolders of series of one study")
        raise InvalidInputError(f"holds {what}, expected a folder with one study per subfolder, zip or volume "
                                "file (a single study is checked on its own)", input_dir)
    if not studies:
        raise EmptyInputError("no studies found (expected subfolders, zips or volume files"
                              + (f"; {len(scan.links)} link(s), which are not followed)" if scan.links else ")"),
                              input_dir)
    report.skipped = scan.notes()
    checker = checker or BreathHoldChecker.from_pretrained()
    columns: List[str] = []
    folder = str(input_dir.absolute())
    if report_csv is not None:  # the earlier rows, merged, with this run's columns; this run's rows are added to them
        report_csv.parent.mkdir(parents=True, exist_ok=True)
        columns = ledger.write_rows(report_csv, report.earlier,
                                    REPORT_FIELDS + (PATIENT_FIELDS if include_patient_ids else []))

    def write_ledger(row: TriageRow) -> None:
        if report_csv is not None:
            ledger.append_row(report_csv, row.as_dict(), columns)

    for i, study in enumerate(studies):
        if progress:
            progress(i, len(studies), study.name)
        uid = None
        checked = fingerprint(study)  # as read for its verdict: a study still being written is not moved
        age = time.time() - max((t / 1e9 for _, t, _ in checked.values()), default=0.0)
        if age < settle_s:
            report.skipped.append(f"{study.name}: still arriving (a file changed {max(age, 0):.0f} s ago, under the "
                                  f"{settle_s:g} s settle time); checked by a later run")
            continue
        try:
            vol = read_ct(study, purpose="quality")
            uid = vol.meta.study_uid
            res = checker.predict(vol, keep_crops=keep_figures)
            verdict, p, reason = res.verdict, res.probability_fail, res.reason
            slices_mm = measured_span(vol, res)
            series, warnings = series_text(vol), " | ".join(vol.meta.warnings)
            del vol
        except CTModelsError as exc:
            verdict, p, reason, res, slices_mm, series, warnings = UNDETERMINED, None, str(exc), None, "", "", ""
        row = TriageRow(study_key(study, uid), study.name, verdict, p, reason, slices_mm=slices_mm, series=series,
                        warnings=warnings, folder=folder)
        if include_patient_ids:
            row.patient = patient_identity(study)
        if keep_figures and res is not None:
            from .figures import middle_panel

            row.figure = middle_panel(res, scale=4)
        dest = {FAIL: failed_dir, PASS: passed_dir}.get(verdict, undetermined_dir)
        if dest is None:
            row.action = "left in place"
        elif dry_run:
            row.action, row.destination = f"would {'move' if move else 'copy'}", str(dest / study.name)
        else:
            row.action, row.destination = f"{UNFINISHED}{'moving' if move else 'copying'}", str(dest / study.name)
            write_ledger(row)
            try:
                row.action = place(study, dest, move, checked)
            except (TriageError, OSError) as exc:
                row.action, row.destination = f"left in place: {exc}", ""
        report.rows.append(row)
        write_ledger(row)
        log.info("%s: %s", row.key, verdict)
    if progress:
        progress(len(studies), len(studies), "")
    if report_csv is not None:
        report.files = write_report(report, report_csv.parent)
    return report


def write_report(report: TriageReport, folder: Path) -> Dict[str, Path]:
    """report.csv (the report's rows: earlier runs' kept, see :meth:`TriageReport.report_rows`), chart.html and
    chart.png (every row's verdict) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {"csv": folder / "report.csv"}
    ledger.write_rows(out["csv"], report.report_rows(), REPORT_FIELDS)
    from .charts import verdict_chart

    chart = verdict_chart(report.report_counts())
    out["html"] = folder / "chart.html"
    write_together({out["html"]: lambda f: chart.save(str(f))})
    try:
        out["png"] = folder / "chart.png"
        write_together({out["png"]: lambda f: chart.save(str(f))})
    except Exception as exc:  # PNG export needs vl-convert; HTML is always written
        log.warning("chart.png not written (%s)", exc)
        out.pop("png")
    return out


def triage_archive(zip_path: Path, workdir: Path, checker=None,
                   progress: Optional[Callable[[int, int, str], None]] = None,
                   name: Optional[str] = None) -> "tuple[TriageReport, Path]":
    """A zip of studies -> (report, ``workdir/sorted.zip`` with passed/, failed/, undetermined/, not_checked/
    (whatever was not a study: other files, loose slices), report.csv and the chart).

    The archive is extracted safely into ``workdir`` (which the caller owns and deletes). A zip that holds
    one folder of studies is read as that folder; a zip that holds one study (slices or series folders,
    flat or in one folder) is one study, called ``name`` when flat (default: the zip's name without ``.zip``).
    """
    import zipfile

    from .archive import extract_zip, safe_name, unprefix

    src = Path(workdir) / "in"
    out = Path(workdir) / "out"
    src.mkdir(parents=True)
    extract_zip(Path(zip_path), src)
    unprefix(src)
    scan, outer = scan_folder(src), []
    if len(scan.studies) == 1 and scan.studies[0].is_dir() and not (scan.slices or scan.series):
        if len(discover_studies(scan.studies[0])) > 1:  # a zip holding one folder of studies: descend into it
            src, outer = scan.studies[0], scan.notes()
    elif not scan.studies and (scan.slices or scan.series):  # one study laid out flat: that is the study
        flat = Path(workdir) / "flat"
        flat.mkdir()
        src.rename(flat / safe_name(name or Path(zip_path).stem).strip(".") or "study")
        src = flat
    rep = run_triage(src, out / "failed", out / "passed", move=True, checker=checker, progress=progress,
                     undetermined_dir=out / "undetermined", keep_figures=True)
    rep.skipped = outer + rep.skipped
    inside = [f"{Path(workdir) / d}{os.sep}" for d in ("in", "flat")]  # where the zip's files were read from
    for r in rep.rows:  # where each study lies in the sorted zip, and what was wrong named as in the zip
        if r.destination:
            r.destination = Path(r.destination).relative_to(out).as_posix()
        for folder in inside:
            r.reason = r.reason.replace(folder, "")
        r.reason = r.reason.replace(str(workdir), "the upload")
        r.folder = ""  # this working folder: the zip holds one batch
    # what was not a study comes back too, as it was in the zip, so that the download loses nothing
    rest = Path(workdir) / "in"
    for p in sorted(rest.rglob("*")) if rest.is_dir() else []:
        rel = p.relative_to(rest)
        if p.is_file() and rel.parts[0] != "__MACOSX" and p.name != ".DS_Store":
            (out / "not_checked" / rel).parent.mkdir(parents=True, exist_ok=True)
            p.rename(out / "not_checked" / rel)
    write_report(rep, out)
    archive = Path(workdir) / "sorted.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(out.rglob("*")):
            if p.is_file():
                zf.write(p, str(p.relative_to(out)))
    return rep, archive
