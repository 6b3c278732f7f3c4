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


@pytest.mark.skipif(shutil.which("shellcheck") is None,
                    reason="shellcheck is not installed (apt-get install shellcheck)")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_shellcheck_passes(script):
    result = subprocess.run(["shellcheck", "-x", "--shell=bash", str(script.relative_to(REPO_ROOT))],
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
