#!/bin/bash
# Plan 8 across calls of one lease: starts bench/gpu_plan8.sh in its own process session (setsid), so that
# the runs go on when a call ends at its limit instead of being killed and resumed from their states, and
# waits for it up to WAIT_S seconds. A later call of this script on the still-warm machine waits on the
# same run instead of starting another. When plan 8 has finished, its files (plan8.tar.part-*) and the
# driver's log are copied to $OUT. Carry .gpudata/p1 (call 1, bench/gpu_checks.sh, carried the rest).
# There:  bash bench/gpu_plan8_wait.sh WAIT_S     (STEPS, FOLDS, DEVICE, SEEDS as in gpu_plan8.sh)
# The state folder is named by steps and seeds, so plan 9 (SEEDS=0 STEPS=9600) on a machine where plan 8
# already ran starts its own runs instead of waiting on plan 8's finished one.
OUT=${OUT:-/tmp/p8wait}; W=${1:-540}
S=${SEEDS:-1 2}; D=${PLAN8_STATE:-/tmp/plan8-detached-C${STEPS:-4800}-seeds${S// /-}}
mkdir -p "$OUT" "$D"
if [ ! -f "$D/started" ]; then
  touch "$D/started"
  OUT="$D/out" setsid nohup bash -c 'bash bench/gpu_plan8.sh 100000; touch "$0/done"' "$D" \
    > "$D/driver.log" 2>&1 < /dev/null &
fi
end=$((SECONDS + W))
while [ ! -f "$D/done" ] && [ $SECONDS -lt $end ]; do sleep 5; done
tail -n 2 runs/p8/cv-C"${STEPS:-4800}"-seed*.log 2>/dev/null
if [ -f "$D/done" ]; then
  cp "$D"/out/* "$D/driver.log" "$OUT"/ && echo "plan 8 finished"
else
  echo "plan 8 still running after ${W}s; call again to wait on it"
fi
