# Sourced by bench/gpu_plan*.sh on a lent GPU machine: joins the training pack that came in two calls
# (.gpudata/p1 and .gpudata/p2; see gpu_plan3.sh for how they are made here), checks its SHA-256
# against .gpudata/sum/trainval.sha256, installs the wheels in .whl/ (segmentation_models_pytorch,
# pydicom) and sets PYTHONPATH.
# Sets PACK (in runs/, which a still-warm machine keeps between calls) and defines send_back.
# Usage: . bench/gpu_setup.sh DIR
mkdir -p "$1"
PACK=$1/trainval.npz.xz
if [ ! -f "$PACK" ]; then
  cat .gpudata/p1/* .gpudata/p2/* > "$PACK" || exit 1
fi
want=$(cut -d' ' -f1 .gpudata/sum/trainval.sha256); got=$(sha256sum < "$PACK" | cut -d' ' -f1)
[ "$want" = "$got" ] || { echo "pack damaged: sha256 $got, expected $want"; rm -f "$PACK"; exit 1; }
[ -d /tmp/site/segmentation_models_pytorch ] || python3 -m pip install -q --no-index --no-deps --no-compile \
  --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
send_back() {  # NAME PATH...: PATH (from the current folder; no training states) to $OUT/NAME.tar.part-*
  tar cf - --exclude=training-state.safetensors "${@:2}" | split -b 15M - "$OUT/$1.tar.part-"
  ls -la "$OUT"
}
