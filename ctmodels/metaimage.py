"""ITK MetaImage volumes, read with numpy alone: ``.mha`` (data after the header) and ``.mhd`` (data in a file
beside it, ``.raw`` or zlib-compressed ``.zraw``). LUNA16's scans and grand-challenge.org's images are stored so.

The header is ``Key = Value`` lines ending with ``ElementDataFile``. As ITK reads it: ``DimSize`` gives the sizes
with the first axis fastest in the data; ``TransformMatrix`` (also written ``Rotation`` or ``Orientation``) holds,
row by row, the LPS direction of each array axis; ``Offset`` (``Position``, ``Origin``) the LPS position of the
first voxel; ``ElementSpacing`` the steps in mm. ``AnatomicalOrientation`` is a label that ITK does not read, nor
is it read here.

Checked before any data is read, as NRRD headers are (:mod:`ctmodels.nrrd_header`): only ``LOCAL`` data or a data
file named plainly in the header's own folder (not ``LIST``, a pattern, or a path elsewhere); at most
``max_voxels`` voxels; compressed data inflated in bounded steps and refused once it holds more than the sizes
need; uncompressed data the size the header gives.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from .errors import InvalidInputError, NotCTError
from .nrrd_header import beside_header, inflate_steps

MAX_HEADER_BYTES = 64 * 1024  # a MetaImage header is a few hundred bytes
# ElementType -> numpy type (MET_LONG and MET_ULONG left out: their size depends on the writer's platform)
TYPES = {"MET_CHAR": "i1", "MET_UCHAR": "u1", "MET_SHORT": "i2", "MET_USHORT": "u2", "MET_INT": "i4",
         "MET_UINT": "u4", "MET_LONG_LONG": "i8", "MET_ULONG_LONG": "u8", "MET_FLOAT": "f4", "MET_DOUBLE": "f8"}
SYNONYMS = {"Rotation": "TransformMatrix", "Orientation": "TransformMatrix", "Position": "Offset",
            "Origin": "Offset", "ElementByteOrderMSB": "BinaryDataByteOrderMSB"}
EXPECTED = "expected an ITK MetaImage volume (.mha, or .mhd with its data file)"


def read_header(p: Path) -> Tuple[Dict[str, str], int]:
    """The header's fields (synonyms under one name) and the offset at which attached data begins."""
    with open(p, "rb") as fh:
        head = fh.read(MAX_HEADER_BYTES)
    fields: Dict[str, str] = {}
    at = 0
    for raw in head.splitlines(keepends=True):
        line = raw.decode("latin-1").strip()
        at += len(raw)
        if not line:
            continue
        m = re.fullmatch(r"([^=\s][^=]*?)\s*=\s*(.*)", line)  # ITK adds fields of its own: "dim[0] = 3"
        if not m:
            raise InvalidInputError(f"header line {line[:40]!r} is not 'Key = Value'; {EXPECTED}", p)
        key = SYNONYMS.get(m.group(1), m.group(1))
        fields[key] = m.group(2).strip()
        if key == "ElementDataFile":  # always the last field; attached data follows its line
            return fields, at
    raise InvalidInputError(f"no ElementDataFile field in the first {MAX_HEADER_BYTES} bytes; {EXPECTED}", p)


def _numbers(fields: Dict[str, str], key: str, n: int, p: Path, kind=float, default=None):
    if key not in fields:
        return default
    try:
        values = [kind(v) for v in fields[key].split()]
    except ValueError:
        values = []
    if len(values) != n or not all(np.isfinite(values)):
        raise InvalidInputError(f"{key} is {fields[key][:60]!r}, expected {n} number{'s' if n > 1 else ''}; "
                                f"{EXPECTED}", p)
    return values


def _true(fields: Dict[str, str], key: str) -> bool:
    return fields.get(key, "False").strip().lower() in ("true", "1")


