#!/bin/bash
# Plan 7 (docs/lesion-experiments.md), for a later GPU lease: recipe C's 4 folds at 2400 steps with seed 1
# and at 4800 steps with seed 0, and beside them the 4800-step ship candidate on all training slices (kept
# only if the rule passes; otherwise deleted unmeasured). Prepared here as for gpu_plan3.sh (the pack in two
# parts, the wheel). There:  bash bench/gpu_plan7.sh LIMIT_S   About 33 600 steps in all, 8-9 min on an
# H200 at plan 3's rate: if LIMIT_S runs out, the same command on the still-warm machine goes on from the
# runs' saved states. SHORT, LONG, FOLDS, DEVICE: smaller settings for a dry run on a CPU.
# Writes $OUT/plan7.tar.part-* (the two records, the logs, the trained folder).
set -o pipefail
OUT=${OUT:-/tmp/p7out}; mkdir -p "$OUT"
. bench/gpu_setup.sh runs/p7  # PACK
L=${1:-540}; SHORT=${SHORT:-2400}; LONG=${LONG:-4800}; FOLDS=${FOLDS:-4}; DEVICE=${DEVICE:-cuda}
cv() {
  timeout "$L" python3 scripts/lesion_cv.py run --pack "$PACK" --recipes C --folds "$FOLDS" --jobs "$FOLDS" \
    --threads 1 --device "$DEVICE" --log-every 800 "$@"
}
cv --steps "$SHORT" --seed 1 --out runs/p7/cv-C2400-seed1.json > runs/p7/cv-short.log 2>&1 &
cv --steps "$LONG" --out runs/p7/cv-C4800.json > runs/p7/cv-long.log 2>&1 &
timeout "$L" python3 -m ctmodels train-lesion --pack "$PACK" --out runs/p7/shipC4800 --steps "$LONG" --batch-size 8 \
  --seed 0 --semiseg-share 0.75 --lr 2e-3 --ema 0 --intensity-aug weak --threads 1 --device "$DEVICE" \
  > runs/p7/ship.log 2>&1 &
wait
tail -n 4 runs/p7/cv-short.log runs/p7/cv-long.log runs/p7/ship.log
cd runs/p7 && send_back plan7 $(ls *.json 2>/dev/null) *.log $(ls -d shipC4800 2>/dev/null)
