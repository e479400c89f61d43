#!/usr/bin/env bash
# The GPU check, prepared to run well inside 5 minutes on one GPU:
#   1. benchmarks/throughput.py on the GPU for VGG-16 and timm:resnet50, vistrain's engine against a
#      hand-written loop, with bf16 autocast, channels_last and torch.compile switched on one by one;
#   2. benchmarks/nvml_check.py: the system panel's NVML values against nvidia-smi;
#   3. one table at the end.
# Without a CUDA device it says so, skips 1 and 2, and runs the CPU smoke version of the
# throughput comparison instead, so the script itself is checked anywhere.
#
#   bash benchmarks/gpu.sh                 # PYTHON=... to pick the interpreter; OUT=dir keeps the logs
#   bash benchmarks/gpu.sh --smoke         # seconds: LeNet-5 only, 2 steps, on the GPU when there is one
set -uo pipefail
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
declare -a TABLE=()
status=0

row() {  # row NAME LOGFILE: the model lines of a throughput log, prefixed with the configuration
  local name=$1 log=$2
  while IFS= read -r line; do TABLE+=("$(printf '%-28s %s' "$name" "$line")"); done \
    < <(grep -E '^(vgg|timm|lenet|mlp|alexnet|perceptron)' "$log" || true)
}

if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  "$PY" -c 'import torch; print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__)'
  MODELS=vgg16,timm:resnet50
  COMMON=(--models "$MODELS" --device cuda --batch 64 --steps 8 --rounds 3)
  CONFIGS=("fp32 eager|" "bf16|--amp" "bf16 channels_last|--amp --channels-last"
           "bf16 channels_last compile|--amp --channels-last --compile")
  if [ "$SMOKE" = 1 ]; then
    COMMON=(--models lenet5 --device cuda --steps 2 --rounds 1)
    CONFIGS=("cuda fp32 eager (smoke)|")
  fi
  for cfg in "${CONFIGS[@]}"; do
    name=${cfg%%|*}; flags=${cfg#*|}
    log="$OUT/throughput-${name// /-}.log"
    echo "== throughput: $name"
    # shellcheck disable=SC2086
    if timeout 150 "$PY" benchmarks/throughput.py "${COMMON[@]}" $flags 2>&1 | tee "$log"; then
      row "$name" "$log"
    else
      echo "throughput ($name) failed or ran past 150 s; see $log"; status=1
    fi
  done
  echo "== NVML"
  timeout 60 "$PY" benchmarks/nvml_check.py 2>&1 | tee "$OUT/nvml.log" || status=1
  nvml=$(tail -n 1 "$OUT/nvml.log")
else
  echo "no CUDA device here: skipping the GPU throughput runs (VGG-16, timm:resnet50 with bf16," \
       "channels_last, torch.compile) and the NVML check; running the CPU smoke comparison instead"
  log="$OUT/throughput-cpu.log"
  if timeout 240 "$PY" benchmarks/throughput.py --models lenet5 --rounds 1 --steps 2 2>&1 | tee "$log"; then
    row "cpu fp32 eager (smoke)" "$log"
  else
    echo "CPU smoke comparison failed; see $log"; status=1
  fi
  nvml="nvml check: skipped (no CUDA device)"
fi

echo
echo "== summary (logs in $OUT)"
printf '%-28s %s\n' "configuration" "model input GFLOP batch | train/s ours raw ratio GFLOP/s of-peak | infer/s ours raw ratio"
for line in "${TABLE[@]}"; do echo "$line"; done
echo "$nvml"
exit $status
