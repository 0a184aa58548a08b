#!/usr/bin/env bash
# The GPU check: one script for a machine with an NVIDIA GPU, python3 with torch + transformers +
# accelerate, no Rust toolchain and no network. Build on a machine with Rust (`make build cuda
# models`, then `make gpu-bundle` for a compressed copy to carry), then run here from the
# repository root:
#
#   benches/gpu/check.sh            # everything (sized for under 8 minutes; not yet timed on a GPU)
#   benches/gpu/check.sh --dry      # the CPU-side steps only (any machine, no GPU needed)
#
# What it does, and prints as one table at the end:
#   1. the binaries: what nergrid-cuda needs at run time (readelf -d), whether it loads;
#   2. the demo grid (experiments/demo.toml, 8 runs) on cuda:0: wall time, mean test F1;
#   3. the toy run (one demo run, 2 epochs, no dropout noise between devices aside) on cuda:0 and
#      on the CPU: test F1 and per-epoch train loss of each, and their largest difference;
#   4. one epoch of a BERT-base-sized encoder (random weights written by transformers: hidden 768,
#      12 layers) on the 1177 training split, batch 16, in nergrid at each precision that
#      `nergrid validate` accepts on a GPU and in the Trainer with fp16=True and bf16=True: train tokens/s, peak GPU
#      memory;
#   5. two runs sharing one GPU (runs_per_device = 2): both finish, and they overlap in time.
# --dry instead checks, on a machine without a GPU, that the CPU front end works with the CUDA
# worker installed beside it: validate, plan, run with devices = "auto" (CPU fallback, said in
# log.txt), report, and the one-line refusal (exit 2) of devices = "cuda:0".
#
# Inputs (environment): BIN_DIR (target/release: nergrid and nergrid-cuda, or their .xz),
# PYTHON (python3), MODEL_DIR (models/all-MiniLM-L6-v2, or its fp16 archive from the bundle),
# NERGRID_SWEDISH_1177 (the original 1177 file), PEER (the Trainer yardstick script),
# WORK (a scratch directory, default a new one under the system's temp directory).
set -uo pipefail

DRY=0
[ "${1:-}" = "--dry" ] && DRY=1
BIN_DIR=${BIN_DIR:-target/release}
PYTHON=${PYTHON:-python3}
MODEL_DIR=${MODEL_DIR:-models/all-MiniLM-L6-v2}
DATA_1177=${NERGRID_SWEDISH_1177:-../shared/data/swedish-medical-ner/1177_annotated_sentences.txt}
PEER=${PEER:-../shared/tools/peer/hf_trainer_ner.py}
WORK=${WORK:-$(mktemp -d)}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$WORK"
ROWS=()
FAILED=0

row() { ROWS+=("$(printf '| %s | %s | %s |' "$1" "$2" "$3")"); echo "check: $1: $2 ($3)"; }
fail() { row "$1" "FAILED" "$2"; FAILED=1; }

# --- inputs -------------------------------------------------------------------------------------
for exe in nergrid nergrid-cuda; do
  if [ ! -x "$BIN_DIR/$exe" ] && [ -f "$BIN_DIR/$exe.xz" ]; then
    xz -dkc "$BIN_DIR/$exe.xz" > "$WORK/$exe" && chmod +x "$WORK/$exe" && BIN_DIR_UNPACKED="$WORK"
  fi
done
BIN_DIR=${BIN_DIR_UNPACKED:-$BIN_DIR}
NERGRID="$BIN_DIR/nergrid"
[ -x "$NERGRID" ] || { echo "check: no $NERGRID (run make build cuda first)" >&2; exit 2; }
[ -x "$BIN_DIR/nergrid-cuda" ] || { echo "check: no $BIN_DIR/nergrid-cuda (run make cuda first)" >&2; exit 2; }
if [ ! -f "$MODEL_DIR/model.safetensors" ] && [ -f "$MODEL_DIR.fp16.tar.xz" ]; then
  mkdir -p "$MODEL_DIR" && tar -xJf "$MODEL_DIR.fp16.tar.xz" -C "$MODEL_DIR" &&
    "$PYTHON" "$HERE/model_tool.py" upcast "$MODEL_DIR"
fi
[ -f "$MODEL_DIR/model.safetensors" ] || { echo "check: no model in $MODEL_DIR (make models)" >&2; exit 2; }
MODEL_DIR=$(cd "$MODEL_DIR" && pwd)

