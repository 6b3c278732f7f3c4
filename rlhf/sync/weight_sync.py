"""Push the trainer group's current policy weights into every generator engine, without disk.

Three methods (`sync.method`; `auto` lets rlhf.device choose: collective on GPUs, cuda_ipc on
colocated GPUs, object_store on CPU):
  object_store  trainer rank 0 gathers the ZeRO-3 shards bucket by bucket into one state dict,
                which goes into Ray's object store once and is read by every engine; vLLM reloads
                it in place.
  collective    trainer rank 0 broadcasts bucket by bucket over one group with every vLLM worker
                (NCCL on GPU, gloo on CPU): TrainerRank.broadcast_weights + WeightSyncExtension.
  cuda_ipc      colocated GPU layouts (rlhf.sync.colocated).

The collective group is built when the generators start and rebuilt, on a new port and with all
members, after every recovery: a restarted engine's workers are in no group, and a rebuilt trainer
group's rank 0 is a new process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import ray

from rlhf import device

log = logging.getLogger(__name__)


class WeightSyncTimeout(RuntimeError):
    pass


@dataclass
class SyncPlan:
    """How weights reach one generator group; kept on the group (`generators.sync`)."""

    method: str
    device_type: str
    tensor_parallel: int
    timeout_s: float = 600.0
    groups_built: int = 0  # collective: how many times the broadcast group was (re)built

    def describe(self) -> dict:
        return {
            "method": self.method,
            "backend": device.sync_backend(self.device_type, self.method),
            "tensor_parallel": self.tensor_parallel,
            "groups_built": self.groups_built,
        }


def resolve_method(requested: str, device_type: str, colocate: bool) -> str:
    """`sync.method` -> the method used (config validation has refused impossible combinations)."""
    if requested == "auto":
        return device.default_sync_method(device_type, colocate)
    if requested not in device.SYNC_METHODS:
        raise ValueError(f"sync.method={requested!r} must be auto or one of {device.SYNC_METHODS}")
    return requested


def plan_for(generators) -> SyncPlan | None:
    return getattr(generators, "sync", None)


def attach(generators, plan: SyncPlan, trainers) -> None:
    """Give a new generator group its sync plan, and build the broadcast group if it needs one."""
    generators.sync = plan
    generators.colocated = plan.method == "cuda_ipc"
    connect(trainers, generators)


def connect(trainers, generators) -> None:
    """(Re)build the collective group: trainer rank 0 is rank 0, engine i's worker w is rank
    1 + i * tensor_parallel + w. Every member leaves its old group first. No-op for other methods."""
    plan = plan_for(generators)
    if plan is None or plan.method != "collective":
        return
    address, port = ray.get(trainers.actors[0].address.remote())  # a fresh port every time
    world = 1 + len(generators.actors) * plan.tensor_parallel
    refs = [a.init_weight_sync_group.remote(address, port, world, plan.timeout_s) for a in trainers.actors]
    refs += [
        g.init_weight_sync_group.remote(
            master_address=address,
            master_port=port,
            rank_offset=1 + i * plan.tensor_parallel,
            world_size=world,
            device_type=plan.device_type,
            timeout_s=plan.timeout_s,
        )
        for i, g in enumerate(generators.actors)
    ]
    _wait(refs, plan.timeout_s, "building the weight-sync group", plan)
    plan.groups_built += 1
    log.info("weight-sync group %d built: %d members on %s:%d", plan.groups_built, world, address, port)


def sync_weights(trainers, generators, *, device_type: str, bucket_bytes: int, timeout_s: float) -> int:
    """Returns the number of tensors each engine loaded."""
    plan = plan_for(generators) or SyncPlan(
        "cuda_ipc" if getattr(generators, "colocated", False) else device.default_sync_method(device_type, False),
        device_type,
        1,
        timeout_s,
    )
    if plan.method == "cuda_ipc":
        from rlhf.sync.colocated import sync_colocated

        return sync_colocated(trainers, generators, bucket_bytes=bucket_bytes, timeout_s=timeout_s)
    if plan.method == "collective":
        refs = [a.broadcast_weights.remote(generators.actors, bucket_bytes, timeout_s) for a in trainers.actors]
    else:
        state = trainers.state_dict(bucket_bytes)  # ObjectRef to rank 0's gathered dict
        refs = [g.load_state.remote(state) for g in generators.actors]
    loaded = [n for n in _wait(refs, timeout_s, "weight sync", plan) if n]
    return max(loaded) if loaded else 0


def _wait(refs: list, timeout_s: float, what: str, plan: SyncPlan) -> list:
    """Every call's result, failing as soon as one fails (a dead engine), or after the timeout."""
    from rlhf.workers.group import get_all

    try:
        return get_all(refs, timeout_s=timeout_s)
    except TimeoutError as err:
        raise WeightSyncTimeout(
            f"{what} did not finish within {timeout_s:.0f}s ({err}): check that every generator is alive; "
            f"{device.sync_troubleshooting(plan.device_type, plan.method)}"
        ) from None


def engine_workers(generators) -> list[list[tuple[int, int]]]:
    """(tensor-parallel rank, process id) of every worker of every engine."""
    return ray.get([g.__ray_call__.remote(_worker_identities) for g in generators.actors])


def _worker_identities(generator) -> list[tuple[int, int]]:
    return [tuple(x) for x in generator.llm.collective_rpc("worker_identity")]