def read_metaimage(p: Path, max_voxels: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray], bool]:
    """``(data, directions, spacing, origin, spacing_given)`` of the MetaImage ``p``: ``data[i, j, k]`` in the
    file's axis order (``i`` fastest in the file, as pynrrd gives NRRD data), ``directions[:, a]`` the LPS unit
    direction of array axis ``a``, ``spacing`` its steps in mm (1 where not given), ``origin`` the first voxel's LPS
    position (None where not given). A 2D image is one slice. InvalidInputError naming ``p`` for what is not to be
    read; NotCTError for a header whose Modality is not CT."""
    p = Path(p)
    fields, data_at = read_header(p)
    if fields.get("ObjectType", "Image").lower() != "image":
        raise InvalidInputError(f"ObjectType is {fields['ObjectType']!r}; {EXPECTED}", p)
    if fields.get("Modality", "").upper() in ("MET_MOD_MR", "MET_MOD_NM", "MET_MOD_US"):
        raise NotCTError(f"Modality is {fields['Modality']}, expected CT", p)
    ndims = _numbers(fields, "NDims", 1, p, int, [3])[0]
    if ndims not in (2, 3):
        raise InvalidInputError(f"NDims is {ndims}, expected a 3D volume or a 2D slice", p)
    sizes = _numbers(fields, "DimSize", ndims, p, int)
    if sizes is None or min(sizes) < 1 or int(np.prod(sizes, dtype=np.int64)) > max_voxels:
        raise InvalidInputError(f"DimSize is {fields.get('DimSize', '(none)')!r}, expected 1 to {max_voxels} voxels",
                                p)
    etype = fields.get("ElementType", "")
    if etype not in TYPES:
        raise InvalidInputError(f"ElementType {etype or '(none)'} is not read (expected one of "
                                f"{', '.join(TYPES)})", p)
    if _numbers(fields, "ElementNumberOfChannels", 1, p, int, [1])[0] != 1:
        raise InvalidInputError(f"{fields['ElementNumberOfChannels']} channels per voxel, expected a scalar volume",
                                p)
    if not _true(fields, "BinaryData") and "BinaryData" in fields:
        raise InvalidInputError(f"data written as text (BinaryData = False); {EXPECTED}", p)
    dtype = np.dtype(TYPES[etype]).newbyteorder(">" if _true(fields, "BinaryDataByteOrderMSB") else "<")
    n = int(np.prod(sizes, dtype=np.int64))
    need = n * dtype.itemsize
    data_file, offset = _data_file(p, fields["ElementDataFile"], data_at, fields)
    if _true(fields, "CompressedData"):
        raw = _inflated(data_file, offset, need, p)
    else:
        raw = _stored(data_file, offset, need, p)
    data = np.frombuffer(raw, dtype=dtype).reshape(sizes[::-1]).T  # [i, j, k]: i is fastest in the file
    spacing = _numbers(fields, "ElementSpacing", ndims, p, float) or _numbers(fields, "ElementSize", ndims, p, float)
    given = spacing is not None
    matrix = _numbers(fields, "TransformMatrix", ndims * ndims, p, float)
    origin = _numbers(fields, "Offset", ndims, p, float)
    if ndims == 2:  # one slice: an axial one, its rows and columns as stored
        data = data[:, :, None]
        spacing = [*(spacing or [1.0, 1.0]), 1.0]
        matrix = None if matrix is None else [*matrix[0:2], 0.0, *matrix[2:4], 0.0, 0.0, 0.0, 1.0]
        origin = None if origin is None else [*origin, 0.0]
    directions = np.eye(3) if matrix is None else np.asarray(matrix, dtype=float).reshape(3, 3).T
    norms = np.linalg.norm(directions, axis=0)
    if not np.all(norms > 1e-6) or abs(np.linalg.det(directions / norms)) < 0.5:
        raise InvalidInputError(f"TransformMatrix {fields.get('TransformMatrix', '')[:60]!r} gives no three "
                                f"independent directions; {EXPECTED}", p)
    sp = np.abs(np.asarray(spacing or [1.0, 1.0, 1.0], dtype=float))
    if not np.all(sp > 0):
        raise InvalidInputError(f"ElementSpacing {fields.get('ElementSpacing')!r} holds 0; {EXPECTED}", p)
    return data, directions / norms, sp, None if origin is None else np.asarray(origin, dtype=float), given


def _data_file(p: Path, name: str, data_at: int, fields: Dict[str, str]) -> Tuple[Path, int]:
    """Where the data lies: ``(file, offset)``; ``offset`` -1 for "the last bytes of the file"."""
    skip = _numbers(fields, "HeaderSize", 1, p, int, [0])[0]
    if name.upper() == "LOCAL":
        return p, data_at
    return beside_header(p, name, "ElementDataFile"), skip if skip >= 0 else -1


def _stored(path: Path, offset: int, need: int, p: Path) -> bytes:
    size = path.stat().st_size
    start = size - need if offset < 0 else offset
    if start < 0 or size - start < need:
        raise InvalidInputError(f"{path.name} holds {max(size - max(start, 0), 0)} bytes of data where the header "
                                f"needs {need}; {EXPECTED}", p)
    with open(path, "rb") as fh:
        fh.seek(start)
        return fh.read(need)


def _inflated(path: Path, offset: int, need: int, p: Path) -> bytearray:
    """The zlib stream in ``path`` from ``offset``, inflated in bounded steps (:func:`inflate_steps`); refused as
    soon as it holds more than ``need`` bytes, or where it ends with fewer."""
    out = bytearray()
    try:
        with open(path, "rb") as fh:
            fh.seek(max(offset, 0))
            for piece in inflate_steps(fh, zlib.decompressobj()):
                out += piece
                if len(out) > need:
                    raise InvalidInputError(f"compressed data inflates to more than the {need} bytes its header "
                                            f"needs; {EXPECTED}", p)
    except zlib.error as exc:
        raise InvalidInputError(f"compressed data does not inflate ({exc}); {EXPECTED}", p) from None
    if len(out) != need:
        raise InvalidInputError(f"compressed data holds {len(out)} bytes where the header needs {need}; {EXPECTED}",
                                p)
    return out  # numpy reads it in place: a 300-slice scan is not copied once more
