"""`python -m tests.kill_at_save WHEN STAGE STEPS [launch overrides...]`: `python -m rlhf.launch`
that SIGKILLs itself during the save of STAGE's training state after STEPS optimizer steps, as a
crash or an out-of-memory kill would:

    writing  once the trainer ranks have started writing the state (the driver dies, and the
             Ray session with it, while they write)
    commit   after the state is written and in place, before state.json records it

Used by tests/test_stage_resume.py; everything else is the real launcher."""

from __future__ import annotations

import os
import runpy
import signal
import sys
import time
from pathlib import Path

from rlhf.state import RunState
from rlhf.training.group import TrainerGroup


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(when: str, stage: str, steps: int) -> None:
    target = f"{stage}/steps_done-{steps}"  # rlhf.checkpoints names each save state/<stage>/<progress>
    if when == "writing":
        real_save = TrainerGroup.save_state

        def save_state(self, state_dir: str) -> None:
            if not Path(state_dir).as_posix().removesuffix(".tmp").endswith(target):
                return real_save(self, state_dir)
            for actor in self.actors:  # the ranks start writing; the driver does not wait for them
                actor.save_state.remote(state_dir)
            deadline = time.monotonic() + 300
            while not any(p.is_file() for p in Path(state_dir).rglob("*")):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no rank started writing {state_dir}")
                time.sleep(0.01)
            die()

        TrainerGroup.save_state = save_state
    elif when == "commit":
        real_set = RunState.set_progress

        def set_progress(self, key: str, value: dict) -> None:
            if key == stage and value.get("steps_done") == steps:
                die()
            real_set(self, key, value)

        RunState.set_progress = set_progress
    else:
        raise SystemExit(f"WHEN must be writing or commit, not {when!r}")


if __name__ == "__main__":
    arm(sys.argv[1], sys.argv[2], int(sys.argv[3]))
    sys.argv = [sys.argv[0], *sys.argv[4:]]
    # as `python -m rlhf.launch` runs it: Hydra finds conf/ beside the file of a __main__ module
    runpy.run_module("rlhf.launch", run_name="__main__", alter_sys=True)
