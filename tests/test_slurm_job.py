"""slurm/ray_job.sbatch run with bash on this machine as a one-node allocation. SLURM itself is not
installed here, so a stand-in `srun` runs each step locally (it drops placement options and honours
--output); everything else is real: the Ray head under `ray start --block`, the node poll, the
config check, `python -m rlhf.launch` against the running cluster, and the teardown.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

SRUN = """#!/bin/bash
# srun stand-in for a one-machine test: record the call (SRUN_CALLS), drop placement options,
# honour --output, run the command
if [[ -n ${SRUN_CALLS:-} ]]; then
    printf '%s\\n' "srun $* SRUN_CPUS_PER_TASK=${SRUN_CPUS_PER_TASK:-}" >>"$SRUN_CALLS"
fi
out=
while (($#)); do
    case $1 in
        --output=*) out=${1#--output=}; shift ;;
        -w | --nodelist | -N | -n) shift 2 ;;
        -*) shift ;;
        *) break ;;
    esac
done
if [[ -n $out ]]; then exec "$@" >"$out" 2>&1; else exec "$@"; fi
"""
SECRET = "wandb-key-that-must-not-leak-0123456789"


def write_srun(bin_dir: Path) -> None:
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "srun").write_text(SRUN)
    (bin_dir / "srun").chmod(0o755)


def asks_for_cpus(call: str, cpus: int) -> bool:
    """Whether a recorded srun call requests `cpus` per task, by option or by srun's input variable."""
    return f"--cpus-per-task={cpus}" in call.split() or call.endswith(f"SRUN_CPUS_PER_TASK={cpus}")


def srun_calls(tmp_path: Path, slurm_cpus: str | None) -> list[str]:
    """The srun calls ray_cluster.sh makes to find the head's address and start a node."""
    write_srun(tmp_path / "bin")
    calls = tmp_path / "srun-calls.txt"
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "SRUN_CALLS": str(calls), "RAY": "true",
           **({"SLURM_CPUS_PER_TASK": slurm_cpus} if slurm_cpus else {})}
    script = f"source {REPO_ROOT}/slurm/ray_cluster.sh; host_ip localhost >/dev/null; " \
             f"start_node localhost {tmp_path / 'node.log'} --head; wait"
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return calls.read_text().splitlines()


def test_every_srun_step_asks_for_the_jobs_cpus(tmp_path):
    """Since Slurm 22.05 srun does not inherit --cpus-per-task from sbatch: a step that does not ask
    again gets one CPU, and Ray with all its workers would be pinned to it."""
    calls = srun_calls(tmp_path, "6")
    assert len(calls) == 2 and any(" start --block " in call for call in calls), calls
    assert all(asks_for_cpus(call, 6) for call in calls), calls


