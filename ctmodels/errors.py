"""Typed exceptions raised by ctmodels.

Every error carries a one-line, user-facing message that names the offending
file (where there is one) and what was expected.  The CLI turns any
:class:`CTModelsError` into one line on stderr and exit status 2; the app shows
it with ``st.error``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Optional, Union

PathLike = Union[str, Path]


class CTModelsError(Exception):
    """Base class of every error ctmodels raises on purpose."""

    def __init__(self, message: str, path: Optional[PathLike] = None):
        self.path = None if path is None else str(path)
        text = " ".join(str(message).split())  # always one line
        if self.path is not None and not text.startswith(f"{self.path}:"):  # a message that names it first: once
            text = f"{self.path}: {text}"
        super().__init__(text)

    def reworded(self, text: str) -> "CTModelsError":
        """The same error (its type and what it carries) with another one-line message, e.g. naming the file
        as the user knows it."""
        new = copy.copy(self)
        new.args = (" ".join(str(text).split()),)
        return new


class InvalidInputError(CTModelsError, ValueError):
    """The input file or folder cannot be read as what was expected."""


class UnsupportedFormatError(InvalidInputError):
    """The file type is not one ctmodels reads."""


class NotCTError(InvalidInputError):
    """The data is readable but is not CT (wrong modality, RGB, ...)."""


class NotLungWindowError(InvalidInputError):
    """An 8-bit display image whose lungs are pure black: a soft-tissue or bone window, not the lung window the
    lesion model reads."""


class NotChestError(InvalidInputError):
    """A CT whose header names a part of the body without lung (BodyPartExamined HEAD, KNEE, ...)."""


class EmptyInputError(InvalidInputError):
    """A folder, zip or file holds nothing usable."""


class UnsafeArchiveError(InvalidInputError):
    """A zip archive has unsafe members (``..``, absolute paths, links) or expands too much."""


class NotHounsfieldError(InvalidInputError):
    """An operation needs Hounsfield units but the volume is an 8-bit display image."""


class SeriesSelectionError(InvalidInputError):
    """No series of the study is suitable for the requested task."""


class SeveralStudiesError(SeriesSelectionError):
    """The series found belong to more than one study; ``series`` describes each (dicts of
    :meth:`SeriesInfo.as_dict`), so that a caller can offer them to choose from."""

    def __init__(self, message: str, path: Optional[PathLike] = None, series: Optional[list] = None):
        super().__init__(message, path)
        self.series = list(series or [])


class WeightsError(CTModelsError):
    """Model weights could not be found or loaded."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """No weights in any place ctmodels looks; the message says how to get them."""


class WeightsChecksumError(WeightsError):
    """A weights file does not match its recorded SHA-256."""


class DeviceError(CTModelsError, RuntimeError):
    """The requested compute device is not available."""


class OutputError(CTModelsError, OSError):
    """Results could not be written where they were to go (a full disk, a folder that is not writable)."""


class TriageError(CTModelsError):
    """Batch triage could not place a study safely."""
