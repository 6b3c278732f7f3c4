"""What a run has finished, kept in run_dir/state.json so a rerun of the same command resumes.

Each unit of work (a stage, a slice of training steps, an online round) first writes its outputs
under temporary names and renames them, then records itself here with an atomic replace. A crash
at any moment leaves either the old record or the new one, never a half-written one, and every
output the record names is complete.
"""

from __future__ import annotations

import json
from pathlib import Path

from rlhf.atomic import write_json

STATE_FILE = "state.json"


class RunState:
    def __init__(self, run_dir: Path):
        self.path = run_dir / STATE_FILE
        self.data = (
            json.loads(self.path.read_text())
            if self.path.exists()
            else {"stages_completed": [], "progress": {}, "results": {}}
        )

    @property
    def resuming(self) -> bool:
        return self.path.exists()

    def stage_done(self, stage: str) -> bool:
        return stage in self.data["stages_completed"]

    def progress(self, key: str) -> dict:
        return self.data["progress"].get(key, {})

    def set_progress(self, key: str, value: dict) -> None:
        self.data["progress"][key] = value
        self.save()

    def complete_stage(self, stage: str, results: dict) -> None:
        self.data["stages_completed"].append(stage)
        self.data["results"] = results
        self.save()

    def save(self) -> None:
        write_json(self.path, self.data)
