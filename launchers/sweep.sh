#!/bin/bash
# A Hydra multirun sweep: one run per combination of DPO beta and learning rate, one after another
# on the same Ray cluster, each in its own run directory under $SWEEP_DIR.
#   launchers/sweep.sh                                   beta 0.05,0.1,0.2 x lr 1e-4,2e-4 (tiny model)
#   BETAS=0.1,0.2 LRS=5e-7,1e-6 launchers/sweep.sh model=llama3_8b device=gpu cluster=gpu_1x8
# Further arguments are Hydra overrides for every run. Compare runs with their metrics.jsonl.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
BETAS=${BETAS:-0.05,0.1,0.2}
LRS=${LRS:-1e-4,2e-4}
SWEEP_DIR=${SWEEP_DIR:-runs/sweep-$(date +%Y%m%d-%H%M%S)}
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}

# Single quotes: ${online.beta} and ${online.lr} are Hydra interpolations, resolved per run.
# shellcheck disable=SC2016
"$PYTHON" -m rlhf.launch --multirun "online.beta=$BETAS" "online.lr=$LRS" \
    "hydra.sweep.dir=$SWEEP_DIR" 'run_dir='"$SWEEP_DIR"'/beta${online.beta}_lr${online.lr}' "$@"
