"""Safe extraction of zip archives into a private temporary folder.

Rejected: absolute paths, ``..`` components, drive letters, symbolic links, more than
``max_files`` members, more than ``max_total_bytes`` uncompressed, and members whose
expansion ratio exceeds ``max_ratio`` (zip bombs). Sizes are checked while streaming, not
only from the (forgeable) header.
"""

from __future__ import annotations

import re
import shutil
import stat
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Iterator

from .errors import InvalidInputError, UnsafeArchiveError

MAX_FILES = 20_000
MAX_TOTAL_BYTES = 4 * 1024**3
MAX_RATIO = 200


def _safe_member_path(name: str, zpath: Path) -> PurePosixPath:
    n = name.replace("\\", "/")
    if not n:
        raise InvalidInputError("a member has no name (a corrupt archive)", zpath)
    p = PurePosixPath(n)
    if n.startswith("/") or (len(n) > 1 and n[1] == ":") or p.is_absolute():
        raise UnsafeArchiveError(f"member {name!r} has an absolute path", zpath)
    if any(part == ".." for part in p.parts):
        raise UnsafeArchiveError(f"member {name!r} has a '..' path component", zpath)
    return p


def extract_zip(zpath: Path, dest: Path, max_files: int = MAX_FILES,
                max_total_bytes: int = MAX_TOTAL_BYTES, max_ratio: float = MAX_RATIO) -> Path:
    """Extract ``zpath`` into ``dest`` (which must exist) safely; returns ``dest``."""
    zpath = Path(zpath)
    try:
        zf = zipfile.ZipFile(zpath)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as exc:
        raise InvalidInputError(f"not a readable zip archive ({type(exc).__name__})", zpath) from None
    with zf:
        infos = zf.infolist()
        if len(infos) > max_files:
            raise UnsafeArchiveError(f"{len(infos)} members, more than the {max_files} allowed", zpath)
        declared = 0
        for info in infos:
            _safe_member_path(info.filename, zpath)
            mode = (info.external_attr >> 16) & 0xFFFF
            if stat.S_ISLNK(mode):
                raise UnsafeArchiveError(f"member {info.filename!r} is a symbolic link", zpath)
            declared += info.file_size
            if info.compress_size > 0 and info.file_size / info.compress_size > max_ratio:
                raise UnsafeArchiveError(
                    f"member {info.filename!r} expands {info.file_size / info.compress_size:.0f}x "
                    f"(limit {max_ratio}x): possible zip bomb", zpath)
        if declared > max_total_bytes:
            raise UnsafeArchiveError(f"expands to {declared} bytes, more than {max_total_bytes}", zpath)
        total = 0
        root = Path(dest).resolve()
        for i, info in enumerate(infos):
            rel = _safe_member_path(info.filename, zpath)
            if info.is_dir():
                continue
            # file names may not be valid UTF-8 on disk: use a safe generated name, keep the suffixes
            parts = [f"d{j}_{safe_name(p)}" for j, p in enumerate(rel.parts[:-1])]
            target = root.joinpath(*parts, f"{i:06d}_{safe_name(rel.name)}")
            if root not in target.resolve().parents:
                raise UnsafeArchiveError(f"member {info.filename!r} escapes the extraction folder", zpath)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                src = zf.open(info)
            except member_errors() as exc:  # a forged offset, an unknown compression method, encryption
                raise _corrupt(info, zpath, exc) from None
            with src, open(target, "xb") as dst:  # errors writing (a full disk) are not the archive's
                while True:
                    try:
                        chunk = src.read(1 << 20)
                    except member_errors() as exc:
                        raise _corrupt(info, zpath, exc) from None
                    if not chunk:
                        break
                    total += len(chunk)
                    if total > max_total_bytes:
                        raise UnsafeArchiveError(f"expands beyond {max_total_bytes} bytes", zpath)
                    dst.write(chunk)
    return Path(dest)


def _corrupt(info: zipfile.ZipInfo, zpath: Path, exc: BaseException) -> InvalidInputError:
    return InvalidInputError(f"corrupt member {info.filename!r} ({type(exc).__name__})", zpath)


def member_errors():
    """What reading a corrupt member of a zip raises: a bad header or CRC, a truncated or undecodable stream, a
    seek to a forged offset, a compression method or encryption zipfile does not read."""
    import zlib

    return (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, OSError, ValueError, NotImplementedError)


def safe_name(name: str) -> str:
    """``name`` with every character but ASCII letters, digits and ``._-`` made ``_``; the last 120 kept,
    ``file`` if none."""
    keep = "".join(c if (c.isascii() and (c.isalnum() or c in "._-")) else "_" for c in name)
    return keep[-120:] or "file"


def unprefix(root: Path) -> None:
    """Give the files and folders that :func:`extract_zip` wrote their names back (it
    prefixes ``d<depth>_`` to folders and ``<member index>_`` to files, to keep clashing names apart) where no
    two clash, so that reports and outputs show the user's names (made safe, as extract_zip does)."""
    for p in sorted(root.rglob("*"), key=lambda q: len(q.parts), reverse=True):
        m = re.fullmatch(r"d\d+_(.+)" if p.is_dir() else r"\d{6}_(.+)", p.name)
        if m and not (p.parent / m.group(1)).exists():
            p.rename(p.parent / m.group(1))


@contextmanager
def extracted(zpath: Path, **limits) -> Iterator[Path]:
    """Context manager: a private temp dir (mode 0700) holding the safe extraction, with the members' own names
    where no two clash (:func:`unprefix`: what a reader then says of a file names it as the zip does); deleted on
    exit."""
    tmp = Path(tempfile.mkdtemp(prefix="ctmodels-zip-"))
    try:
        extract_zip(zpath, tmp, **limits)
        unprefix(tmp)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
