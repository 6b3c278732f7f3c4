"""slurm/submit.sh against a stand-in `sbatch`, and the parts of slurm/ray_job.sbatch that stop a job
whose allocation does not fit: a node count that differs from the layout's, a worker node that never
joins the head (the wait's deadline), a head that never answers.

SLURM is not installed here. The stand-in `sbatch` records its arguments, its working directory, the
environment it was given and the job script it was handed; the test then works out the resources the
job would get the way sbatch does (the script's #SBATCH lines, overridden by the command line) and
compares them with the layout's YAML file, read here on its own. The job-script tests run the real
script with bash and a stand-in `srun` that runs each step on this machine (as tests/test_slurm_job.py)."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.test_slurm_job import free_port, processes_mentioning, write_srun

SBATCH = """#!/bin/bash
# sbatch stand-in: record the call (arguments one per line, the directory, the job's settings and the
# job script as sbatch would read it), answer like sbatch
{
    printf '%s\\n' "$@" >"$SBATCH_RECORD/args"
    pwd >"$SBATCH_RECORD/cwd"
    for name in CLUSTER MODEL DEVICE PYTHON; do printf '%s=%s\\n' "$name" "${!name-<unset>}"; done >"$SBATCH_RECORD/env"
    for arg in "$@"; do
        case $arg in -*) ;; *) cp "$arg" "$SBATCH_RECORD/script"; break ;; esac
    done
}
echo "Submitted batch job 4242"
"""


def layout_yaml(name: str) -> dict:
    return yaml.safe_load((REPO_ROOT / "conf" / "cluster" / f"{name}.yaml").read_text())


def submit(tmp_path: Path, *args: str, sbatch_args: str = "", device: str | None = None):
    """Run slurm/submit.sh with the stand-in sbatch; (result, record directory)."""
    bin_dir, record = tmp_path / "bin", tmp_path / "record"
    bin_dir.mkdir(exist_ok=True)
    record.mkdir(exist_ok=True)
    (bin_dir / "sbatch").write_text(SBATCH)
    (bin_dir / "sbatch").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("CLUSTER", "MODEL", "DEVICE", "SBATCH_ARGS")}
    env.update({"PATH": f"{bin_dir}:{os.environ['PATH']}", "SBATCH_RECORD": str(record), "PYTHON": sys.executable})
    if sbatch_args:
        env["SBATCH_ARGS"] = sbatch_args
    if device:
        env["DEVICE"] = device
    # run from elsewhere: the script finds the repository itself
    result = subprocess.run(["bash", str(REPO_ROOT / "slurm" / "submit.sh"), *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    return result, record


def options(words: list[str]) -> dict[str, str]:
    """sbatch's long options from words (`--name=value`; a bare flag is '')."""
    out = {}
    for word in words:
        name, _, value = word.partition("=")
        out[name] = value
    return out


def effective_request(record: Path) -> tuple[dict[str, str], list[str]]:
    """What the job gets, as sbatch decides it: the script's #SBATCH lines (read until the first line
    that is neither blank nor a comment) with every command-line option taking precedence; and the
    arguments after the script (they reach the job script as its $@)."""
    args = (record / "args").read_text().splitlines()
    script_at = next(i for i, a in enumerate(args) if not a.startswith("-"))
    directives = []
    for line in (record / "script").read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break
        if stripped.startswith("#SBATCH"):
            directives += shlex.split(stripped[len("#SBATCH"):])
    return {**options(directives), **options(args[:script_at])}, args[script_at + 1:]


LAYOUTS = [  # (layout, model, DEVICE): the GPU layouts with the model docs/slurm.md submits, the CPU pair
    ("gpu_1x8", "llama3_3b", None),
    ("gpu_2x8", "llama3_8b", None),
    ("gpu_4x8", "llama3_8b", None),
    ("two_node_cpu", "tiny", "cpu"),
]


