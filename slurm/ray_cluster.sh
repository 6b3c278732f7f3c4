#!/bin/bash
# Functions to bring a Ray cluster up and down on a SLURM allocation; sourced by ray_job.sbatch.
# Expects: PYTHON (the project's interpreter), RAY (its `ray` command), LOG_DIR (one log per node).
# Every Ray process runs under `srun ... ray start --block`, so ending that srun stops the node.

RAY_PIDS=()

# Since Slurm 22.05 srun no longer inherits --cpus-per-task from sbatch: a step that does not ask
# again gets one CPU, and Ray with every worker it starts would be pinned to that core.
# SRUN_CPUS_PER_TASK is srun's input variable for that option, so every srun below asks again.
if [[ -n ${SLURM_CPUS_PER_TASK:-} ]]; then
    export SRUN_CPUS_PER_TASK=${SRUN_CPUS_PER_TASK:-$SLURM_CPUS_PER_TASK}
fi

# Host names of the allocation, one per line. `scontrol show hostnames` where SLURM's tools are
# installed; otherwise the project's parser of the same syntax (e.g. gpu[01-03,07],cpu5).
job_hosts() {
    local nodelist=${1:-${SLURM_JOB_NODELIST:-}}
    if [[ -z $nodelist ]]; then
        echo "error: SLURM_JOB_NODELIST is empty: run inside an allocation (sbatch/salloc)" >&2
        return 2
    fi
    if command -v scontrol >/dev/null 2>&1; then
        scontrol show hostnames "$nodelist"
    else
        "$PYTHON" -m rlhf.slurm_nodes "$nodelist"
    fi
}

# First address of a host's interfaces, as seen from that host (HEAD_IP overrides it for the head).
# `hostname -I` rather than `hostname --ip-address`, which gives 127.0.1.1 where /etc/hosts maps the
# host name to loopback (Debian's default).
host_ip() {
    # shellcheck disable=SC2016
    srun --overlap --nodes=1 --ntasks=1 -w "$1" bash -c 'hostname -I 2>/dev/null || hostname --ip-address' |
        awk '{print $1}'
}

# start_node HOST LOG ARGS...: `ray start --block ARGS` on HOST in the background.
start_node() {
    local host=$1 log=$2
    shift 2
    srun --overlap --nodes=1 --ntasks=1 -w "$host" --output="$log" \
        "$RAY" start --block --disable-usage-stats "$@" &
    RAY_PIDS+=($!)
}

# wait_for_nodes ADDRESS COUNT TIMEOUT [GPUS]: poll the cluster until COUNT nodes are alive, each
# reporting GPUS GPUs (0 or absent: unchecked), or TIMEOUT seconds pass (exit status 1 then).
wait_for_nodes() {
    local address=$1 count=$2 timeout=$3 gpus=${4:-0}
    "$PYTHON" -m rlhf.ray_wait --address "$address" --nodes "$count" --timeout "$timeout" --gpus-per-node "$gpus"
}

# Stop every Ray node this job started: SIGTERM to each srun (forwarded to `ray start --block`,
# which stops its node's Ray processes), then SIGKILL whatever is left after a grace period.
stop_ray() {
    local pid waited=0
    ((${#RAY_PIDS[@]})) || return 0
    echo "stopping Ray on ${#RAY_PIDS[@]} node(s)"
    for pid in "${RAY_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    while ((waited < 30)); do
        local alive=0
        for pid in "${RAY_PIDS[@]}"; do
            if kill -0 "$pid" 2>/dev/null; then alive=1; fi
        done
        ((alive)) || break
        sleep 1
        waited=$((waited + 1))
    done
    for pid in "${RAY_PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    RAY_PIDS=()
}
