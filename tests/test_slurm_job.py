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
# srun stand-in for a one-machine test: drop placement options, honour --output, run the command
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


class Job:
    def __init__(self, tmp_path: Path, overrides: list[str]):
        self.tmp = tmp_path
        self.ray_tmp = tempfile.mkdtemp(prefix="rsj", dir="/tmp")  # short, for Ray's socket paths
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "srun").write_text(SRUN)
        (bin_dir / "srun").chmod(0o755)
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
    driver_log = job.log_dir / "driver-localhost.log"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and job.proc.poll() is None:
        if driver_log.exists() and "run directory:" in driver_log.read_text(errors="replace"):
            break
        time.sleep(1)
    assert job.proc.poll() is None, job.output()
    assert "1 Ray nodes alive" in job.output()
    assert processes_mentioning(job.ray_tmp), "the job's Ray head should be running"
    time.sleep(3)
    job.proc.send_signal(signal.SIGTERM)
    assert job.proc.wait(timeout=120) == 143, job.output()
    assert "cancelled: tearing Ray down" in job.output()
    time.sleep(2)
    assert processes_mentioning(job.ray_tmp) == []
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
    time.sleep(2)
    assert processes_mentioning(job.ray_tmp) == []
    assert SECRET not in job.all_logs()
