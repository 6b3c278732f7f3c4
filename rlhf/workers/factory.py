"""The one place each worker group is built from the config: vLLM generator groups (the online
rounds' engines, and one-engine groups for the evaluation's and the preference builder's local
models), reward-scorer groups, and the ZeRO-3 trainer group."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ray

from rlhf.logs import progress
from rlhf.workers.group import Group, create_group

if TYPE_CHECKING:
    from rlhf.config import RunConfig
    from rlhf.training.group import TrainerGroup


def generator_group(
    run: RunConfig,
    model_dir: str,
    *,
    max_model_len: int,
    engines: int = 1,
    seed: int | None = None,
    placement=None,
    colocate: bool = False,
    max_restarts: int = 0,
) -> Group:
    """`engines` vLLM engines serving `model_dir`, laid out as cluster.generator says; engine i
    samples with seed `seed + i` (default run.seed). With `placement`, engine i goes into bundle i
    of that shared (colocated) placement group; with `max_restarts`, Ray restarts a dead engine."""
    from rlhf.generation.vllm_generator import Generator

    layout, base_seed = run.cluster.generator, run.seed if seed is None else seed
    return create_group(
        Generator,
        engines,
        device_type=run.device.type,
        cpus=layout.cpus_per_engine,
        max_restarts=max_restarts,
        gpus=layout.gpus_per_engine * layout.tensor_parallel,
        strategy=run.cluster.placement_strategy,
        resources=dict(layout.resources) or None,
        placement=placement,  # resources: where the layout pins engines
        args_for=lambda i: (
            (model_dir,),
            dict(
                device_type=run.device.type,
                threads=layout.threads,
                keep_host_memory=run.device.keep_host_memory,
                seed=base_seed + i,
                dtype=run.device.dtype,
                max_model_len=max_model_len,
                tensor_parallel=layout.tensor_parallel,
                kv_cache_gib=layout.kv_cache_gib,
                gpu_memory_utilization=layout.gpu_memory_utilization,
                colocate=colocate,
            ),
        ),
    )


def reward_group(run: RunConfig, reward_dir: str, placement=None) -> Group:
    """cluster.reward.actors reward-model actors scoring with `reward_dir`."""
    from rlhf.scoring.reward_actor import RewardScorer

    layout, model = run.cluster.reward, run.model
    return create_group(
        RewardScorer,
        layout.actors,
        device_type=run.device.type,
        cpus=layout.cpus_per_actor,
        max_restarts=3,
        gpus=layout.gpus_per_actor,
        strategy=run.cluster.placement_strategy,
        resources=dict(layout.resources) or None,
        placement=placement,
        args_for=lambda i: (
            (reward_dir,),
            dict(
                device_type=run.device.type,
                threads=layout.threads,
                keep_host_memory=run.device.keep_host_memory,
                dtype=run.device.dtype,
                batch_size=run.reward.batch_size,
                system_prompt=run.system_prompt,
                max_prompt_len=model.max_prompt_len,
                max_response_len=model.max_response_len,
                trust_remote_code=model.trust_remote_code,
                attention=str(model.attention),
                share_prompt=model.share_prompt,
                compile=model.compile,
            ),
        ),
    )


def trainer_group(run: RunConfig, placement=None) -> TrainerGroup:
    """cluster.trainer.ranks DeepSpeed ZeRO-3 ranks in one process group."""
    from rlhf.training.group import TrainerGroup

    return TrainerGroup(run, placement=placement)


def started(group: Group, what: str, method: str = "info") -> list:
    """Wait until every actor of `group` answers `method` (its constructor has finished: a vLLM
    engine has loaded its model), with a progress bar; returns the answers in actor order."""
    refs = [getattr(actor, method).remote() for actor in group.actors]
    pending = list(refs)
    with progress(len(refs), f"starting {what}", "actor", leave=False) as bar:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            ray.get(ready)  # raises a failed constructor's error at once
            bar.update(len(ready))
    return ray.get(refs)
