"""Where metrics go: metrics.jsonl (a line per round), train_steps.jsonl (a line per optimizer step
of the SFT / reward / offline DPO stages), W&B (the same numbers), run_summary.json.

Only numbers and settings are written: no client speech or generated text reaches these files or
W&B, unless the user asks for sample tables (tracking.log_samples), which are redacted first.
API keys are read from the environment by W&B itself and never copied.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from rlhf import atomic


def _filter_jsonl(path: Path, keep) -> None:
    if not path.exists():
        return
    lines = []
    for line in path.read_text().splitlines():
        try:
            if keep(json.loads(line)):
                lines.append(line)
        except json.JSONDecodeError:
            continue  # a line torn by a crash
    atomic.write_text(path, "".join(line + "\n" for line in lines))


class Tracker:
    def __init__(self, run_dir: Path, config: dict, tracking, run_name: str):
        self.run_dir = run_dir
        self.metrics_path = run_dir / "metrics.jsonl"
        self.steps_path = run_dir / "train_steps.jsonl"
        self.wandb_run = None
        self.wandb_mode = None
        self.wandb_location = None  # URL (online) or local directory (offline)
        if tracking.wandb:
            self._start_wandb(config, tracking, run_name)
            self.wandb_location = (self.wandb_run.url if self.wandb_mode == "online"
                                   else str(Path(self.wandb_run.dir).parent))

    def _start_wandb(self, config: dict, tracking, run_name: str) -> None:
        for var, sub in (("WANDB_DIR", ""), ("WANDB_CACHE_DIR", ".wandb-cache"), ("WANDB_CONFIG_DIR", ".wandb-config")):
            os.environ.setdefault(var, str(self.run_dir / sub) if sub else str(self.run_dir))
        os.environ.setdefault("WANDB_SILENT", "true")
        mode = str(tracking.mode)
        if mode == "auto":
            mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
        import wandb

        self.wandb_mode = mode
        self.wandb_run = wandb.init(project=tracking.project, entity=tracking.entity, name=run_name,
                                    config=config, mode=mode, dir=str(self.run_dir), reinit="finish_previous",
                                    settings=wandb.Settings(console="off", x_disable_stats=True))

    def log_step(self, stage: str, step: int, metrics: dict) -> None:
        record = {"stage": stage, "step": step, **metrics, "time": time.time()}
        with self.steps_path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.wandb_run is not None:
            self.wandb_run.log({f"{stage}/{k}": v for k, v in metrics.items()})

    def log_round(self, record: dict) -> None:
        with self.metrics_path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if self.wandb_run is not None:
            flat = {f"online/{k}": v for k, v in record.items() if isinstance(v, (int, float))}
            flat.update({f"online/seconds_{k}": v for k, v in record.get("seconds", {}).items()})
            self.wandb_run.log(flat)

    def log_samples(self, round_number: int, rows: list[tuple[str, str, float]]) -> None:
        """Opt-in (tracking.log_samples): a W&B table of a few samples, every text redacted first."""
        if self.wandb_run is None or not rows:
            return
        import wandb

        from rlhf.privacy import redact

        table = wandb.Table(columns=["round", "speech", "response", "reward"],
                            data=[[round_number, redact(s), redact(r), float(w)] for s, r, w in rows])
        self.wandb_run.log({"online/samples": table})

    def drop_steps_from(self, stage: str, first_step: int) -> None:
        """On resume: forget step records of `stage` from `first_step` on (they will be redone)."""
        _filter_jsonl(self.steps_path, lambda r: not (r.get("stage") == stage and r.get("step", 0) >= first_step))

    def drop_rounds_after(self, rounds_completed: int) -> None:
        """On resume: forget records of rounds that did not complete (they will be redone)."""
        _filter_jsonl(self.metrics_path, lambda r: r.get("round", 0) <= rounds_completed)

    def summary(self, values: dict) -> None:
        if self.wandb_run is not None:
            for key, value in values.items():
                if isinstance(value, (int, float, str)):
                    self.wandb_run.summary[key] = value

    def finish(self) -> None:
        if self.wandb_run is not None:
            self.wandb_run.finish()
            self.wandb_run = None
