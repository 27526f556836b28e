#!/bin/bash
# Plan 3's GPU part (docs/lesion-experiments.md, session 19): recipe C's 4 cross-validation folds and both
# ship candidates (B and C on all training slices) at once, on one lent GPU.
# Here, first: the full training pack in two parts (each call carries at most 64 MiB), and the
# segmentation_models_pytorch wheel in .whl/:
#   python scripts/lesion_cv.py pack --data ../shared/data --out .gpudata/trainval.npz.xz
#   mkdir -p .gpudata/sum; sha256sum .gpudata/trainval.npz.xz > .gpudata/sum/trainval.sha256
#   mkdir -p .gpudata/p1 .gpudata/p2; split -b 40M .gpudata/trainval.npz.xz .gpudata/p1/x
#   mv .gpudata/p1/xab .gpudata/p2/
# Call 1 carries .gpudata/p1, .gpudata/sum and .whl; call 2, on the still warm machine, .gpudata/p2. Move
# weights/lesion-unet-effb0/model.safetensors aside for both (25 MB of the limit; nothing here uses it).
# There:  bash bench/gpu_plan3.sh LIMIT_S     (runs/ keeps the runs' states: the same call goes on)
# Writes $OUT/plan3.tar.part-* (cv.json, logs, the two trained folders).
set -o pipefail
OUT=${OUT:-/tmp/p3out}; mkdir -p "$OUT"
. bench/gpu_setup.sh runs/p3  # PACK
L=${1:-480}; STEPS=${STEPS:-2400}; DEVICE=${DEVICE:-cuda}  # STEPS, DEVICE: for a dry run on a CPU
ship() {  # recipe B (--ema 0.998) or C (--intensity-aug weak), the exact CPU ship command on the GPU
  timeout "$L" python3 -m ctmodels train-lesion --pack "$PACK" --out "runs/p3/ship$1" --steps "$STEPS" --batch-size 8 \
    --seed 0 --semiseg-share 0.75 --lr 2e-3 --threads 1 --device "$DEVICE" "${@:2}" > "runs/p3/ship$1.log" 2>&1
  echo "ship $1 exit $?"
}
ship B --ema 0.998 &
ship C --ema 0 --intensity-aug weak &
timeout "$L" python3 scripts/lesion_cv.py run --pack "$PACK" --recipes C --folds 4 --steps "$STEPS" --jobs 4 \
  --threads 1 --device "$DEVICE" --log-every 400 --out runs/p3/cv.json > runs/p3/cv.log 2>&1 &
(sleep 100; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader) &
wait
grep -h "step\|exit\|Error\|error" runs/p3/*.log | tail -20
tail -8 runs/p3/cv.log
cd runs/p3 && send_back plan3 cv.json *.log $(ls -d shipB shipC 2>/dev/null)