@pytest.mark.parametrize("layout, model, device", LAYOUTS, ids=[layout for layout, _, _ in LAYOUTS])
def test_submit_asks_sbatch_for_what_the_layout_states(tmp_path, layout, model, device):
    result, record = submit(tmp_path, layout, model, "online.rounds=4", device=device)
    assert result.returncode == 0, result.stderr
    assert "Submitted batch job 4242" in result.stdout
    request, job_args = effective_request(record)
    stated = layout_yaml(layout)
    assert request["--nodes"] == str(stated["nodes"])
    assert request["--ntasks-per-node"] == "1"  # one `ray start` per node
    # a CPU layout asks for no GPUs: the script's own default (8 per node) must not survive
    assert request.get("--gpus-per-node", "0") == str(stated["gpus_per_node"] if device != "cpu" else 0)
    assert request["--cpus-per-task"] == str(stated["cpus_per_node"])
    assert request["--export"] == "ALL"  # the job sees CLUSTER, MODEL, PYTHON and the W&B settings
    assert job_args == ["online.rounds=4"]
    env = dict(line.split("=", 1) for line in (record / "env").read_text().splitlines())
    assert env == {"CLUSTER": layout, "MODEL": model, "DEVICE": device or "gpu", "PYTHON": sys.executable}
    # sbatch was called from the repository root with the job script there
    assert Path((record / "cwd").read_text().strip()) == REPO_ROOT
    assert (record / "script").read_bytes() == (REPO_ROOT / "slurm" / "ray_job.sbatch").read_bytes()


def test_submit_passes_extra_sbatch_options_and_overrides_as_given(tmp_path):
    overrides = ["online.rounds=2", "run_dir=/shared/runs/beta 0.1", "tracking.group=g1"]
    result, record = submit(tmp_path, "gpu_2x8", "llama3_8b", *overrides,
                            sbatch_args="--partition=gpu --time=12:00:00")
    assert result.returncode == 0, result.stderr
    request, job_args = effective_request(record)
    assert request["--partition"] == "gpu" and request["--time"] == "12:00:00"  # the command line wins
    assert request["--nodes"] == "2" and request["--gpus-per-node"] == "8"
    assert job_args == overrides  # each override one argument, a space included


