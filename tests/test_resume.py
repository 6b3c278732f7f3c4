"""Kill -9 the launcher mid-run, rerun the same command, and get what an uninterrupted run gets.

Slow (three pipeline runs): `make test-slow`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

ARGS = ["data.max_sft_examples=480", "data.max_pairs=96", "reward_training.eval_pairs=16",
        "online.speeches_per_round=16", "online.samples_per_speech=4", "online.min_reward_gap=0.0",
        "online.rounds=3", "save_every_steps=5", "tracking.wandb=false"]


def launch(run_dir: Path | None, args: list[str] = ARGS, entry: list[str] | None = None) -> subprocess.Popen:
    """The launcher (or `entry`) in a session of its own, so that its Ray processes can be cleaned
    up with it."""
    env = dict(os.environ, TMPDIR=tempfile.mkdtemp(prefix="rl", dir="/tmp"))
    run = [f"run_dir={run_dir}"] if run_dir else []
    return subprocess.Popen([sys.executable, *(entry or ["-m", "rlhf.launch"]), *run, *args], cwd=REPO_ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=1200)
    assert proc.returncode == 0, out[-4000:]
    return out


def reap(proc: subprocess.Popen) -> str:
    """Once the launcher has died: the Ray processes it left behind killed (before reading its
    output, whose pipe they may hold open), then its output."""
    proc.wait(timeout=900)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # orphaned Ray daemons of that session
    except ProcessLookupError:
        pass
    return proc.communicate(timeout=120)[0]


def kill_when(proc: subprocess.Popen, condition, timeout: float = 900) -> str:
    """SIGKILL the launcher (only it, as a crash would) as soon as `condition()` holds; then clean
    up the Ray processes it leaves behind. Returns its output."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    return reap(proc)


def state(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def rounds(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_kill_during_sft_and_during_a_round_then_resume(tmp_path):
    reference = tmp_path / "reference"
    finish(launch(reference))

    run_dir = tmp_path / "killed"
    proc = launch(run_dir)
    kill_when(proc, lambda: state(run_dir).get("progress", {}).get("sft", {}).get("steps_done", 0) >= 10)
    assert not (run_dir / "checkpoints" / "sft").exists()

    proc = launch(run_dir)
    kill_when(proc, lambda: (run_dir / "metrics.jsonl").exists() and len(rounds(run_dir)) >= 1
              and (run_dir / "pairs" / "round_002.jsonl").exists())
    out = finish(launch(run_dir))
    assert "resuming after round 1" in out or "resuming after round 2" in out, out[-3000:]

    # every SFT step recorded exactly once, across the three processes
    steps = [json.loads(line) for line in (run_dir / "train_steps.jsonl").read_text().splitlines()]
    sft_steps = [s["step"] for s in steps if s["stage"] == "sft"]
    assert sorted(sft_steps) == list(range(30))

    summary = json.loads((run_dir / "run_summary.json").read_text())
    expected = json.loads((reference / "run_summary.json").read_text())
    assert summary["rounds_completed"] == 3
    assert summary["sft"]["val_loss"] == pytest.approx(expected["sft"]["val_loss"], rel=1e-4)
    assert summary["reward_model"]["val_accuracy"] == pytest.approx(expected["reward_model"]["val_accuracy"])

    got, want = rounds(run_dir), rounds(reference)
    assert [r["round"] for r in got] == [1, 2, 3]
    for mine, theirs in zip(got, want):
        assert mine["pairs"] == theirs["pairs"]
        for key in ("reward_mean", "chosen_minus_rejected", "dpo_loss", "kl_to_reference"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-3, abs=1e-4), (mine["round"], key)
    # no preference pair lost or duplicated: each round's pairs once, identical to the uninterrupted run
    for index in (1, 2, 3):
        name = f"round_{index:03d}.jsonl"
        assert (run_dir / "pairs" / name).read_text() == (reference / "pairs" / name).read_text()
