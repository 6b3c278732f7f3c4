"""A kill while training state is being saved leaves a run that resumes from a complete state that
matches the progress state.json records: a child process saves state twice and SIGKILLs itself
before one filesystem operation of the second save, for each operation in turn; then the resume
path restores it.

The trainer group is stood in for by a few files per save (DeepSpeed writes one set per rank). The
real group, killed mid-save, is tested in test_stage_resume.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf import checkpoints
from rlhf.state import RunState
from tests.conftest import REPO_ROOT

CHILD = r"""
import os, shutil, signal, sys
from pathlib import Path
from rlhf import checkpoints
from rlhf.state import RunState

run_dir, kill_at = Path(sys.argv[1]), int(sys.argv[2])
count = 0

def operation():
    # SIGKILL this process before the kill_at-th operation of the second save
    global count
    if kill_at:
        count += 1
        if count == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

class FileTrainers:
    step = 0
    def save_state(self, path):
        Path(path).mkdir(exist_ok=True)
        for rank in range(2):
            operation()
            Path(path, f"rank{rank}.pt").write_text(str(self.step))

real_replace, real_rmtree = os.replace, shutil.rmtree
os.replace = lambda *a, **k: (operation(), real_replace(*a, **k))[1]
shutil.rmtree = lambda *a, **k: (operation(), real_rmtree(*a, **k))[1]

trainers, state = FileTrainers(), RunState(run_dir)
trainers.step = 4
armed, kill_at = kill_at, 0
checkpoints.save_state(trainers, state, run_dir, "reward", {"steps_done": 4})
kill_at = armed
trainers.step = 8
checkpoints.save_state(trainers, state, run_dir, "reward", {"steps_done": 8})
print("completed", count)
"""


class LoadedTrainers:
    """Loads what FileTrainers saved; a missing rank file fails, as DeepSpeed's load_checkpoint does."""

    step = 0

    def load_state(self, path: str) -> None:
        ranks = [Path(path, f"rank{rank}.pt") for rank in range(2)]
        missing = [str(r) for r in ranks if not r.is_file()]
        assert not missing, f"no training state to load: {missing}"
        steps = {int(r.read_text()) for r in ranks}
        assert len(steps) == 1, f"ranks of different saves in {path}"
        self.step = steps.pop()


class Tracker:
    def drop_steps_from(self, stage: str, step: int) -> None:
        pass


def save_and_kill(run_dir: Path, kill_at: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, str(run_dir), str(kill_at)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def resume(run_dir: Path) -> tuple[int, int]:
    """(the step state.json says is done, the step of the state the resume path restored)."""
    trainers = LoadedTrainers()
    args = checkpoints.resumable_steps(trainers, RunState(run_dir), Tracker(), run_dir, "reward", 4)
    return args["start_step"], trainers.step


def test_a_kill_at_any_moment_of_a_save_leaves_a_usable_state(tmp_path):
    outcomes = {}
    for kill_at in range(1, 50):
        run_dir = tmp_path / f"kill-{kill_at}"
        run_dir.mkdir()
        proc = save_and_kill(run_dir, kill_at)
        if proc.returncode == 0:  # the save has fewer operations than kill_at: it completed
            assert proc.stdout.startswith("completed"), proc.stdout
            break
        assert proc.returncode == -9, proc.stderr[-2000:]
        recorded, restored = resume(run_dir)
        assert recorded in (4, 8) and restored == recorded, f"killed before operation {kill_at}"
        outcomes[kill_at] = recorded
    else:
        pytest.fail("the save never completed")
    # the kills hit both sides of the commit: before it the previous state is restored, after it the new one
    assert set(outcomes.values()) == {4, 8}, outcomes
    assert resume(run_dir) == (8, 8)
    assert [p.name for p in (run_dir / "state" / "reward").iterdir()] == ["steps_done-8"]  # one state kept


def test_a_killed_save_is_cleaned_up_by_the_next_one(tmp_path):
    """A save killed before its commit leaves its directory behind; the next completed save removes it."""

    class Trainers(LoadedTrainers):
        def save_state(self, path):
            Path(path).mkdir()
            Path(path, "rank0.pt").write_text(str(self.step))
            Path(path, "rank1.pt").write_text(str(self.step))

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    save_and_kill(run_dir, 5)  # past the writes of the second save, before state.json names it
    state = RunState(run_dir)
    assert state.progress("reward")["steps_done"] == 4 and len(list((run_dir / "state" / "reward").iterdir())) >= 2
    trainers = Trainers()
    trainers.step = 12
    checkpoints.save_state(trainers, state, run_dir, "reward", {"steps_done": 12})
    assert [p.name for p in (run_dir / "state" / "reward").iterdir()] == ["steps_done-12"]
    assert json.loads((run_dir / "state.json").read_text())["progress"]["reward"]["steps_done"] == 12


def test_a_recorded_state_that_is_gone_is_an_error_not_a_fresh_start(tmp_path):
    import shutil

    from rlhf.data.errors import DataError

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert save_and_kill(run_dir, 0).returncode == 0
    shutil.rmtree(run_dir / "state" / "reward" / "steps_done-8")
    with pytest.raises(DataError, match=r"steps_done-8: the training state state.json records for reward"):
        resume(run_dir)
