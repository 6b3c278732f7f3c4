"""A real two-node Ray cluster on this machine: a head (custom resource node_a) and a second node
(node_b) joined with `ray start --address`, each with one CPU and its own temp dir. The default
pipeline runs on it with cluster=two_node_cpu, and the run summary must show trainer ranks on the
node_a node and generators / reward scorers on the node_b node.

Only the Ray processes started here are stopped (by their process groups), never `ray stop`,
which would also stop other Ray instances on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(tmp: str) -> dict:
    env = dict(os.environ)
    env.update({"RAY_AUTH_MODE": "disabled", "TMPDIR": tmp, "RAY_USAGE_STATS_ENABLED": "0",
                "TORCH_EXTENSIONS_DIR": str(REPO_ROOT / ".cache" / "torch_extensions"),
                "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO_ROOT)})
    return env


class TwoNodeCluster:
    def __init__(self):
        # short: Ray's unix sockets live under the temp dir and their paths are length-limited
        self.tmp = tempfile.mkdtemp(prefix="r2n", dir="/tmp")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []

    def _start(self, name: str, args: list[str]) -> None:
        log = open(Path(self.tmp) / f"{name}.log", "wb")
        self.procs.append(subprocess.Popen(
            [RAY, "start", "--block", "--disable-usage-stats", "--node-ip-address=127.0.0.1",
             f"--temp-dir={self.tmp}/{name}", f"--dashboard-agent-listen-port={free_port()}",
             f"--metrics-export-port={free_port()}", *args],
            stdout=log, stderr=subprocess.STDOUT, env=child_env(self.tmp), start_new_session=True))

    def start(self) -> None:
        self._start("a", ["--head", f"--port={self.port}", "--num-cpus=1", '--resources={"node_a": 10}',
                          "--include-dashboard=false", f"--ray-client-server-port={free_port()}",
                          f"--dashboard-port={free_port()}"])
        wait = [sys.executable, "-m", "rlhf.ray_wait", "--address", self.address, "--timeout", "120"]
        subprocess.run(wait + ["--nodes", "1"], check=True, env=child_env(self.tmp), capture_output=True)
        self._start("b", [f"--address={self.address}", "--num-cpus=1", '--resources={"node_b": 10}'])

    def stop(self) -> None:
        for proc in reversed(self.procs):  # workers first; `ray start --block` stops its node on SIGTERM
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                pass
            try:  # anything left in the session we created
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    def log_tail(self) -> str:
        return "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:]
                         for p in sorted(Path(self.tmp).glob("*.log")))


@pytest.fixture(scope="module")
def two_nodes():
    cluster = TwoNodeCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def wait_cli(cluster: TwoNodeCluster, nodes: int, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlhf.ray_wait", "--address", cluster.address,
                           "--nodes", str(nodes), "--timeout", str(timeout)],
                          env=child_env(cluster.tmp), capture_output=True, text=True, timeout=timeout + 120)


def test_wait_returns_once_both_nodes_joined(two_nodes):
    result = wait_cli(two_nodes, 2, 120)
    assert result.returncode == 0, result.stderr + two_nodes.log_tail()
    assert "2 Ray nodes alive" in result.stdout


def test_wait_times_out_with_a_diagnostic(two_nodes):
    assert wait_cli(two_nodes, 2, 120).returncode == 0
    start = time.monotonic()
    result = wait_cli(two_nodes, 3, 5)
    assert result.returncode == 1
    assert "only 2 of 3 Ray nodes joined" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - start < 60


def node_with(summary: dict, resource: str) -> str:
    ids = [n["node_id"] for n in summary["ray_nodes"] if resource in n["resources"]]
    assert len(ids) == 1, summary["ray_nodes"]
    return ids[0]


@pytest.mark.slow
def test_pipeline_places_trainers_and_generators_on_different_nodes(two_nodes, tmp_path):
    assert wait_cli(two_nodes, 2, 120).returncode == 0
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "rlhf.launch", "cluster=two_node_cpu", f"cluster.address={two_nodes.address}",
           "data.max_sft_examples=32", "data.max_pairs=32", "online.rounds=1", "online.speeches_per_round=8",
           "tracking.wandb=false", f"run_dir={run_dir}"]
    result = subprocess.run(cmd, cwd=REPO_ROOT, env=child_env(two_nodes.tmp), capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:] + two_nodes.log_tail()
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert summary["stages_completed"] == ["sft", "reward", "online_dpo"]
    assert summary["rounds_completed"] == 1
    assert len(summary["ray_nodes"]) == 2
    node_a, node_b = node_with(summary, "node_a"), node_with(summary, "node_b")
    assert node_a != node_b
    placement = summary["placement"]
    assert [p["node_id"] for p in placement["trainer"]] == [node_a, node_a]
    assert [p["node_id"] for p in placement["generator"]] == [node_b]
    assert [p["node_id"] for p in placement["reward"]] == [node_b]
    # each actor is its own process
    pids = [p["pid"] for role in ("trainer", "generator", "reward") for p in placement[role]]
    assert len(set(pids)) == len(pids)