def test_srun_steps_ask_for_no_cpu_count_outside_a_cpu_allocation(tmp_path):
    calls = srun_calls(tmp_path, None)
    assert len(calls) == 2
    assert not any("--cpus-per-task" in call or not call.endswith("SRUN_CPUS_PER_TASK=") for call in calls), calls


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, timeout_s: float, what: str, poll_s: float = 0.2):
    """Poll `condition` until it returns something true, and return that; fail naming `what` once
    `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() >= deadline:
            pytest.fail(f"gave up after {timeout_s:.0f}s waiting for {what}")
        time.sleep(poll_s)
    return value


def processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(f"{proc.name}: {cmdline[:200]}")
    return found


def ray_left_running(job, timeout_s: float = 30) -> list[str]:
    """The job's Ray processes still alive after giving them `timeout_s` to exit (SIGTERM to a node's
    `ray start --block` stops its processes one after another, not at once)."""
    deadline = time.monotonic() + timeout_s
    while (left := processes_mentioning(job.ray_tmp)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


class Job:
    def __init__(self, tmp_path: Path, overrides: list[str]):
        self.tmp = tmp_path
        self.ray_tmp = tempfile.mkdtemp(prefix="rsj", dir="/tmp")  # short, for Ray's socket paths
        bin_dir = tmp_path / "bin"
        write_srun(bin_dir)
        self.srun_calls = tmp_path / "srun-calls.txt"
        self.log_dir, self.run_dir = tmp_path / "logs", tmp_path / "run"
        ports = " ".join(f"--{name}={free_port()}" for name in (
            "dashboard-port", "ray-client-server-port", "dashboard-agent-listen-port", "metrics-export-port"))
        env = dict(os.environ)
        env.update({
            "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "localhost", "SLURM_JOB_NUM_NODES": "1",
            "SLURM_JOB_ID": "4242", "SLURM_CPUS_PER_TASK": "2", "SLURM_SUBMIT_DIR": str(REPO_ROOT),
            "CLUSTER": "local_cpu", "MODEL": "tiny", "DEVICE": "cpu", "PYTHON": sys.executable,
            "HEAD_IP": "127.0.0.1", "RAY_PORT": str(free_port()), "RAY_TMP": self.ray_tmp, "RAY_START_ARGS": ports,
            "LOG_DIR": str(self.log_dir), "RUN_DIR": str(self.run_dir), "NODE_WAIT_S": "120",
            "SRUN_CALLS": str(self.srun_calls),
            "TMPDIR": self.ray_tmp, "WANDB_API_KEY": SECRET, "WANDB_PROJECT": "slurm-test",
            "TORCH_EXTENSIONS_DIR": str(REPO_ROOT / ".cache" / "torch_extensions")})
        env.pop("RAY_ADDRESS", None)
        self.out = open(tmp_path / "job.out", "w")
        self.proc = subprocess.Popen(["bash", str(REPO_ROOT / "slurm" / "ray_job.sbatch"), *overrides],
                                     cwd=tmp_path, env=env, stdout=self.out, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def output(self) -> str:
        return (self.tmp / "job.out").read_text(errors="replace")

    def all_logs(self) -> str:
        return self.output() + "".join(p.read_text(errors="replace") for p in self.log_dir.glob("*.log"))

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # only this job's own session
        except ProcessLookupError:
            pass
        self.out.close()
        subprocess.run(["rm", "-rf", self.ray_tmp])


@pytest.fixture
def job_factory(tmp_path):
    jobs = []

    def make(overrides):
        jobs.append(Job(tmp_path, overrides))
        return jobs[-1]

    yield make
    for job in jobs:
        job.close()


def test_cancel_tears_ray_down(job_factory):
    """SIGTERM to the batch shell (what scancel / the time limit's --signal send) while the run is
    in progress: the driver is stopped, Ray is stopped, nothing of the job's Ray is left running."""
    job = job_factory(["tracking.wandb=false"])
    # The first SFT step on disk: trainer actors are at work, so the cancel lands mid-run.
    wait_until(lambda: job.proc.poll() is not None or (job.run_dir / "train_steps.jsonl").exists(), 300,
               "the job's first SFT step (train_steps.jsonl)")
    assert job.proc.poll() is None, job.output()
    assert "1 Ray nodes alive" in job.output()
    assert processes_mentioning(job.ray_tmp), "the job's Ray head should be running"
    ray_steps = [call for call in job.srun_calls.read_text().splitlines() if " start --block " in call]
    assert ray_steps and all(asks_for_cpus(call, 2) for call in ray_steps), ray_steps
    job.proc.send_signal(signal.SIGTERM)
    assert job.proc.wait(timeout=120) == 143, job.output()
    assert "cancelled: tearing Ray down" in job.output()
    assert ray_left_running(job) == []
    assert (job.log_dir / "ray-head-localhost.log").exists()
    assert "W&B API key: set" in job.output()
    assert SECRET not in job.all_logs()


def test_bad_override_fails_before_ray_starts(job_factory):
    job = job_factory(["cluster.trainer.ranks=3"])
    assert job.proc.wait(timeout=120) == 2, job.output()
    assert "must be a multiple of" in job.output() and "Traceback" not in job.output()
    assert not (job.log_dir / "ray-head-localhost.log").exists()


@pytest.mark.slow
def test_job_runs_the_recipe_and_cleans_up(job_factory):
    job = job_factory(["tracking.wandb=false", "data.max_sft_examples=32", "data.max_pairs=32", "online.rounds=1",
                       "online.speeches_per_round=8"])
    assert job.proc.wait(timeout=900) == 0, job.output()[-5000:]
    summary = json.loads((job.run_dir / "run_summary.json").read_text())
    assert summary["stages_completed"] == ["sft", "reward", "online_dpo"]
    assert summary["config"]["cluster"]["address"].startswith("127.0.0.1:")
    assert summary["config"]["tracking"]["project"] == "slurm-test"
    assert ray_left_running(job) == []
    assert SECRET not in job.all_logs()
