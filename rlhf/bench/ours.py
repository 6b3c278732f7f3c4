"""This project's side: the online DPO rounds through the same code path as `python -m rlhf.launch
stage=online_dpo` (Hydra compose -> load_config -> Pipeline -> controller.run_round), timed per phase."""

from __future__ import annotations

import math
import time
from pathlib import Path

from rlhf.bench.common import compose_run


def layout_overrides(engines: int, ranks: int, cpus: int = 2) -> list[str]:
    """Actor reservations that fit `cpus` cores with 1 reward actor; torch threads split the cores."""
    share = math.floor(1000 * cpus / (engines + ranks + 1)) / 1000
    return [f"cluster.generator.engines={engines}", f"cluster.trainer.ranks={ranks}",
            f"cluster.generator.cpus_per_engine={share:.3f}", f"cluster.trainer.cpus_per_rank={share:.3f}",
            f"cluster.reward.cpus_per_actor={share:.3f}",
            f"cluster.generator.threads={max(1, cpus // engines)}", f"cluster.trainer.threads={max(1, cpus // ranks)}"]


def with_settings(overrides: list[str], settings: tuple[str, ...]) -> list[str]:
    """`overrides` with each key that `settings` sets replaced by its value there (Hydra refuses a key twice)."""
    replaced = {o.split("=", 1)[0] for o in settings}
    return [o for o in overrides if o.split("=", 1)[0] not in replaced] + list(settings)


def run_ours(*, model: str, policy: str, reward: str, dtype: str, engines: int, ranks: int, batch_size: int,
             micro_batch: int, speeches: list[int], rounds: int, warmup: int, work_dir: Path, seed: int = 0,
             extra_k: tuple[int, ...] = (), compile: bool = True, attention: str = "eager",
             settings: tuple[str, ...] = ()) -> dict:
    """Start the loop once for a layout; run `warmup` rounds, then `rounds` timed rounds for each
    speeches-per-round value at 2 samples per speech (TRL's setting), then, at the first speeches
    value, `rounds` more for each K in `extra_k` (K samples per speech: more work per round).
    `compile`: model.compile (trainers and reward actors through torch.compile; the warm-up rounds compile).
    `attention`: model.attention (eager: through torch.compile, faster than sdpa on a CPU).
    `settings`: config overrides that replace ours (bench --ours-set).
    Returns start-up seconds and every timed round's record."""
    from omegaconf import OmegaConf

    from rlhf.pipeline import Pipeline

    run_dir = work_dir / f"ours-{model}-{dtype}-e{engines}r{ranks}"
    overrides = [f"model={model}", f"model.path={policy}", "stage=online_dpo", f"reward.path={reward}",
                 f"run_dir={run_dir}", f"device.dtype={dtype}", f"seed={seed}", "tracking.wandb=false",
                 "online.samples_per_speech=2", "online.epochs=1", "online.min_reward_gap=0.0",
                 "online.truncated=keep",  # TRL pairs every speech's two samples, cut or not: same pairs
                 f"online.batch_size={batch_size}", f"online.micro_batch={micro_batch}",
                 "online.save_every_round=false", "online.rounds=100000",
                 "online.metric_pairs=0",  # round metrics off the training forward, as TRL takes them: no extra pass
                 "device.keep_host_memory=true",  # no page faults to reuse freed memory; this machine has the room
                 f"online.speeches_per_round={speeches[0]}", f"model.compile={str(compile).lower()}",
                 f"model.attention={attention}",
                 *layout_overrides(engines, ranks)]
    overrides = with_settings(overrides, settings)
    cfg, run = compose_run(overrides)
    start = time.perf_counter()
    pipeline = Pipeline(run, OmegaConf.to_container(cfg, resolve=True))
    out: dict = {"system": "ours", "model": model, "dtype": dtype, "engines": engines, "ranks": ranks,
                 "batch_size": batch_size, "micro_batch": micro_batch, "overrides": overrides, "rounds": []}
    try:
        pipeline.start()
        controller = pipeline.prepare_online()
        out["startup_seconds"] = round(time.perf_counter() - start, 3)
        out["startup_parts"] = {k: pipeline.results.get(k) for k in ("trainer_startup_seconds",
                                                                     "inference_startup_seconds")}
        tally = StepTally(controller.trainers)
        index = 0
        for m, k in [(m, 2) for m in speeches] + [(speeches[0], k) for k in extra_k]:
            controller.online.speeches_per_round, controller.online.samples_per_speech = m, k
            warm = warmup if (m, k) == (speeches[0], 2) else 0  # later settings run on a warm engine
            for r in range(warm + rounds):
                record = controller.run_round(index)
                index += 1
                counted = tally.take()
                out["rounds"].append({
                    "speeches": m, "samples_per_speech": k, "warmup": r < warm, "round_seconds": record["round_seconds"],
                    "seconds": record["seconds"], "tokens_generated": record["tokens_generated"],
                    "samples": record["samples"], "pairs": record["pairs"],
                    "optimizer_steps": record.get("optimizer_steps", 0), **counted})
                print(f"  ours {model} {dtype} e{engines}r{ranks} M={m} K={k}{' (warm-up)' if r < warm else ''}: "
                      f"{record['round_seconds']:.2f}s {record['seconds']}", flush=True)
    finally:
        pipeline.shutdown()
    return out


class StepTally:
    """Tallies every DPO update: its non-padding tokens (the trainer ranks report them per step), the
    tokens the model ran through for them (fewer: a shared prompt runs once per pair), their forward
    FLOPs (rlhf.training.flops) and the seconds the slowest rank spent in the steps."""

    def __init__(self, trainers):
        self.counts = dict.fromkeys(("trained_tokens", "computed_tokens", "forward_flops", "step_seconds"), 0)
        self._step = trainers.train_step

        def counted(step, pad_id):
            result = self._step(step, pad_id)
            self.counts["trained_tokens"] += int(result.get("tokens", 0))
            self.counts["computed_tokens"] += int(result.get("computed_tokens", result.get("tokens", 0)))
            self.counts["forward_flops"] += int(result.get("forward_flops", 0))
            self.counts["step_seconds"] += float(result.get("seconds", 0.0))
            return result

        trainers.train_step = counted

    def take(self) -> dict:
        """The counts since the last call (one round's), then zero."""
        counts, self.counts = self.counts, dict.fromkeys(self.counts, 0)
        return {**counts, "step_seconds": round(counts["step_seconds"], 4)}
