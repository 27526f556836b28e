#!/bin/bash
# Cross-validate lesion training recipes on a lent GPU machine (docs/performance.md, "H200").
# Here, first:  python scripts/lesion_cv.py pack --data ../shared/data --out .gpudata/trainval.npz.xz --drop-every 4
# (the training slices only, under the device's 64 MiB; move weights/*/model.safetensors aside for the call),
# and download segmentation_models_pytorch's wheel to .whl/. There:
#   bash bench/gpu_cv.sh STEPS JOBS LIMIT_S RECIPES     e.g. bash bench/gpu_cv.sh 2400 12 540 A,B,C
# Writes $OUT/cv.json as each run finishes, and $OUT/cv.log.
set -o pipefail
OUT=${OUT:-/tmp/cvout}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
  .whl/segmentation_models_pytorch-*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
(sleep 90; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader) &
timeout "${3:-540}" python3 scripts/lesion_cv.py run --pack .gpudata/trainval.npz.xz --recipes "${4:-A,B,C}" \
  --folds 4 --steps "${1:-2400}" --jobs "${2:-12}" --threads 1 --device cuda --log-every 400 \
  --out "$OUT/cv.json" 2>&1 | tee "$OUT/cv.log"
echo "exit $?"
