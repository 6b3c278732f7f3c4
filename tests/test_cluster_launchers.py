"""launchers/: `ray job submit` to a running Ray cluster, the local launcher, the Hydra sweep.
The slow ones run real (short) training jobs."""

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

LAUNCHERS = REPO_ROOT / "launchers"
QUICK_SFT = ["stage=sft", "data.max_sft_examples=16", "tracking.wandb=false"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env_for(tmp: str, **extra) -> dict:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env.update({"RAY_AUTH_MODE": "disabled", "TMPDIR": tmp, "PYTHON": sys.executable,
                "TORCH_EXTENSIONS_DIR": str(REPO_ROOT / ".cache" / "torch_extensions"), **extra})
    return env


def test_local_launcher_reports_a_bad_override_and_cleans_its_scratch(tmp_path):
    result = subprocess.run([str(LAUNCHERS / "local.sh"), "cluster.generator.engines=0"], capture_output=True,
                            text=True, env=env_for(str(tmp_path)), timeout=120)
    assert result.returncode == 2
    assert "cluster.generator.engines" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.glob("rlhf-*")) == []  # its scratch directory was removed


def test_ray_submit_needs_an_address(tmp_path):
    result = subprocess.run([str(LAUNCHERS / "ray_submit.sh")], capture_output=True, text=True,
                            env=env_for(str(tmp_path)), timeout=60)
    assert result.returncode == 2 and "RAY_ADDRESS" in result.stderr


@pytest.mark.slow
def test_ray_job_submit_runs_on_an_existing_cluster(tmp_path):
    ray_tmp = tempfile.mkdtemp(prefix="rjs", dir="/tmp")
    dashboard = free_port()
    ports = [f"--{name}={free_port()}" for name in ("port", "ray-client-server-port", "dashboard-agent-listen-port",
                                                    "metrics-export-port")]
    head = subprocess.Popen(
        [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--num-cpus=2",
         "--node-ip-address=127.0.0.1", "--disable-usage-stats", "--include-dashboard=true",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", f"--temp-dir={ray_tmp}", *ports],
        stdout=open(tmp_path / "head.log", "wb"), stderr=subprocess.STDOUT, env=env_for(ray_tmp),
        start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:  # the jobs API answers once the dashboard is up
            try:
                socket.create_connection(("127.0.0.1", dashboard), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and head.poll() is None, (tmp_path / "head.log").read_text()
                time.sleep(1)
        run_dir = tmp_path / "run"
        result = subprocess.run(
            [str(LAUNCHERS / "ray_submit.sh"), *QUICK_SFT, f"run_dir={run_dir}"], capture_output=True, text=True,
            env=env_for(ray_tmp, RAY_ADDRESS=f"http://127.0.0.1:{dashboard}", JOB_PYTHON=sys.executable),
            timeout=900)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        assert "succeeded" in result.stdout + result.stderr
        summary = json.loads((run_dir / "run_summary.json").read_text())
        assert summary["stages_completed"] == ["sft"]
        assert summary["config"]["cluster"]["address"] == "auto"
        assert len(summary["ray_nodes"]) == 1
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        subprocess.run(["rm", "-rf", ray_tmp])


@pytest.mark.slow
def test_sweep_runs_one_job_per_combination(tmp_path):
    sweep_dir = tmp_path / "sweep"
    scratch = tempfile.mkdtemp(prefix="rsw", dir="/tmp")  # short, for Ray's socket paths
    try:
        result = subprocess.run([str(LAUNCHERS / "sweep.sh"), *QUICK_SFT], capture_output=True, text=True,
                                env=env_for(scratch, BETAS="0.05,0.2", LRS="1e-3", SWEEP_DIR=str(sweep_dir)),
                                timeout=900)
    finally:
        subprocess.run(["rm", "-rf", scratch])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    runs = sorted(p.parent for p in sweep_dir.glob("*/run_summary.json"))
    assert [p.name for p in runs] == ["beta0.05_lr0.001", "beta0.2_lr0.001"]
    betas = [json.loads((p / "run_summary.json").read_text())["config"]["online"]["beta"] for p in runs]
    assert betas == [0.05, 0.2]
