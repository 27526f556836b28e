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


# the model loaders at the top level, as ``from ctmodels import LesionSegmenter``; imported on first use, so that
# ``import ctmodels`` stays light (no torch)
_LOADERS = {"LesionSegmenter": ".lesion", "BreathHoldChecker": ".quality"}


def __getattr__(name):
    if name in _LOADERS:
        from importlib import import_module

        return getattr(import_module(_LOADERS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LOADERS))
