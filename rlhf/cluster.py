"""Ray set-up and the three worker groups (trainers, generators, reward scorers).

Each group is a list of Ray actors placed with a placement group, so a layout from `conf/cluster`
maps onto nodes the same way on a laptop and on a SLURM allocation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from rlhf import device

# Keep actor output quiet unless asked; their logs stay in Ray's session directory.
QUIET_ENV = {"VLLM_LOGGING_LEVEL": "WARNING", "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}


def start_ray(address: str | None, num_cpus: int | None, temp_dir: str | None, verbose: bool) -> None:
    """Join an existing cluster (`address`) or start a local one. The dashboard stays off and
    nothing listens beyond loopback on a local start."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():
        return
    project_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runtime_env = {"env_vars": {**QUIET_ENV, "PYTHONPATH": project_root + os.pathsep + os.environ.get("PYTHONPATH", "")}}
    kwargs = dict(include_dashboard=False, log_to_driver=verbose, runtime_env=runtime_env)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, _temp_dir=temp_dir, _node_ip_address="127.0.0.1", **kwargs)


@dataclass
class Group:
    """Actors of one role and the placement group that holds their resources."""

    actors: list
    placement: object

    def call(self, method: str, *args, **kwargs) -> list:
        """The same call on every actor, waiting for all."""
        return ray.get([getattr(a, method).remote(*args, **kwargs) for a in self.actors])

    def where(self) -> list[dict]:
        """Where each actor runs: Ray node id, node IP and process id."""
        return ray.get([actor.__ray_call__.remote(_where) for actor in self.actors])

    def shutdown(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        remove_placement_group(self.placement)


def _where(_actor) -> dict:
    context = ray.get_runtime_context()
    return {"node_id": context.get_node_id(), "ip": ray.util.get_node_ip_address(), "pid": os.getpid()}


def node_table() -> list[dict]:
    """The cluster's live nodes: id, IP and the resources each offers (CPU, GPU, custom labels)."""
    return [{"node_id": n["NodeID"], "ip": n["NodeManagerAddress"],
             "resources": {k: v for k, v in n["Resources"].items() if not k.startswith(("node:", "memory",
                                                                                         "object_store_memory"))}}
            for n in ray.nodes() if n.get("Alive")]


def create_group(cls, count: int, *, device_kind: str, cpus: float, gpus: float, strategy: str,
                 resources: dict | None = None, env: dict | None = None, args_for=None) -> Group:
    """`count` actors of `cls`, one placement-group bundle each. `args_for(i)` gives actor i's
    constructor (args, kwargs)."""
    per_actor = device.ray_actor_resources(device_kind, cpus, gpus)
    bundle = {"CPU": per_actor["num_cpus"], **({"GPU": per_actor["num_gpus"]} if per_actor["num_gpus"] else {}),
              **(resources or {})}
    placement = placement_group([dict(bundle) for _ in range(count)], strategy=strategy)
    ray.get(placement.ready(), timeout=300)
    remote_cls = ray.remote(cls)
    actors = []
    for index in range(count):
        args, kwargs = args_for(index)
        options = dict(per_actor, scheduling_strategy=PlacementGroupSchedulingStrategy(
            placement_group=placement, placement_group_bundle_index=index))
        if resources:
            options["resources"] = dict(resources)
        if env:
            options["runtime_env"] = {"env_vars": dict(env)}
        actors.append(remote_cls.options(**options).remote(*args, **kwargs))
    return Group(actors, placement)
