"""A plain (non-editable) install carries configs, data and prompts, so it starts from any directory."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_an_installed_copy_composes_its_config_from_another_directory(tmp_path):
    target, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(REPO_ROOT)], check=True, capture_output=True, timeout=600)
    for shipped in ("conf/config.yaml", "conf/model/tiny.yaml", "conf/hydra/job_logging/rlhf.yaml",
                    "data/counsel-chat/counsel_chat.csv",
                    "prefs/judge_prompt_v1.md", "eval/pairwise_prompt_v1.md", "safety/probes_v1.jsonl"):
        assert (target / "rlhf" / shipped).is_file(), shipped
    assert (target / "bin" / "rlhf-launch").is_file()
    env = dict(os.environ, PYTHONPATH=str(target))
    proc = subprocess.run([sys.executable, "-m", "rlhf.launch", "--cfg", "job"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "online:" in proc.stdout and "counsel_chat.csv" in proc.stdout
    probe = ("from rlhf.paths import resolve_path; import rlhf; "
             "print(rlhf.__file__); print(resolve_path('data/counsel-chat/counsel_chat.csv'))")
    where, data = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True,
                                 text=True, check=True).stdout.split()
    assert where.startswith(str(target)) and data.startswith(str(target)) and os.path.isfile(data)
