"""A worker group: Ray actors of one role, one placement-group bundle each, so a layout from
conf/cluster maps onto nodes the same way on a laptop and on a SLURM allocation. `create_group` is
the one way to start any group (rlhf.workers.factory builds each role's through it)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from rlhf import device

# What a dead or restarting actor raises.
ACTOR_FAILURES = (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError)


@dataclass
class Group:
    """Actors of one role and the placement group that holds their resources."""

    actors: list
    placement: object
    owns_placement: bool = True  # False: a placement group shared by several groups (colocation)
    colocated: bool = False  # generators that share GPUs with trainer ranks (weights via CUDA IPC)

    def call(self, method: str, *args, **kwargs) -> list:
        """The same call on every actor, waiting for all (failing as soon as one fails)."""
        return get_all([getattr(a, method).remote(*args, **kwargs) for a in self.actors])

    def dead(self, timeout_s: float = 10.0) -> list[int]:
        """Indices of actors that do not answer a ping (dead, or restarting)."""
        pings = [actor.__ray_call__.remote(_where) for actor in self.actors]
        ready, _ = ray.wait(pings, num_returns=len(pings), timeout=timeout_s)
        dead = []
        for index, ref in enumerate(pings):
            try:
                if ref not in ready:
                    raise TimeoutError
                ray.get(ref)
            except (*ACTOR_FAILURES, TimeoutError):
                dead.append(index)
        return dead

    def wait_alive(self, timeout_s: float = 600.0) -> None:
        """Block until every actor answers (Ray restarts crashed ones, re-running their constructor)."""
        deadline = time.monotonic() + timeout_s
        while self.dead(timeout_s=30.0):
            if time.monotonic() > deadline:
                raise TimeoutError(f"actors did not come back within {timeout_s:.0f}s")
            time.sleep(1.0)

    def where(self) -> list[dict]:
        """Where each actor runs: Ray node id, node IP and process id."""
        return ray.get([actor.__ray_call__.remote(_where) for actor in self.actors])

    def shutdown(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        if self.owns_placement:
            remove_placement_group(self.placement)


def get_all(refs: list, timeout_s: float | None = None) -> list:
    """ray.get for a list that raises as soon as any call fails, instead of waiting behind a call
    that may never return (e.g. a ZeRO-3 rank blocked in a collective with a dead peer)."""
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1, timeout=timeout_s)
        if not ready:
            raise TimeoutError(f"{len(pending)} calls still running after {timeout_s}s")
        ray.get(ready)  # raises the call's error, if any
    return ray.get(refs)


def _where(_actor) -> dict:
    context = ray.get_runtime_context()
    return {"node_id": context.get_node_id(), "ip": ray.util.get_node_ip_address(), "pid": os.getpid()}


def colocated_placement(run):
    """Colocated layouts: one bundle per trainer rank holding a whole GPU, in which trainer rank i,
    generator engine i and reward actor i share that GPU (each asks for its fraction). None when
    the layout is not colocated."""
    c = run.cluster
    if not c.colocate:
        return None
    bundle = {"CPU": c.trainer.cpus_per_rank + c.generator.cpus_per_engine + c.reward.cpus_per_actor, "GPU": 1}
    for extra in (c.trainer.resources, c.generator.resources, c.reward.resources):
        for key, value in (extra or {}).items():
            bundle[key] = bundle.get(key, 0) + value
    placement = placement_group([dict(bundle) for _ in range(c.trainer.ranks)], strategy=c.placement_strategy)
    ray.get(placement.ready(), timeout=300)
    return placement


def release_placement(placement) -> None:
    if placement is not None:
        remove_placement_group(placement)


def create_group(
    cls,
    count: int,
    *,
    device_type: str,
    cpus: float,
    gpus: float,
    strategy: str,
    resources: dict | None = None,
    env: dict | None = None,
    args_for=None,
    placement=None,
    max_restarts: int = 0,
    max_task_retries: int = 0,
) -> Group:
    """`count` actors of `cls`, one placement-group bundle each. `args_for(i)` gives actor i's
    constructor (args, kwargs). With `max_restarts`, Ray restarts a crashed actor in its bundle;
    with `max_task_retries`, calls that were running on it are retried on the restarted actor."""
    per_actor = device.ray_actor_resources(device_type, cpus, gpus)
    bundle = {
        "CPU": per_actor["num_cpus"],
        **({"GPU": per_actor["num_gpus"]} if per_actor["num_gpus"] else {}),
        **(resources or {}),
    }
    owns = placement is None  # else a shared placement group: actor i goes into its bundle i
    if owns:
        placement = placement_group([dict(bundle) for _ in range(count)], strategy=strategy)
        ray.get(placement.ready(), timeout=300)
    remote_cls = ray.remote(cls)
    actors = []
    for index in range(count):
        args, kwargs = args_for(index)
        options = dict(
            per_actor,
            max_restarts=max_restarts,
            max_task_retries=max_task_retries,
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                placement_group=placement, placement_group_bundle_index=index
            ),
        )
        if resources:
            options["resources"] = dict(resources)
        if env:
            options["runtime_env"] = {"env_vars": dict(env)}
        actors.append(remote_cls.options(**options).remote(*args, **kwargs))
    return Group(actors, placement, owns)
