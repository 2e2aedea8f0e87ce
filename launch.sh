#!/usr/bin/env bash
# Launch molmo2-jax training.
#   ./launch.sh configs/stage1.py [flags...]            one host, all local GPUs
#   ./launch.sh --cpu 8 configs/demo.py [flags...]      CPU, faking 8 devices to try sharding
#   srun ./launch.sh configs/stage1.py [flags...]       multi-host under SLURM (one task per host)
#   JAX_COORDINATOR_ADDRESS=host0:1234 JAX_NUM_PROCESSES=N JAX_PROCESS_ID=i ./launch.sh ...   by hand
#   ./launch.sh --stages 1,2,3 --workdir runs/nano [--data-root DATA] [--configs DIR] [flags...]
#       the whole recipe: stage N trains in WORKDIR/stageN from stage N-1's final weights (WORKDIR/stageN-1/model);
#       data.path = DATA/stageN (stage 3 falls back to DATA/stage2); a finished stage (its model/ exists) is
#       skipped and a stopped one resumes from its latest checkpoint, so rerunning the command continues.
#   ./launch.sh --exec python benchmarks/bench_train_step.py ...   any command under the same environment (flags)
# Multi-process runs call jax.distributed.initialize(), which reads SLURM or the JAX_* variables.
set -euo pipefail

if [[ "${1:-}" == "--cpu" ]]; then
  n="$2"; shift 2
  export JAX_PLATFORMS=cpu
  export XLA_FLAGS="--xla_force_host_platform_device_count=${n} ${XLA_FLAGS:-}"
else
  # Throughput flags for NVIDIA GPUs: overlap collectives with compute, latency-hiding scheduler.
  export XLA_FLAGS="--xla_gpu_enable_latency_hiding_scheduler=true \
--xla_gpu_enable_triton_gemm=false \
--xla_gpu_enable_command_buffer= \
--xla_gpu_all_reduce_combine_threshold_bytes=134217728 \
--xla_gpu_all_gather_combine_threshold_bytes=134217728 \
--xla_gpu_reduce_scatter_combine_threshold_bytes=134217728 ${XLA_FLAGS:-}"
  export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.92}"
fi

if [[ "${1:-}" == "--exec" ]]; then
  shift
  exec "$@"
fi

if [[ "${1:-}" == "--stages" ]]; then
  IFS=',' read -r -a stages <<< "$2"; shift 2
  workdir="" data_root="" configs="configs" rest=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --workdir) workdir="$2"; shift 2 ;;
      --data-root) data_root="$2"; shift 2 ;;
      --configs) configs="$2"; shift 2 ;;
      *) rest+=("$1"); shift ;;
    esac
  done
  [[ -n "$workdir" ]] || { echo "launch.sh --stages needs --workdir DIR" >&2; exit 2; }
  prev=""
  for n in "${stages[@]}"; do
    dir="$workdir/stage$n"
    args=(--config "$configs/stage$n.py" --workdir "$dir")
    if [[ -n "$prev" ]]; then args+=("--config.init.checkpoint=$prev"); fi
    if [[ -n "$data_root" ]]; then
      data="$data_root/stage$n"; [[ -d "$data" || "$n" != 3 ]] || data="$data_root/stage2"
      args+=("--config.data.path=$data")
    fi
    if [[ -f "$dir/model/processor.json" ]]; then  # written last by main.export_for_inference
      echo "stage $n: already finished ($dir/model), skipping"
    else
      echo "stage $n: python -m molmo2_jax.main ${args[*]} ${rest[*]:-}"
      python -m molmo2_jax.main "${args[@]}" ${rest[@]+"${rest[@]}"}
    fi
    prev="$dir/model"
  done
  exit 0
fi

config="$1"; shift
exec python -m molmo2_jax.main --config "$config" "$@"
