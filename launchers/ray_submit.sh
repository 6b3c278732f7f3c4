#!/bin/bash
# Run the pipeline as a Ray job on an existing Ray cluster (one with the jobs API, i.e. the dashboard):
#   RAY_ADDRESS=http://HEAD:8265 launchers/ray_submit.sh cluster=gpu_2x8 device=gpu model=llama3_8b
# Arguments are Hydra overrides for `python -m rlhf.launch`; the job's driver joins the cluster
# (cluster.address=auto). The code travels with launchers/runtime_env.yaml. Set NO_WAIT=1 to return
# once the job is submitted. Give run_dir as a path on a shared filesystem: relative paths land in the
# job's copy of the code.
# W&B: WANDB_PROJECT / WANDB_ENTITY / WANDB_MODE pass through as overrides, by name. The API key is
# never put into the job's runtime env or command line: give it to the cluster's nodes' environment
# (e.g. export WANDB_API_KEY before `ray start`), or leave it unset to log offline into the run directory.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
RAY=${RAY:-$(dirname "$PYTHON")/ray}
JOB_PYTHON=${JOB_PYTHON:-python}   # the interpreter on the cluster's nodes, with the project's environment
if [[ -z ${RAY_ADDRESS:-} ]]; then
    echo "error: set RAY_ADDRESS to the cluster's job API, e.g. http://HEAD_IP:8265" >&2
    exit 2
fi
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}

# Catch config mistakes here, before anything is uploaded.
"$PYTHON" -m rlhf.layout cluster.address=auto "$@" >/dev/null

TRACKING=()
if [[ -n ${WANDB_PROJECT:-} ]]; then TRACKING+=("tracking.project=$WANDB_PROJECT"); fi
if [[ -n ${WANDB_ENTITY:-} ]]; then TRACKING+=("tracking.entity=$WANDB_ENTITY"); fi
if [[ -n ${WANDB_MODE:-} ]]; then TRACKING+=("tracking.mode=$WANDB_MODE"); fi
WAIT=()
if [[ -n ${NO_WAIT:-} ]]; then WAIT=(--no-wait); fi

exec "$RAY" job submit --address "$RAY_ADDRESS" --runtime-env launchers/runtime_env.yaml "${WAIT[@]}" -- \
    "$JOB_PYTHON" -m rlhf.launch cluster.address=auto "${TRACKING[@]}" "$@"
