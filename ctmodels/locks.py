"""A lock file in a folder, held while a run changes what is in it (triage's sorting, segment's outputs and table).

The operating system releases the lock when the holder ends or its process dies, so a killed run never leaves a
folder locked (only the file, which the next holder takes and removes). The holder removes the file while it still
holds it; a run that opened the file just before finds, once it has the lock, that the file at the path is another
one, and opens that instead, so that two runs never each hold a lock on a different file of the same name.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

from .errors import CTModelsError

log = logging.getLogger(__name__)


@contextmanager
def folder_lock(folder: Path, name: str, busy: Optional[Callable[[], Exception]] = None,
                waiting: Optional[Callable[[], None]] = None) -> Iterator[None]:
    """Hold the lock file ``folder/name``. With ``busy``, a lock another run holds raises ``busy()`` at once (a run
    that must not wait for another's work); without, this waits for it, calling ``waiting()`` first where it has
    to wait (to say so). A folder where the file cannot be made (read-only media) is not locked: a warning says
    so, and the caller goes on."""
    path = Path(folder) / name
    for _ in range(10):
        try:
            handle = open(path, "a+b")
        except OSError as exc:
            log.warning("%s: not locked (%s)", folder, exc.strerror or exc)
            yield
            return
        try:
            _lock(handle, wait=False)
        except OSError:
            if busy is not None:
                handle.close()
                raise busy() from None
            if waiting is not None:
                waiting()
            _lock(handle, wait=True)
        if os.name == "nt" or _same_file(handle, path):
            break
        _unlock(handle)
        handle.close()
    else:
        raise busy() if busy else CTModelsError("could not take the lock (its file kept being replaced)", path)
    try:
        yield
    finally:
        if os.name != "nt":
            path.unlink(missing_ok=True)  # while locked: a run that opened it meanwhile finds it gone, and retries
        _unlock(handle)
        handle.close()
        if os.name == "nt":
            try:
                path.unlink()
            except OSError:
                pass


def _same_file(handle, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    except OSError:
        return False


def _lock(handle, wait: bool) -> None:
    if os.name == "nt":
        import msvcrt

        handle.seek(0)
        while True:
            try:
                msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK, 1)
                return
            except OSError:
                if not wait:  # LK_LOCK gives up after 10 s: waiting goes on
                    raise
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))


def _unlock(handle) -> None:
    if os.name == "nt":
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
