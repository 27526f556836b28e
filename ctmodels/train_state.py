"""A training run's full state in one safetensors file, so that a stopped run can go on where it was.

A run on a 2-core CPU can take longer than the machine is held; a run that is stopped and started
again from its last saved state gives the same weights as one that was never stopped (same steps,
same batches, same augmentation). The file holds the network's weights and buffers, the weight
average (EMA) when there is one, the optimizer's moments, the torch random state (device too) and,
as JSON metadata, the step, the seconds trained so far, the numpy generator's state, the learning-rate
schedule and a fingerprint of the run's settings and data: a state is only resumed by the same run.
A caller's own bookkeeping (say, the best checkpoint so far) travels with it as ``extra``: any object
with ``state_dict()`` and ``load_state_dict()``, like a torch module, whose state is a flat dict of
tensors and JSON values.

Nothing here unpickles: tensors come from safetensors and everything else from JSON.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

from .errors import InvalidInputError

log = logging.getLogger(__name__)


def write_atomically(path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` a temporary file beside ``path``, then rename it over ``path``: a kill mid-write (a
    SIGTERM ends a run at once) leaves the previous file whole, and no temporary file is left behind."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def fingerprint(**settings) -> str:
    """A short hash of the settings and data that must match for a state to be resumed."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save_state(path, *, step: int, seconds: float, model, opt, sched, rng, ema=None, key: str = "",
               extra=None) -> None:
    """Write the run's state at ``step`` to ``path`` atomically (a temporary file, then a rename): a kill
    while writing leaves the previous state whole. ``extra``: see the module docstring."""
    import torch
    from safetensors.torch import save_file

    tensors = {f"model/{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema/{k}": v.detach().contiguous() for k, v in ema.model.state_dict().items()})
    opt_sd = opt.state_dict()
    scalars: Dict[str, Dict] = {}
    for pid, st in opt_sd["state"].items():
        for name, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt/{pid}/{name}"] = v.detach().contiguous()
            else:
                scalars.setdefault(str(pid), {})[name] = v
    extra_json = {}
    for k, v in (extra.state_dict() if extra is not None else {}).items():
        if torch.is_tensor(v):
            tensors[f"extra/{k}"] = v.detach().contiguous()
        else:
            extra_json[k] = v
    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng/cuda"] = torch.cuda.get_rng_state()
    meta = {"step": step, "seconds": seconds, "key": key, "numpy_rng": rng.bit_generator.state,
            "sched": {k: v for k, v in sched.state_dict().items() if k != "lr_lambdas"},
            "param_groups": opt_sd["param_groups"], "opt_scalars": scalars,
            "ema_updates": ema.updates if ema is not None else None, "extra": extra_json}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda tmp: save_file({k: v.cpu() for k, v in tensors.items()}, str(tmp),
                                                 metadata={"state": json.dumps(meta)}))


def load_state(path, *, model, opt, sched, rng, ema=None, key: str = "", extra=None) -> Optional[Tuple[int, float]]:
    """Restore a state saved by :func:`save_state` into the run's objects; ``None`` when there is none.

    -> ``(step, seconds)``: the last step done and the seconds trained until then. Raises
    :class:`InvalidInputError` naming the file for a state of another run (``key`` differs) or an
    unreadable one, rather than mixing two runs."""
    import torch
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["state"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise InvalidInputError(f"cannot read the training state ({type(exc).__name__}: {exc}); expected a file "
                                "written by ctmodels.train_state; delete it to start the run again", path=path)
    if meta.get("key") != key:
        raise InvalidInputError("holds the state of another training run (other settings or data); delete it to "
                                "start this run from the beginning", path=path)

    def part(prefix):
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    model.load_state_dict(part("model/"))
    if ema is not None:
        ema.model.load_state_dict(part("ema/"))
        ema.updates = meta["ema_updates"]
    state: Dict[int, Dict] = {}
    for k, v in part("opt/").items():
        pid, name = k.split("/", 1)
        state.setdefault(int(pid), {})[name] = v
    for pid, values in meta["opt_scalars"].items():
        state.setdefault(int(pid), {}).update(values)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    sched.load_state_dict({**meta["sched"], "lr_lambdas": [None] * len(meta["param_groups"])})
    if extra is not None:
        extra.load_state_dict({**meta.get("extra", {}), **part("extra/")})
    rng.bit_generator.state = meta["numpy_rng"]
    torch.set_rng_state(tensors["rng/torch"])
    if "rng/cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng/cuda"])
    log.info("resumed at step %d from %s", meta["step"], path)
    return int(meta["step"]), float(meta["seconds"])
