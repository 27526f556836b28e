"""An NRRD file's header, checked before its data is read (pynrrd trusts it).

* ``data file``: a header may name the file that holds its data, anywhere (``/etc/passwd``, ``../x``, a ``LIST``
  of files or a format string). pynrrd reads whatever it names, so an uploaded ``.nrrd`` could show the server's
  files as an image. Only a plain file name, in the header's own folder, is read.
* ``sizes``: more voxels than :data:`ctmodels.dicom.MAX_VOXELS` are refused before anything is allocated.
* gzip / bzip2 data: pynrrd inflates all of it before comparing its length with the sizes, so a few megabytes
  of compressed zeros would take the memory of the machine. The data is inflated here first, in bounded steps, and
  refused as soon as it holds more than the sizes need.
"""

from __future__ import annotations

import bz2
import zlib
from pathlib import Path
from typing import Dict

import numpy as np

from .errors import InvalidInputError

CHUNK = 1 << 20  # bytes read, and at most inflated, per step
SKIP_SLACK = 1 << 20  # with "byte skip: -1" (data at the end), compressed data may hold this much before it


def checked_header(p: Path, max_voxels: int) -> Dict:
    """The header of the NRRD file ``p`` (attached ``.nrrd`` or detached ``.nhdr``), once its data file, size and
    compressed length are checked (see the module's docstring); ``InvalidInputError`` naming ``p`` otherwise."""
    import nrrd

    p = Path(p)
    try:
        with open(p, "rb") as fh:
            header = nrrd.read_header(fh)
            data_at = fh.tell()
    except Exception as exc:  # pynrrd raises its own and ValueError/KeyError for malformed fields
        raise InvalidInputError(f"not a readable NRRD file ({type(exc).__name__})", p) from None
    try:
        sizes = [int(s) for s in np.atleast_1d(header["sizes"])]
        itemsize = _itemsize(header)
        skip = int(header.get("byte skip", 0))
    except Exception as exc:
        raise InvalidInputError(f"not a readable NRRD file ({type(exc).__name__} in its header)", p) from None
    n = int(np.prod(sizes, dtype=np.int64))
    if not sizes or min(sizes) < 1 or n > max_voxels:
        raise InvalidInputError(f"header gives sizes {' '.join(map(str, sizes)) or '(none)'}, expected 1 to "
                                f"{max_voxels} voxels", p)
    data, offset = p, data_at
    named = header.get("data file", header.get("datafile"))
    if named is not None:
        data, offset = beside_header(p, str(named), "data file"), 0
    encoding = str(header.get("encoding", "raw")).lower()
    if encoding in ("gzip", "gz", "bzip2", "bz2"):
        need = n * itemsize + (max(skip, 0) if skip >= 0 else SKIP_SLACK)
        if _inflated_beyond(data, offset, encoding.startswith("b"), need):
            raise InvalidInputError(f"compressed data inflates to more than its header's {n} voxels need "
                                    f"({need} bytes); expected an NRRD volume", p)
    return header


def beside_header(p: Path, name: str, field: str) -> Path:
    """The data file a header (``p``; NRRD's ``data file``, MetaImage's ``ElementDataFile``: ``field``) names, where
    it names one plainly (no path, list or pattern) that lies in the header's own folder; else InvalidInputError."""
    name = name.strip()
    if (not name or name.upper().startswith("LIST") or "%" in name or "\\" in name or Path(name).name != name
            or name in (".", "..")):
        raise InvalidInputError(f"{field} {name!r} is not a file beside the header: only a detached data file named "
                                "plainly, in the header's own folder, is read", p)
    if not (p.parent / name).is_file():
        raise InvalidInputError(f"{field} {name!r} is not beside the header", p)
    return p.parent / name


def _itemsize(header: Dict) -> int:
    """Bytes per voxel of the header's type, by pynrrd's own reading of it; 8 (the most any type takes) where
    that is not to be had, which only loosens the bound on compressed data."""
    import nrrd

    try:
        return int(nrrd.reader._determine_datatype(header).itemsize)
    except Exception:  # a private function of pynrrd: another version may lack it
        return 8


def inflate_steps(fh, inflater, step: int = CHUNK):
    """The pieces of the compressed stream read from ``fh`` (a ``zlib`` or ``bz2`` decompressor in ``inflater``),
    each at most ``step`` bytes, reading at most ``step`` bytes a time: a caller stops as soon as it has seen too
    much, before a small stream of zeros takes the machine's memory. Ends with the stream or with the file."""
    while not inflater.eof:
        chunk = fh.read(step)
        pending = chunk
        while not inflater.eof:
            yield inflater.decompress(pending, step)
            pending = getattr(inflater, "unconsumed_tail", b"")  # zlib hands back what it left; bz2 keeps it
            if not pending and getattr(inflater, "needs_input", True):
                break
        if not chunk:
            return


def _inflated_beyond(path: Path, offset: int, is_bz2: bool, limit: int) -> bool:
    """Whether the compressed stream in ``path`` from ``offset`` inflates to more than ``limit`` bytes, found
    inflating at most ``CHUNK`` bytes a step (a corrupt stream is left for pynrrd to report)."""
    inflater = bz2.BZ2Decompressor() if is_bz2 else zlib.decompressobj(zlib.MAX_WBITS | 16)
    total = 0
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            for piece in inflate_steps(fh, inflater):
                total += len(piece)
                if total > limit:
                    return True
    except (OSError, EOFError, ValueError, zlib.error):
        return False
    return False
