"""Files written whole or not at all: under a temporary name beside them, then moved into place.

A run killed or a disk filled while writing leaves the file of that name as it was; what it left under the
temporary name starts with ``PARTIAL`` and is removed by the next run that writes there.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable, Dict

from .errors import OutputError

PARTIAL = ".ctmodels-partial-"  # the name of a file or folder being written starts so until it is complete


def write_together(files: Dict[Path, Callable[[Path], object]]) -> None:
    """Write each file (``{path: writer(path)}``) under a temporary name beside it, ending as it ends (writers
    choose the format by the suffix), then move them all into place: where a write fails (a full disk) none is left
    half-written, files of those names are as they were, and the :class:`OutputError` names the file."""
    tmps: Dict[Path, Path] = {}
    final = None
    try:
        for final, write in files.items():
            tmps[final] = final.with_name(f"{PARTIAL}{uuid.uuid4().hex[:8]}-{final.name}")
            write(tmps[final])
            with open(tmps[final], "rb+") as f:  # on disk before it takes the name
                os.fsync(f.fileno())
        for final, tmp in tmps.items():
            os.replace(tmp, final)
    except OSError as exc:
        raise OutputError(f"could not write {final.name}: {exc.strerror or exc}",
                          None if final is None else final.parent) from None
    finally:
        for tmp in tmps.values():
            if tmp.exists():
                tmp.unlink()
