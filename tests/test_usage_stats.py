"""Nothing phones home: Ray's and vLLM's usage statistics are off in the product itself, not only in
the tests' environment. Each check runs a fresh interpreter whose environment asks for reporting
(RAY_USAGE_STATS_ENABLED=1, no vLLM opt-out, a home directory without opt-out files), with the
report addresses pointed at a closed loopback port so that a regression cannot reach the internet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from rlhf.telemetry import USAGE_STATS_OFF
from tests.conftest import REPO_ROOT

DEAD_END = "http://127.0.0.1:9/"  # discard port: nothing listens, so a report fails at once


def reporting_env(home: str) -> dict[str, str]:
    """This environment with every opt-out removed and Ray's reporting asked for explicitly."""
    env = {k: v for k, v in os.environ.items() if k not in USAGE_STATS_OFF}
    env.update({
        "RAY_USAGE_STATS_ENABLED": "1",
        "VLLM_NO_USAGE_STATS": "0",
        "HOME": home,  # no ~/.ray/config.json nor ~/.config/vllm/do_not_track of the machine's user
        "RAY_USAGE_STATS_CONFIG_PATH": os.path.join(home, "ray-config.json"),
        "RAY_USAGE_STATS_REPORT_URL": DEAD_END,
        "VLLM_USAGE_STATS_SERVER": DEAD_END,
        "PYTHONPATH": str(REPO_ROOT),
    })
    return env


def run_json(script: str, *args: str, timeout: float = 300) -> dict:
    with tempfile.TemporaryDirectory(prefix="usage-") as home:
        result = subprocess.run([sys.executable, "-c", script, *args], cwd=home, env=reporting_env(home),
                                capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


ENTRY_POINT = """
import json
import rlhf.launch  # what `python -m rlhf.launch` imports first; the reward server and the bench alike
from ray._common.usage import usage_lib as ray_usage
from vllm.usage import usage_lib as vllm_usage
print(json.dumps({"ray": ray_usage.usage_stats_enabled(), "vllm": vllm_usage.is_usage_stats_enabled()}))
"""


def test_the_entry_point_turns_ray_and_vllm_reporting_off():
    """Asked by the environment to report, Ray and vLLM (by their own checks) still do not."""
    assert run_json(ENTRY_POINT) == {"ray": False, "vllm": False}


STARTED_CLUSTER = """
import json, os, sys
import ray
from ray._common.usage import usage_lib
from ray._private import ray_constants
from rlhf.telemetry import USAGE_STATS_OFF
from rlhf.workers.ray_session import start_ray

start_ray(None, 1, sys.argv[1], False)
node = ray._private.worker._global_node

def environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        pairs = [kv.decode().split("=", 1) for kv in f.read().split(b"\\0") if b"=" in kv]
    return {k: v for k, v in pairs if k in USAGE_STATS_OFF}

@ray.remote(num_cpus=1)
def worker_env():
    return {k: os.environ.get(k) for k in USAGE_STATS_OFF}

out = {
    "metadata": usage_lib.get_cluster_metadata(node.get_gcs_client()),
    "reporters": [environ(p.process.pid) for p in node.all_processes.get(ray_constants.PROCESS_TYPE_DASHBOARD, [])],
    "job_env": ray.get_runtime_context().runtime_env.get("env_vars", {}),
    "worker": ray.get(worker_env.remote(), timeout=240),
}
ray.shutdown()
print(json.dumps(out))
"""


def test_a_cluster_the_run_starts_collects_and_sends_nothing():
    """Ray's head records extended cluster metadata (commit, OS, start time) only for its usage
    report, and its dashboard process (which runs the usage module even with the dashboard off)
    sends that report: neither may see reporting on. The job's runtime environment carries every
    switch, so workers of a cluster started elsewhere get them too; a worker here has them."""
    with tempfile.TemporaryDirectory(prefix="ru", dir="/tmp") as ray_tmp:  # short: socket paths
        out = run_json(STARTED_CLUSTER, ray_tmp)
    extended = {"git_commit", "os", "session_start_timestamp_ms", "libc_version"}
    assert not extended & set(out["metadata"]), out["metadata"]
    assert out["reporters"], "no dashboard process found: where does this Ray send its usage report from?"
    assert all(env.get("RAY_USAGE_STATS_ENABLED") == "0" for env in out["reporters"]), out["reporters"]
    assert {k: out["job_env"].get(k) for k in USAGE_STATS_OFF} == USAGE_STATS_OFF
    assert out["worker"] == USAGE_STATS_OFF
