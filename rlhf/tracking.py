"""Where metrics go: metrics.jsonl (a line per round), train_steps.jsonl (a line per optimizer step
of the SFT / reward / offline DPO stages), W&B (the same numbers), run_summary.json.

Only numbers and settings are written: no client speech or generated text reaches these files or
W&B, unless the user asks for sample tables (tracking.log_samples), which are redacted first.
API keys are read by W&B itself and never copied. In W&B each stage's step metrics plot against
that stage's own step, and the rounds' metrics against the round number (define_metric); runs of a
Hydra sweep share a group.
"""

from __future__ import annotations

import json
import netrc
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

from rlhf import atomic
from rlhf.choices import WandbMode


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


def logged_in() -> bool:
    """Whether W&B has credentials: WANDB_API_KEY, or what `wandb login` stored in the netrc file
    for the W&B host (only their presence is checked; the key is never read into this process)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    candidates = [os.environ["NETRC"]] if os.environ.get("NETRC") else ["~/.netrc", "~/_netrc"]
    for candidate in candidates:
        path = Path(candidate).expanduser()
        try:
            if path.is_file() and netrc.netrc(path).authenticators(host):
                return True
        except (netrc.NetrcParseError, OSError):
            continue
    return False


def wandb_mode(requested: str) -> str | None:
    """The mode to start W&B in; None leaves it to an explicit WANDB_MODE, which is never overridden.
    auto: online when logged in (wandb login or WANDB_API_KEY), else offline files in the run dir."""
    if os.environ.get("WANDB_MODE"):
        return None
    if requested != WandbMode.auto:
        return str(requested)
    return "online" if logged_in() else "offline"


class Tracker:
    def __init__(self, run_dir: Path, config: dict, tracking, run_name: str):
        self.run_dir = run_dir
        self.metrics_path = run_dir / "metrics.jsonl"
        self.steps_path = run_dir / "train_steps.jsonl"
        self.wandb_run = None
        self.wandb_location = None  # URL (online) or local directory (offline)
        self._axes: set[str] = set()  # sections whose x-axis is defined (define_metric)
        if tracking.wandb:
            self._start_wandb(config, tracking, run_name)
            if self.wandb_run is not None:
                self.wandb_location = (
                    str(Path(self.wandb_run.dir).parent) if self.wandb_run.offline else self.wandb_run.url
                )

    def _start_wandb(self, config: dict, tracking, run_name: str) -> None:
        mode = wandb_mode(tracking.mode)
        if mode == "disabled":
            return
        dirs = [("WANDB_DIR", ""), ("WANDB_CACHE_DIR", ".wandb-cache")]
        if mode == "offline":  # nothing of a login to keep: W&B's settings stay in the run directory too
            dirs.append(("WANDB_CONFIG_DIR", ".wandb-config"))
        for var, sub in dirs:
            os.environ.setdefault(var, str(self.run_dir / sub) if sub else str(self.run_dir))
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        self.wandb_run = wandb.init(
            project=tracking.project,
            entity=tracking.entity,
            name=run_name,
            group=tracking.group,
            config=config,
            dir=str(self.run_dir),
            reinit="finish_previous",
            settings=wandb.Settings(console="off", x_disable_stats=True),
            **({"mode": mode} if mode else {}),
        )

    def _axis(self, section: str, step_key: str) -> None:
        """Each section plots against its own step (sft/step, reward/step, ..., online/round)
        instead of W&B's global step, so stages and rounds line up whatever ran before them."""
        if self.wandb_run is not None and section not in self._axes:
            self.wandb_run.define_metric(f"{section}/{step_key}", hidden=True)
            self.wandb_run.define_metric(f"{section}/*", step_metric=f"{section}/{step_key}")
            self._axes.add(section)

    def log_step(self, stage: str, step: int, metrics: dict) -> None:
        record = {"stage": stage, "step": step, **metrics, "time": time.time()}
        with self.steps_path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.wandb_run is not None:
            self._axis(stage, "step")
            self.wandb_run.log({f"{stage}/step": step, **{f"{stage}/{k}": v for k, v in metrics.items()}})

    def log_round(self, record: dict) -> None:
        with self.metrics_path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if self.wandb_run is not None:
            self._axis("online", "round")
            flat = {f"online/{k}": v for k, v in record.items() if isinstance(v, (int, float))}
            flat.update({f"online/seconds_{k}": v for k, v in record.get("seconds", {}).items()})
            self.wandb_run.log(flat)  # online/round is among them: the x-axis

    def log_samples(self, round_number: int, rows: list[tuple[str, str, float]]) -> None:
        """Opt-in (tracking.log_samples): a W&B table of a few samples, every text redacted first."""
        if self.wandb_run is None or not rows:
            return
        import wandb

        from rlhf.privacy import redact

        table = wandb.Table(
            columns=["round", "speech", "response", "reward"],
            data=[[round_number, redact(s), redact(r), float(w)] for s, r, w in rows],
        )
        self._axis("online", "round")
        self.wandb_run.log({"online/round": round_number, "online/samples": table})

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
