#!/bin/bash
# Plan 8 (docs/lesion-experiments.md), for a later GPU lease: recipe C at 4800 steps with seeds 1 and 2 on
# the 4 folds of plans 3 and 7 (8 runs at once). Prepared here as gpu_plan3.sh says (the pack in two parts,
# the wheel; call 1 carries .gpudata/p1, .gpudata/sum and .whl, call 2 .gpudata/p2).
# There:  bash bench/gpu_plan8.sh LIMIT_S   About 38 400 steps: 9-10 min on an H200 at plan 7's rate (about
# 70 steps/s with 5 or more runs at once). If LIMIT_S runs out, the same command on the still-warm machine
# goes on from the runs' saved states. The ship candidate trains on a CPU (the plan says why).
# A lease of 15 minutes: bench/gpu_checks.sh as call 1 (it carries the other part of the pack), then this.
# STEPS, FOLDS, DEVICE: smaller settings for a dry run on a CPU; SEEDS=0 STEPS=9600 runs plan 9.
# Writes $OUT/plan8.tar.part-* (records, logs).
set -o pipefail
OUT=${OUT:-/tmp/p8out}; mkdir -p "$OUT"
. bench/gpu_setup.sh runs/p8  # PACK, send_back
L=${1:-540}; STEPS=${STEPS:-4800}; FOLDS=${FOLDS:-4}; DEVICE=${DEVICE:-cuda}
for seed in ${SEEDS:-1 2}; do
  timeout "$L" python3 scripts/lesion_cv.py run --pack "$PACK" --recipes C --folds "$FOLDS" --jobs "$FOLDS" \
    --threads 1 --device "$DEVICE" --log-every 800 --steps "$STEPS" --seed "$seed" \
    --out "runs/p8/cv-C$STEPS-seed$seed.json" > "runs/p8/cv-C$STEPS-seed$seed.log" 2>&1 &
done
wait
tail -n 4 runs/p8/*.log
cd runs/p8 && send_back plan8 $(ls *.json 2>/dev/null) *.log
