"""The trainer group: N TrainerRank actors forming one DeepSpeed ZeRO-3 world, driven as one."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import TYPE_CHECKING

import ray

from rlhf.training.batching import accumulation_steps, plan_steps
from rlhf.training.losses import COUNTS
from rlhf.training.trainer import TrainerRank
from rlhf.workers.group import Group, create_group, get_all

if TYPE_CHECKING:
    from rlhf.config import OptimConfig, RunConfig


class TrainerGroup:
    def __init__(self, run: RunConfig, placement=None):
        layout = run.cluster.trainer
        self.world_size = layout.ranks
        self.group: Group = create_group(
            TrainerRank,
            layout.ranks,
            device_type=run.device.type,
            cpus=layout.cpus_per_rank,
            gpus=layout.gpus_per_rank,
            strategy=run.cluster.placement_strategy,
            resources=layout.resources or None,
            placement=placement,
            args_for=lambda rank: (
                (rank, layout.ranks, run.device.type, layout.threads, run.seed, run.device.keep_host_memory),
                {},
            ),
        )
        address, port = ray.get(self.group.actors[0].address.remote())
        self.group.call("init_process_group", address, port)
        self.dtype = run.device.dtype
        self.gradient_checkpointing = run.model.gradient_checkpointing
        self.attention = str(run.model.attention)
        self.share_prompt = run.model.share_prompt
        self.compile = run.model.compile
        self.zero = vars(run.device.zero)
        self.offload = run.offload_trainer_states  # device.zero.offload_states, resolved
        self.optim: OptimConfig | None = None

    @property
    def actors(self) -> list:
        return self.group.actors

    def load(
        self, loss: str, model_dir: str, optim: OptimConfig, reference_dir: str | None = None, total_steps: int = 0
    ) -> None:
        """Every rank builds `loss`'s model(s) (rlhf.training.losses) with the stage's config section
        `optim`, handed over whole so a loss's own hyperparameters need no new argument.
        `total_steps`: optimizer steps the stage will take (the cosine schedule's length)."""
        self.optim = optim
        self.group.call(
            "load",
            loss,
            model_dir,
            settings=asdict(optim),
            accumulation=accumulation_steps(optim, self.world_size),
            dtype=self.dtype,
            reference_dir=reference_dir,
            gradient_checkpointing=self.gradient_checkpointing,
            attention=self.attention,
            share_prompt=self.share_prompt,
            compile=self.compile,
            total_steps=total_steps,
            zero=self.zero,
        )

    def plan(self, items: list, epochs: int, seed: int) -> list:
        """Optimizer steps -> per-rank micro-batches (see batching.plan_steps)."""
        return plan_steps(
            items,
            self.world_size,
            self.optim.micro_batch,
            accumulation_steps(self.optim, self.world_size),
            epochs,
            seed,
        )

    def train_step(self, step: list, pad_id: int) -> dict:
        return _mean(get_all([a.train_step.remote(step[r], pad_id) for r, a in enumerate(self.actors)]))

    def evaluate(self, items: list, pad_id: int) -> dict:
        """Metrics over `items` without updating (each item once; the last batch is padded)."""
        steps = plan_steps(items, self.world_size, self.optim.micro_batch, 1, 1, seed=0)
        per_step = [_mean(get_all([a.evaluate.remote(s[r], pad_id) for r, a in enumerate(self.actors)])) for s in steps]
        return _mean(per_step)

    def score(self, items: list, pad_id: int) -> list[float]:
        """Reward-model scores of (prompt, response) items, in order."""
        return self._per_item("score", items, pad_id)

    def reference_logprobs(self, pairs: list, pad_id: int) -> list[tuple[list[float], list[float]]]:
        """The reference model's per-token log-probabilities of each pair's (chosen, rejected)."""
        return self._per_item("reference_logprobs", pairs, pad_id)

    def with_reference(self, pairs: list, pad_id: int) -> tuple[list, list]:
        """(pairs carrying their reference log-probabilities for DPO, the per-token ones)."""
        tokens = self.reference_logprobs(pairs, pad_id)
        return [replace(p, reference=(sum(c), sum(r))) for p, (c, r) in zip(pairs, tokens)], tokens

    def _per_item(self, method: str, items: list, pad_id: int) -> list:
        """One result per item, in order, from a no-grad pass of every rank. Items run sorted by
        length (less padding), dealt to the ranks in turn so that each rank's micro-batches are as
        long as the others' (the call waits for the slowest); every rank gets the same number of
        micro-batches, the last ones padded by repetition, as ZeRO-3 requires."""
        if not items:
            return []
        micro, world = self.optim.micro_batch, self.world_size
        order = sorted(range(len(items)), key=lambda i: len(items[i]))
        order += [order[i % len(order)] for i in range((-len(order)) % (world * micro))]
        slices = [order[start : start + world * micro] for start in range(0, len(order), world * micro)]
        per_rank = [[[items[i] for i in chunk[r::world]] for chunk in slices] for r in range(world)]
        parts = get_all([getattr(a, method).remote(per_rank[r], pad_id) for r, a in enumerate(self.actors)])
        out: list = [None] * len(items)
        for k, chunk in enumerate(slices):
            for r in range(world):
                for i, value in zip(chunk[r::world], parts[r][k]):
                    out[i] = value
        return out

    def save(self, out_dir: str, extra_config: dict | None = None) -> None:
        self.group.call("save", out_dir, extra_config)

    def state_dict(self, bucket_bytes: int):
        """Full weights gathered on rank 0, left in Ray's object store (an ObjectRef)."""
        refs = [a.full_state_dict.remote(bucket_bytes) for a in self.actors]
        ray.wait(refs, num_returns=len(refs))
        return refs[0]

    def save_state(self, state_dir: str) -> None:
        self.group.call("save_state", state_dir)

    def load_state(self, state_dir: str) -> None:
        self.group.call("load_state", state_dir)

    def offload_states(self) -> int:
        """Optimizer state, fp32 master weights and gradient buffers to host memory while vLLM and
        the reward actors work (device.zero.offload_states; nothing when off). Bytes moved per rank."""
        return max(self.group.call("offload_states")) if self.offload else 0

    def reload_states(self) -> None:
        """Back to the device before the next training step (nothing when offloading is off)."""
        if self.offload:
            self.group.call("reload_states")

    def refresh_reference(self) -> None:
        self.group.call("refresh_reference")

    def shutdown(self) -> None:
        try:
            self.group.call("shutdown")
        finally:
            self.group.shutdown()

    def kill(self) -> None:
        """Tear down a broken group at once (a rank died: the others may be stuck in a collective)."""
        self.group.shutdown()


def planned_steps(items: int, optim: OptimConfig) -> int:
    """Optimizer steps of `epochs` passes over `items` examples or pairs (the last step of an epoch
    is filled up, see batching.plan_steps)."""
    return optim.epochs * -(-items // optim.batch_size)


def _mean(results: list[dict]) -> dict:
    keys = results[0].keys() if results else []
    out = {k: sum(r[k] for r in results) / len(results) for k in keys if k not in (*COUNTS, "seconds")}
    if results:
        out.update({k: sum(r.get(k, 0) for r in results) for k in COUNTS if k == "tokens" or k in keys})
        out["seconds"] = max(r.get("seconds", 0.0) for r in results)
    return out
