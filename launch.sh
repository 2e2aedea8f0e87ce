#!/usr/bin/env bash
# Launch molmo2-jax training.
#   ./launch.sh configs/stage1.py [flags...]            one host, all local GPUs
#   ./launch.sh --cpu 8 configs/demo.py [flags...]      CPU, faking 8 devices to try sharding
#   srun ./launch.sh configs/stage1.py [flags...]       multi-host under SLURM (one task per host)
#   JAX_COORDINATOR_ADDRESS=host0:1234 JAX_NUM_PROCESSES=N JAX_PROCESS_ID=i ./launch.sh ...   by hand
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

config="$1"; shift
exec python -m molmo2_jax.main --config "$config" "$@"
