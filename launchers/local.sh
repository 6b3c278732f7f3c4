#!/bin/bash
# Run the pipeline on this machine: Ray starts locally (or joins cluster.address if given).
#   launchers/local.sh                                   the embedded default (tiny model, CPU)
#   launchers/local.sh device=gpu cluster=gpu_1x8 model=llama3_3b
# Temporary files of Ray, vLLM and friends go to a directory that is removed afterwards.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/rlhf-XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
export TMPDIR=$SCRATCH RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}
export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-$REPO/.cache/torch_extensions}

"$PYTHON" -m rlhf.launch "$@"