@pytest.mark.parametrize("args, message", [
    (["gpu_2x8", "llama3_8b", "cluster.trainer.ranks=6"], "must be a multiple of"),
    (["no_such_layout", "llama3_8b"], "Could not find 'cluster/no_such_layout'"),
    (["gpu_2x8"], "usage:"),
])
def test_submit_refuses_before_sbatch(tmp_path, args, message):
    result, record = submit(tmp_path, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (record / "args").exists(), "sbatch must not be called"


# -- the job script: allocations that do not fit ----------------------------------------------------
class JobScript:
    """slurm/ray_job.sbatch run with bash as an allocation of `hosts`, under the stand-in srun; a host
    named `ghost*` is a node whose `ray start` never reaches the head (it waits until stopped)."""

    def __init__(self, tmp_path: Path, cluster: str, hosts: list[str], node_wait_s: int):
        self.tmp = tmp_path
        self.ray_tmp = tempfile.mkdtemp(prefix="rss", dir="/tmp")  # short: Ray's socket paths
        write_srun(tmp_path / "bin")
        srun = (tmp_path / "bin" / "srun").read_text()
        # a ghost host's step is a process that never joins: it runs until the job's teardown stops it
        # (its --output file is written, as srun creates it when the step starts)
        ghost = 'ghost=; for a in "$@"; do [[ $a == ghost* ]] && ghost=1; done\n'
        sleep = ('[[ -n $ghost ]] && exec "$PYTHON" -c "import time; time.sleep(3600)" "ghost node of $RAY_TMP" '
                 '>"${out:-/dev/null}" 2>&1\n')
        srun = srun.replace("out=\n", ghost + "out=\n", 1).replace("if [[ -n $out ]]", sleep + "if [[ -n $out ]]", 1)
        (tmp_path / "bin" / "srun").write_text(srun)
        self.log_dir, self.run_dir = tmp_path / "logs", tmp_path / "run"
        ports = " ".join(f"--{name}={free_port()}" for name in (
            "dashboard-port", "ray-client-server-port", "dashboard-agent-listen-port", "metrics-export-port"))
        env = dict(os.environ)
        env.pop("RAY_ADDRESS", None)
        env.update({
            "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": ",".join(hosts),
            "SLURM_JOB_NUM_NODES": str(len(hosts)), "SLURM_JOB_ID": "4343", "SLURM_CPUS_PER_TASK": "1",
            "SLURM_SUBMIT_DIR": str(REPO_ROOT), "CLUSTER": cluster, "MODEL": "tiny", "DEVICE": "cpu",
            "PYTHON": sys.executable, "HEAD_IP": "127.0.0.1", "RAY_PORT": str(free_port()), "RAY_TMP": self.ray_tmp,
            "RAY_START_ARGS": ports, "LOG_DIR": str(self.log_dir), "RUN_DIR": str(self.run_dir),
            "NODE_WAIT_S": str(node_wait_s), "TMPDIR": self.ray_tmp})
        self.started = time.monotonic()
        self.proc = subprocess.Popen(["bash", str(REPO_ROOT / "slurm" / "ray_job.sbatch"), "tracking.wandb=false"],
                                     cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)

    def finish(self, timeout_s: float) -> tuple[int, str, float]:
        """(exit status, output, seconds it ran)."""
        output, _ = self.proc.communicate(timeout=timeout_s)
        return self.proc.returncode, output, time.monotonic() - self.started

    def left_running(self, timeout_s: float = 30) -> list[str]:
        """This job's processes (its Ray nodes, a ghost's step) still alive after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while (left := processes_mentioning(self.ray_tmp)) and time.monotonic() < deadline:
            time.sleep(0.5)
        return left

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # this job's own session only
        except ProcessLookupError:
            pass
        subprocess.run(["rm", "-rf", self.ray_tmp])


@pytest.fixture
def job_script(tmp_path):
    jobs = []

    def make(*args, **kwargs):
        jobs.append(JobScript(tmp_path, *args, **kwargs))
        return jobs[-1]

    yield make
    for job in jobs:
        job.close()


@pytest.mark.parametrize("cluster, hosts, nodes", [
    ("two_node_cpu", ["localhost"], 2),           # sbatch --nodes=1 for a two-node layout
    ("local_cpu", ["localhost", "node7"], 1),     # more nodes than the layout uses
])
def test_a_node_count_other_than_the_layouts_stops_the_job_before_ray_starts(job_script, cluster, hosts, nodes):
    job = job_script(cluster, hosts, node_wait_s=30)
    status, output, _ = job.finish(timeout_s=120)
    assert status == 2, output
    assert (f"cluster={cluster} needs {nodes} node(s) (cluster.nodes) but the allocation has {len(hosts)}"
            in output), output
    assert "--nodes" in output and "Traceback" not in output
    assert not list(job.log_dir.glob("ray-*.log")), "no Ray node may start"


def test_a_worker_that_never_joins_ends_the_job_at_the_deadline(job_script):
    """A two-node allocation whose second node's `ray start` never reaches the head: the node wait
    gives up after NODE_WAIT_S naming the node that did join, the job fails before the driver starts,
    and its teardown stops the head and the hanging step."""
    wait_s = 20
    job = job_script("two_node_cpu", ["localhost", "ghost1"], node_wait_s=wait_s)
    status, output, seconds = job.finish(timeout_s=300)
    assert status == 1, output
    assert "1 Ray nodes alive: " in output  # the head's own wait passed
    assert re.search(rf"only 1 of 2 Ray nodes joined 127\.0\.0\.1:\d+ within {wait_s}s \(alive: \S+", output), output
    assert "Traceback" not in output
    assert seconds >= wait_s  # it gave the worker the whole deadline
    assert (job.log_dir / "ray-head-localhost.log").exists() and (job.log_dir / "ray-worker-ghost1.log").exists()
    assert not job.run_dir.exists() and not list(job.log_dir.glob("driver-*.log")), "the driver must not start"
    assert "stopping Ray on 2 node(s)" in output
    assert job.left_running() == []


def test_the_wait_gives_up_on_a_head_that_never_answers():
    port = free_port()  # nothing listens there
    result = subprocess.run([sys.executable, "-m", "rlhf.ray_wait", "--address", f"127.0.0.1:{port}", "--nodes", "2",
                             "--timeout", "2"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"no Ray head answered at 127.0.0.1:{port} within 2s" in result.stderr
    assert "Traceback" not in result.stderr

