#!/bin/bash
# Call 1 of a GPU lease, before plan 8's calls (bench/gpu_plan8_wait.sh, which runs bench/gpu_plan8.sh): the GPU
# tests (tests/test_device.py, never yet run on a GPU for the body mask and air anchor) and what the host-side
# masks cost there (bench/gpu_anchor.py), with the bundled weights. Carry .gpudata/p2, .gpudata/sum and .whl:
# with the tracked weights about 59 MiB. Call 2 then carries .gpudata/p1 alone, with weights/lesion-unet-effb0/
# model.safetensors moved aside here (64 MiB limit); gpu_setup.sh joins the parts in either order.
# .whl holds segmentation_models_pytorch's and pydicom's wheels (`pip download --no-deps`): the device machine
# has torch but not pydicom, which the CLI test imports (session 44: without it, that test failed there).
# There:  bash bench/gpu_checks.sh   About a minute. Writes $OUT/test_device.log and $OUT/gpu_anchor.log.
set -o pipefail
OUT=${OUT:-/tmp/gcout}; mkdir -p "$OUT"
[ -d /tmp/site/segmentation_models_pytorch ] || python3 -m pip install -q --no-index --no-deps --no-compile \
  --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
timeout 150 python3 -m pytest -q -rs -p no:cacheprovider tests/test_device.py 2>&1 | tee "$OUT/test_device.log"
timeout 150 python3 bench/gpu_anchor.py 2>&1 | tee "$OUT/gpu_anchor.log"
