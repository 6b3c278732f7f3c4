"""stage=reward and stage=offline_dpo killed and rerun with the same command end where an
uninterrupted run ends: a SIGKILL mid-stage after a save, one while the trainer ranks write training
state, and one after it is written but before state.json records it (tests/kill_at_save.py); each
rerun continues from the last recorded save. The runs train on a PsychoCounsel-Preference Parquet.

Slow (several launches of the pipeline): `make test-slow`."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests import test_resume as resume
from tests.test_preference_parquet import write_preference_file
from tests.test_resume import finish, kill_when, reap

pytestmark = pytest.mark.slow

PAIRS = 48  # 46 trained on: 12 steps of 4 per epoch
SAVE_EVERY = 3


def launch(args: list[str], kill_at: tuple[str, str, int] | None = None) -> subprocess.Popen:
    """The launcher; with kill_at=(when, stage, steps), the one of tests/kill_at_save.py."""
    return resume.launch(None, args, ["-m", "tests.kill_at_save", *map(str, kill_at)] if kill_at else None)


def killed_by_itself(proc: subprocess.Popen) -> None:
    out = reap(proc)
    assert proc.returncode == -signal.SIGKILL, out[-4000:]


def progress(run_dir: Path, stage: str) -> int:
    try:
        return json.loads((run_dir / "state.json").read_text())["progress"].get(stage, {}).get("steps_done", 0)
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def steps(run_dir: Path, stage: str) -> list[dict]:
    lines = (run_dir / "train_steps.jsonl").read_text().splitlines()
    return [record for record in map(json.loads, lines) if record["stage"] == stage]


def saved(run_dir: Path, stage: str) -> list[str]:
    return sorted(p.name for p in (run_dir / "state" / stage).iterdir())


def same_model(got: Path, want: Path) -> None:
    mine, theirs = load_file(got / "model.safetensors"), load_file(want / "model.safetensors")
    assert mine.keys() == theirs.keys()
    for name in mine:
        assert torch.allclose(mine[name], theirs[name], rtol=1e-4, atol=1e-6), name


@pytest.fixture(scope="module")
def inputs(tiny_model_dir, tmp_path_factory) -> list[str]:
    tmp = tmp_path_factory.mktemp("stage-resume")
    write_preference_file(tmp / "train.parquet", PAIRS)
    return [
        f"model.path={tiny_model_dir}",
        f"data.preference_path={tmp / 'train.parquet'}",
        f"save_every_steps={SAVE_EVERY}",
        "tracking.wandb=false",
    ]


def test_reward_stage_killed_three_ways_resumes_to_the_uninterrupted_model(inputs, tmp_path):
    args = [
        *inputs,
        "stage=reward",
        "reward_training.batch_size=4",
        "reward_training.micro_batch=2",
        "reward_training.epochs=2",
    ]  # 24 steps, saved after 3, 6, ... 21
    reference = tmp_path / "reference"
    finish(launch([f"run_dir={reference}", *args]))

    run_dir = tmp_path / "killed"
    command = [f"run_dir={run_dir}", *args]
    # 1. mid-stage, at whatever step it has reached once the save after step 6 is recorded
    kill_when(launch(command), lambda: progress(run_dir, "reward") >= 6)
    first = progress(run_dir, "reward")
    assert first <= 12, first  # room for the two kills below before the last save (21)
    # 2. while the ranks write the state of the next save but one: the last recorded save stays usable
    writing = first + 2 * SAVE_EVERY
    killed_by_itself(launch(command, kill_at=("writing", "reward", writing)))
    assert progress(run_dir, "reward") == writing - SAVE_EVERY
    assert f"steps_done-{writing}.tmp" in saved(run_dir, "reward")
    # 3. once that state is written and in place, before state.json names it
    commit = writing + SAVE_EVERY
    killed_by_itself(launch(command, kill_at=("commit", "reward", commit)))
    assert progress(run_dir, "reward") == commit - SAVE_EVERY
    assert f"steps_done-{commit}" in saved(run_dir, "reward")  # complete, but not the recorded one

    out = finish(launch(command))
    assert f"reward: resuming after step {commit - SAVE_EVERY}" in out, out[-3000:]
    assert saved(run_dir, "reward") == [f"steps_done-{21}"]  # the last save only; no leftovers

    got, want = steps(run_dir, "reward"), steps(reference, "reward")
    assert [s["step"] for s in got] == list(range(24))  # every step once, across four processes
    for mine, theirs in zip(got, want):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-4, abs=1e-6), mine["step"]
    result = json.loads((run_dir / "run_summary.json").read_text())["reward_model"]
    expected = json.loads((reference / "run_summary.json").read_text())["reward_model"]
    for key in ("train_loss", "val_accuracy", "mean", "std"):
        assert result[key] == pytest.approx(expected[key], rel=1e-4, abs=1e-6), key
    same_model(run_dir / "checkpoints" / "reward_model", reference / "checkpoints" / "reward_model")


def test_offline_dpo_killed_mid_stage_and_mid_save_resumes_to_the_uninterrupted_policy(inputs, tmp_path):
    args = [
        *inputs,
        "stage=offline_dpo",
        "offline.batch_size=4",
        "offline.micro_batch=2",
        "offline.epochs=2",
    ]  # 24 steps
    reference = tmp_path / "reference"
    finish(launch([f"run_dir={reference}", *args]))

    run_dir = tmp_path / "killed"
    command = [f"run_dir={run_dir}", *args]
    kill_when(launch(command), lambda: progress(run_dir, "offline_dpo") >= 6)
    writing = progress(run_dir, "offline_dpo") + SAVE_EVERY
    killed_by_itself(launch(command, kill_at=("writing", "offline_dpo", writing)))
    assert progress(run_dir, "offline_dpo") == writing - SAVE_EVERY
    out = finish(launch(command))
    assert f"offline_dpo: resuming after step {writing - SAVE_EVERY}" in out, out[-3000:]

    got, want = steps(run_dir, "offline_dpo"), steps(reference, "offline_dpo")
    assert [s["step"] for s in got] == list(range(24))
    for mine, theirs in zip(got, want):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-4, abs=1e-6), mine["step"]
    same_model(run_dir / "checkpoints" / "offline_dpo", reference / "checkpoints" / "offline_dpo")