# A copy of a spec with its results under $WORK and extra [train]/[schedule] lines.
spec_copy() { # SRC NAME TRAIN_LINES SCHEDULE_LINES
  sed -e "s#^name = .*#name = \"$2\"\noutput_dir = \"$WORK/results/$2\"#" \
    -e "s#^path = \"models/all-MiniLM-L6-v2\"#path = \"$MODEL_DIR\"#" "$1" > "$WORK/$2.toml"
  [ -n "$3" ] && printf '\n[train]\n%s\n' "$3" | "$PYTHON" "$HERE/model_tool.py" merge-toml "$WORK/$2.toml"
  [ -n "$4" ] && printf '\n[schedule]\n%s\n' "$4" | "$PYTHON" "$HERE/model_tool.py" merge-toml "$WORK/$2.toml"
  echo "$WORK/$2.toml"
}
summary() { "$PYTHON" "$HERE/model_tool.py" summary "$1"; }

# --- 1. binaries --------------------------------------------------------------------------------
needed=$(readelf -d "$BIN_DIR/nergrid-cuda" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')
row "nergrid-cuda needs" "$needed" "$(du -h "$BIN_DIR/nergrid-cuda" | cut -f1) stripped"
if "$BIN_DIR/nergrid-cuda" --version > "$WORK/cuda-start.txt" 2>&1; then
  row "nergrid-cuda starts" "yes" "$(cat "$WORK/cuda-start.txt")"
else
  row "nergrid-cuda starts" "no" "$(tail -n 1 "$WORK/cuda-start.txt")"
fi

if [ "$DRY" = 1 ]; then
  # --- the CPU side: the front end with the CUDA worker beside it, on a machine without a GPU --
  export NERGRID_CUDA_WORKER="$BIN_DIR/nergrid-cuda"
  spec=$(spec_copy experiments/demo.toml dry_front "epochs = 1" "")
  "$NERGRID" validate "$spec" > /dev/null && row "validate" "ok" "exit 0" || fail "validate" "exit $?"
  n=$("$NERGRID" plan "$spec" --format csv | tail -n +2 | wc -l)
  [ "$n" = 8 ] && row "plan" "8 runs" "demo grid" || fail "plan" "$n runs"
  "$NERGRID" run "$spec" --devices cuda:0 > /dev/null 2> "$WORK/refusal.txt"
  code=$?
  errors=$(grep -c '^error' "$WORK/refusal.txt")
  if [ "$code" = 2 ] && [ "$errors" = 1 ] && ! grep -q 'shared librar\|panicked' "$WORK/refusal.txt"; then
    row "run --devices cuda:0" "refused, exit 2" "$(grep '^error' "$WORK/refusal.txt")"
  else
    fail "run --devices cuda:0" "exit $code: $(cat "$WORK/refusal.txt")"
  fi
  if "$NERGRID" run "$spec" --devices auto --index 0 > /dev/null 2> "$WORK/auto.txt"; then
    log=$(ls "$WORK"/results/dry_front/runs/*/log.txt | head -n 1)
    row "run --devices auto" "done on the CPU" "$(grep -m1 '^device:' "$log")"
  else
    fail "run --devices auto" "$(tail -n 3 "$WORK/auto.txt")"
  fi
  "$NERGRID" report "$spec" > /dev/null && row "report" "ok" "report.md written" || fail "report" "exit $?"
else
  export NERGRID_CUDA_WORKER="$BIN_DIR/nergrid-cuda"
  gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader -i 0)
  row "GPU" "$gpu" "nvidia-smi"
  gpu_mem() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0; }
  # Runs "$@" while sampling the GPU's used memory; prints the peak above the idle level (MiB).
  with_peak() {
    local idle peak=0 pid m
    idle=$(gpu_mem)
    "$@" & pid=$!
    while kill -0 "$pid" 2> /dev/null; do
      m=$(gpu_mem); [ "$m" -gt "$peak" ] && peak=$m; sleep 0.2
    done
    wait "$pid"; local rc=$?
    echo $((peak - idle)) > "$WORK/peak.txt"
    return $rc
  }

  # --- 2. the demo grid on cuda:0 ---------------------------------------------------------------
  spec=$(spec_copy experiments/demo.toml gpu_demo "" "")
  start=$(date +%s)
  if "$NERGRID" run "$spec" --devices cuda:0 > "$WORK/demo.log" 2>&1; then
    row "demo grid on cuda:0" "$(summary "$WORK/results/gpu_demo")" "$(( $(date +%s) - start )) s wall"
  else
    fail "demo grid on cuda:0" "$(tail -n 3 "$WORK/demo.log")"
  fi

  # --- 3. the toy run on cuda and on the CPU ----------------------------------------------------
  for dev in cuda:0 cpu; do
    name=toy_${dev%%:*}
    spec=$(spec_copy experiments/demo.toml "$name" "epochs = 2" "")
    "$NERGRID" run "$spec" --devices "$dev" --index 0 > "$WORK/$name.log" 2>&1 ||
      fail "toy run on $dev" "$(tail -n 3 "$WORK/$name.log")"
  done
  row "toy run, cuda vs cpu" "$("$PYTHON" "$HERE/model_tool.py" compare "$WORK/results/toy_cuda" "$WORK/results/toy_cpu")" \
    "test F1 and per-epoch train loss"

  # --- 4. one epoch of a BERT-base-sized encoder ------------------------------------------------
  base="$WORK/bert-base-random"
  "$PYTHON" "$HERE/model_tool.py" bert-base "$MODEL_DIR" "$base"
  cat > "$WORK/base.toml" << EOF
[experiment]
name = "gpu_base"
output_dir = "$WORK/results/gpu_base"
[models.base]
path = "$base"
[datasets.swedish_1177]
format = "brackets"
path = "$DATA_1177"
split = { test = 0.2, validation = 0.1, seed = 67 }
[grid]
models = ["base"]
schemes = ["BIO"]
learning_rates = [5e-5]
datasets = ["swedish_1177"]
seeds = [1]
[train]
epochs = 1
batch_size = 16
max_length = 256
EOF
  for precision in fp32 tf32 bf16 fp16; do
    spec="$WORK/base_$precision.toml"
    sed -e "s#gpu_base#gpu_base_$precision#" "$WORK/base.toml" > "$spec"
    # fp32 is the default: a build without the precision key still measures it.
    [ "$precision" = fp32 ] || echo "precision = \"$precision\"" >> "$spec"
    if ! "$NERGRID" validate "$spec" > "$WORK/validate_$precision.txt" 2>&1; then
      row "nergrid $precision, 1 epoch" "not supported" "$(grep -m1 'precision\|engine' "$WORK/validate_$precision.txt")"
      continue
    fi
    if with_peak "$NERGRID" run "$spec" --devices cuda:0 > "$WORK/base_$precision.log" 2>&1; then
      row "nergrid $precision, 1 epoch" "$(summary "$WORK/results/gpu_base_$precision" tokens)" \
        "peak GPU memory $(cat "$WORK/peak.txt") MiB (nvidia-smi)"
    else
      fail "nergrid $precision, 1 epoch" "$(tail -n 3 "$WORK/base_$precision.log")"
    fi
  done
  for precision in fp16 bf16; do
    if CHECK_PRECISION=$precision "$PYTHON" "$HERE/trainer_gpu.py" "$PEER" --model "$base" --data "$DATA_1177" \
      --data-format brackets --scheme BIO --lr 5e-5 --epochs 1 --seed 1 --split-seed 67 \
      > "$WORK/trainer_$precision.json" 2> "$WORK/trainer_$precision.log"; then
      row "Trainer $precision=True, 1 epoch" "$("$PYTHON" "$HERE/model_tool.py" trainer "$WORK/trainer_$precision.json")" \
        "the yardstick on the same GPU"
    else
      fail "Trainer $precision=True, 1 epoch" "$(tail -n 3 "$WORK/trainer_$precision.log")"
    fi
  done

  # --- 5. two runs on one GPU -------------------------------------------------------------------
  spec=$(spec_copy experiments/demo.toml gpu_shared "epochs = 2" "runs_per_device = 2")
  if "$NERGRID" run "$spec" --devices cuda:0 --index 0 --index 1 > "$WORK/shared.log" 2>&1; then
    row "runs_per_device = 2" "$("$PYTHON" "$HERE/model_tool.py" overlap "$WORK/results/gpu_shared")" "two runs on cuda:0"
  else
    fail "runs_per_device = 2" "$(tail -n 3 "$WORK/shared.log")"
  fi
fi

echo
echo "| check | result | how |"
echo "|---|---|---|"
printf '%s\n' "${ROWS[@]}"
exit $FAILED
