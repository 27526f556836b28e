"""ctmodels: chest CT lesion segmentation, severity and breath-hold quality checks.

Research use only, not for diagnosis.
"""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

from .errors import CTModelsError, InvalidInputError  # noqa: E402,F401
from .types import CTVolume, VolumeMeta  # noqa: E402,F401


def read_ct(path, **kwargs):
    """Read any supported CT input into a :class:`CTVolume` (see :func:`ctmodels.io.read_ct`)."""
    from .io import read_ct as _read_ct

    return _read_ct(path, **kwargs)
