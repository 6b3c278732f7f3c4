"""Runs the configured stages in order on one Ray cluster: sets up what every stage shares (the
inputs, the starting model and its tokenizer, Ray, tracking, the trainer group) in a RunContext,
looks each stage up in rlhf.stages.STAGES, skips the ones a resumed run has finished, and tears
everything down at the end.

Run directory layout:
    checkpoints/base              the built tiny model (embedded default only)
    checkpoints/sft               SFT policy (HF format, safetensors + tokenizer)
    checkpoints/reward_model      reward model (HF sequence classification + OpenRLHF fields)
    checkpoints/policy_round_NNN  policy after each online round
    checkpoints/offline_dpo       policy after offline DPO
    state/, state.json            training state and what has finished, for resuming
    metrics.jsonl                 one line per online round
    train_steps.jsonl             one line per optimizer step of the other stages
    run_summary.json              versions, layout, stage results, resolved config
    launch.log                    the run's log (python -m rlhf.launch)
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from rlhf import device, logs
from rlhf.choices import Stage
from rlhf.config import ConfigError, RunConfig
from rlhf.data import counsel_chat
from rlhf.models.base import base_model, load_tokenizer
from rlhf.pairs.parquet import read_preference_parquet
from rlhf.paths import resolve_path, work_dir
from rlhf.stages import STAGES
from rlhf.stages.context import RunContext
from rlhf.state import RunState
from rlhf.summary import summary, write_summary
from rlhf.tracking import Tracker
from rlhf.training.checks import start_errors
from rlhf.workers import ray_session
from rlhf.workers.factory import trainer_group
from rlhf.workers.group import colocated_placement

log = logging.getLogger(__name__)
__all__ = ["Pipeline", "resolve_path"]  # resolve_path: the benchmark imports it from here


class Pipeline:
    def __init__(self, run: RunConfig, resolved_config: dict):
        self.run = run
        self.resolved_config = resolved_config
        self.run_dir = Path(run.run_dir).resolve()
        self.state = RunState(self.run_dir)
        self.results: dict = {"stages_completed": [], "rounds": []}
        self.started = time.time()
        self.phase_hook = None  # fault-injection seam for tests: called with (round, phase) as a phase starts
        self.ctx: RunContext | None = None
        if self.state.resuming:  # the same command on the same run_dir: continue where it stopped
            self.results.update(self.state.data["results"])

    # -- the whole run ---------------------------------------------------------------------------
    def execute(self) -> dict:
        try:
            self.start()
            for stage in self.run.stages:
                if self.state.stage_done(stage):
                    log.info("%s: already completed in this run directory, skipped", stage)
                    continue
                self.run_stage(stage)
        finally:
            self.shutdown()
            if self.ctx is not None:
                write_summary(self.ctx)
        return self.results

    def start(self) -> RunContext:
        """Inputs, the starting model, Ray, tracking and (when a stage trains) the trainer group."""
        run = self.run
        logs.setup(run.tracking.verbose_actors)
        errors = start_errors(run)
        if errors:  # before anything is read or started
            raise ConfigError("this run cannot start:\n  - " + "\n  - ".join(errors))
        # DeepSpeed, imported with transformers' model classes, picks its accelerator on import (and
        # warns when it has to guess): name it here as the trainer ranks do
        device.apply_env(device.deepspeed_accelerator_env(run.device.type))
        (self.run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(work_dir(".cache/torch_extensions")))
        data = resolve_path(run.data.path)
        train_questions, val_questions = (
            counsel_chat.read_questions(data, "train"),
            counsel_chat.read_questions(data, "val"),
        )
        if run.data.preference_path and {Stage.reward, Stage.offline_dpo} & set(run.stages):
            # a bad preference file is refused before any actor starts (the stages read it again)
            read_preference_parquet(resolve_path(run.data.preference_path))
        if run.stages == (Stage.eval,) and run.model.path is None:  # prompt with the first evaluated policy's tokenizer
            from rlhf.eval.inputs import tokenizer_model

            run.model.path = tokenizer_model(run)
        policy_dir = base_model(run, self.run_dir / "checkpoints", train_questions)
        tokenizer, encoder = load_tokenizer(policy_dir, run)
        paths = self.results.get("paths", {})  # a resumed run starts from the last finished stage's models
        log.info("run directory: %s%s", self.run_dir, " (resuming)" if self.state.resuming else "")
        ray_session.start_ray(run.cluster.address, run.cluster.num_cpus, None, run.tracking.verbose_actors)
        tracker = Tracker(self.run_dir, self.resolved_config, run.tracking, self.run_dir.name)
        self.ctx = ctx = RunContext(
            run=run,
            run_dir=self.run_dir,
            state=self.state,
            tracker=tracker,
            tokenizer=tokenizer,
            encoder=encoder,
            train_questions=train_questions,
            val_questions=val_questions,
            results=self.results,
            config_record=self.resolved_config,
            started=self.started,
            policy_dir=paths.get("policy", policy_dir),
            reward_dir=paths.get("reward"),
            phase_hook=self.phase_hook,
        )
        if any(STAGES[stage].needs_trainers for stage in run.stages):
            start = time.perf_counter()
            ctx.shared_placement = colocated_placement(run)  # None unless cluster.colocate
            ctx.trainers = trainer_group(run, placement=ctx.shared_placement)
            self.results["trainer_startup_seconds"] = round(time.perf_counter() - start, 2)
            self.results["ray_nodes"] = ray_session.node_table()
            ctx.placement("trainer", ctx.trainers.group.where())
        return ctx

    def run_stage(self, stage: str) -> None:
        ctx = self.ctx
        STAGES[stage].run(ctx)
        self.results["stages_completed"].append(stage)
        self.results["paths"] = {"policy": ctx.policy_dir, "reward": ctx.reward_dir}
        self.state.complete_stage(stage, self.results)
        write_summary(ctx)

    def prepare_online(self):
        """The online rounds' controller with everything it drives started (for callers that run
        rounds one by one, e.g. the benchmark)."""
        from rlhf.stages import online_dpo

        return online_dpo.prepare(self.ctx)

    def shutdown(self) -> None:
        ctx = self.ctx
        if ctx is None:
            return
        for error in ctx.shutdown_workers():
            log.warning("shutdown failed: %s", error)
        if ctx.tracker is not None:
            ctx.tracker.summary({k: v for k, v in self.results.items() if not isinstance(v, (list, dict))})
            ctx.tracker.finish()

    def summary(self) -> dict:
        return summary(self.ctx)
