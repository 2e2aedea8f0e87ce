#!/usr/bin/env bash
# Issue #18's GPU check in one prepared run: nano at stage-1 shapes in bf16 (step time, tokens/s, MFU, device
# memory), the PyTorch reference on the same model and batch (ratio), and an XProf trace of JAX's steps.
#
#   here, once:  benchmarks/gpu_check.sh --wheels     # the packages the GPU image lacks, into .whl/ (ignored)
#   on the GPU:  run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
#   on a CPU:    MODEL=tiny SEQ=256 ROWS=1 DTYPE=float32 ATTN=blockwise OUT=/tmp/gc bash benchmarks/gpu_check.sh
#
# Writes to $OUT: bench.jsonl (one JSON row per side + the ratio, from benchmarks/bench_train_step.py), log.txt,
# env.txt (nvidia-smi, versions), trace/ (jax.profiler; open with TensorBoard's profile plugin / XProf).
# Knobs (environment): MODEL (nano), SEQ (2536), ROWS (8 sequences per step, one image of CROPS=10 crops each),
# ACCUM (1 JAX micro-batch), DTYPE (bfloat16), REMAT (block), ATTN (cudnn, then FALLBACK_ATTN=blockwise if that
# fails), STEPS (4; medians after the first), LIMIT_S (240 s per bench command).
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--wheels" ]]; then
  # transformers 5.23 (the image has 5.17, without this Molmo2), ml_collections (absent), flax as pinned here
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    transformers==5.23.0 ml_collections==1.1.0 flax==0.12.8
  du -sh .whl
  exit 0
fi

OUT="${OUT:-/tmp/gpu_check}"
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}" || { echo "wheel install failed" >&2; exit 1; }
fi
export PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"

{
  date -u; nvidia-smi 2>&1 | head -15
  "$PY" -c "import jax, flax, torch, transformers; print('jax', jax.__version__, jax.devices()); \
print('flax', flax.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)" 2>&1
} > "$OUT/env.txt"
cat "$OUT/env.txt"

bench() {  # bench ATTN: the one-command comparison, rows appended to bench.jsonl; fails when the JAX side failed
  local attn="$1"
  timeout "${LIMIT_S:-240}" bash launch.sh --exec "$PY" benchmarks/bench_train_step.py --model "${MODEL:-nano}" \
    --seq-len "${SEQ:-2536}" --rows "${ROWS:-8}" --crops "${CROPS:-10}" --grad-accum "${ACCUM:-1}" \
    --dtype "${DTYPE:-bfloat16}" --remat "${REMAT:-block}" --attention "$attn" --steps "${STEPS:-4}" \
    --isolate --torch --profile "$OUT/trace" > "$OUT/rows.tmp" 2>> "$OUT/log.txt"
  local rc=$?
  cat "$OUT/rows.tmp" >> "$OUT/bench.jsonl"
  cat "$OUT/rows.tmp"
  [[ $rc == 0 ]] && grep -q '"side": "jax", "status": "ok"' "$OUT/rows.tmp"
}

bench "${ATTN:-cudnn}" || { echo "attention ${ATTN:-cudnn} failed (see log.txt); trying ${FALLBACK_ATTN:-blockwise}";
                            bench "${FALLBACK_ATTN:-blockwise}"; }
rm -f "$OUT/rows.tmp"
tail -5 "$OUT/log.txt"
