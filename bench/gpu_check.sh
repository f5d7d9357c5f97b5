#!/usr/bin/env bash
# Every GPU check of the trainer in one go, for a session that has one H100/H200 (about 7 minutes, at most 9):
#   1. the CUDA tests (pytest -m gpu): backends, cast cache, compile, chunked loss, a training run with the
#      CUDA defaults (bf16, weight cast cache, blocks compiled with inductor);
#   2. bench/gpu_model.py: parity of every backend and speed lever against the reference, naming what ran;
#   3. bench/gpu_train.py at the issue's shape (8 layers of the 8B's width, seq 4096, micro-batch 4, the run's
#      gradient accumulation capped at 4 per timed step), timing trainer.step.train_step on the model
#      trainer.build.build_model makes: the trainer's defaults (train.compile and train.weight_casts "auto"),
#      then all levers off (eager), --train.compile=false, full logits, --train.weight_casts=per-forward;
#      transformers' JetMoeForCausalLM through the same train_step; a grouped profile of the defaults.
#
#   bash bench/gpu_check.sh            # from the repository root; logs and all JSON lines go to $OUT
#   MICRO_BATCH=2 bash bench/gpu_check.sh    # an 80 GB H100 if micro-batch 4 does not fit
#
# Prints one JSON line per measurement (the benches' own) and one per step ({"gpu_check_step": ...}); writes
# $OUT/{env,tests,parity,train}.log and $OUT/gpu_check.jsonl (every JSON line). Needs only what the device
# image has (torch, transformers, pytest; no datatrove, polars or megablocks). Without CUDA: exit 2.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_check}
MICRO_BATCH=${MICRO_BATCH:-4}
mkdir -p "$OUT"

if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "bench/gpu_check.sh: $PY cannot import torch; set PYTHON to the interpreter that has it" >&2
  echo '{"gpu_check": "skipped", "reason": "torch not importable"}'
  exit 2
fi
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "bench/gpu_check.sh needs CUDA: no CUDA device is visible to $PY (torch.cuda.is_available() is False)." \
       "Run it on an H100/H200 machine; the GPU figures stay owed until then." >&2
  echo '{"gpu_check": "skipped", "reason": "no CUDA device"}'
  exit 2
fi

failed=0
step() {  # step NAME SECONDS COMMAND...: run with a time limit, keep the log, report rc and seconds
  local name=$1 limit=$2 start rc
  shift 2
  start=$(date +%s)
  timeout --signal=TERM --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  cat "$OUT/$name.log"
  grep -h '^{' "$OUT/$name.log" >> "$OUT/gpu_check.jsonl"
  [ "$rc" -ne 0 ] && failed=1
  echo "{\"gpu_check_step\": \"$name\", \"rc\": $rc, \"seconds\": $(( $(date +%s) - start )), \"timed_out\": $([ $rc -eq 124 ] && echo true || echo false)}" \
    | tee -a "$OUT/gpu_check.jsonl"
}

: > "$OUT/gpu_check.jsonl"
step env 30 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv; \
  $PY -c 'import torch, transformers; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"transformers\", transformers.__version__)'"
step tests 150 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu_perf.py tests/test_model_backends.py \
  tests/test_train_loop.py
step parity 80 "$PY" bench/gpu_model.py
# variants in order of importance (per-forward-casts last: its blocks compile a second graph); the profile
# right after "defaults"; transformers last
step train 280 "$PY" bench/gpu_train.py --layers 8 --micro-batch "$MICRO_BATCH" --max-accum 4 --steps 3 --warmup 2 \
  --variants defaults,eager,no-compile,full-logits,per-forward-casts --compare-hf --profile
echo "{\"gpu_check\": \"done\", \"failed\": $failed, \"out\": \"$OUT\"}"
exit $failed
