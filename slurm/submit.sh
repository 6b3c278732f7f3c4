#!/bin/bash
# Check a run's configuration, then submit slurm/ray_job.sbatch with the node count, GPUs and CPUs
# its cluster layout states. Config mistakes fail here, before the job waits in the queue.
#   slurm/submit.sh CLUSTER MODEL [hydra overrides...]      e.g. slurm/submit.sh gpu_2x8 llama3_8b online.rounds=4
# Extra sbatch options: SBATCH_ARGS="--partition=gpu --time=12:00:00" slurm/submit.sh ...
set -euo pipefail

if (($# < 2)); then
    echo "usage: $0 CLUSTER MODEL [hydra overrides...]   (CLUSTER: a file in conf/cluster, MODEL: in conf/model)" >&2
    exit 2
fi
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
CLUSTER=$1 MODEL=$2
shift 2
DEVICE=${DEVICE:-gpu}
PYTHON=${PYTHON:-$REPO/.venv/bin/python}

# Prints NODES=.. GPUS_PER_NODE=.. CPUS_PER_NODE=.. for a valid configuration, exits 2 otherwise.
# The job joins its own cluster, so the check uses a placeholder address.
layout=$("$PYTHON" -m rlhf.layout "cluster=$CLUSTER" "model=$MODEL" "device=$DEVICE" cluster.address=auto "$@")
NODES=$(sed -n 's/^NODES=//p' <<<"$layout")
GPUS_PER_NODE=$(sed -n 's/^GPUS_PER_NODE=//p' <<<"$layout")
CPUS_PER_NODE=$(sed -n 's/^CPUS_PER_NODE=//p' <<<"$layout")

# GPUs are always given, 0 included: ray_job.sbatch's own #SBATCH default (8 per node) would
# otherwise stay in force for a CPU layout. CPUs only when the layout states them (else the
# script's default).
args=(--nodes="$NODES" --ntasks-per-node=1 --gpus-per-node="$GPUS_PER_NODE")
if ((CPUS_PER_NODE > 0)); then args+=(--cpus-per-task="$CPUS_PER_NODE"); fi
read -r -a extra <<<"${SBATCH_ARGS:-}"
echo "sbatch ${args[*]} ${extra[*]} slurm/ray_job.sbatch $*"
CLUSTER=$CLUSTER MODEL=$MODEL DEVICE=$DEVICE PYTHON=$PYTHON \
    sbatch --export=ALL "${args[@]}" "${extra[@]}" slurm/ray_job.sbatch "$@"
