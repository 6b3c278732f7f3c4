"""Resource arithmetic of a cluster layout (conf/cluster): does what the three worker groups ask
for fit the machines the layout describes? Called from `config.validate`, so a layout that cannot
be placed fails before any actor starts, with the field to change.

    python -m rlhf.layout cluster=gpu_2x8 model=llama3_8b device=gpu [overrides...]
checks a whole configuration without starting anything (rlhf/layout/__main__.py).

GPU counts follow `pipeline`/`create_group`: a trainer rank takes `gpus_per_rank`; a generator
engine takes `gpus_per_engine` on each of its `tensor_parallel` workers; a reward actor takes
`gpus_per_actor` (reward actors only exist for sources that start them, reward.source=local).
"""

from __future__ import annotations

from dataclasses import dataclass

from rlhf.choices import DeviceType, PlacementStrategy, not_one_of
from rlhf.scoring.sources import SOURCES


@dataclass
class Demand:
    """What each worker group asks Ray for, in total."""

    trainer_gpus: float
    generator_gpus: float
    reward_gpus: float
    cpus: float

    @property
    def gpus(self) -> float:
        return self.trainer_gpus + self.generator_gpus + self.reward_gpus


def reward_actors(run) -> int:
    """Reward actors the layout places: as many as the reward source starts (rlhf.scoring.sources)."""
    source = SOURCES.get(run.reward.source)
    return source.actors(run) if source is not None else 0


def demand(run) -> Demand:
    c = run.cluster
    t, g, r = c.trainer, c.generator, c.reward
    actors = reward_actors(run)
    return Demand(
        trainer_gpus=t.ranks * t.gpus_per_rank,
        generator_gpus=g.engines * g.tensor_parallel * g.gpus_per_engine,
        reward_gpus=actors * r.gpus_per_actor,
        cpus=t.ranks * t.cpus_per_rank + g.engines * g.cpus_per_engine + actors * r.cpus_per_actor,
    )


def total_gpus(cluster) -> int:
    return cluster.nodes * cluster.gpus_per_node


def cpu_capacity(cluster) -> int | None:
    """CPUs the layout says Ray will have: num_cpus of a local start, else nodes x cpus_per_node
    (None when neither is stated: Ray then takes every CPU it finds)."""
    if cluster.address is None and cluster.num_cpus is not None:
        return cluster.num_cpus
    return cluster.nodes * cluster.cpus_per_node if cluster.cpus_per_node else None


def _fmt(x: float) -> str:
    return f"{x:g}"


def layout_errors(run) -> list[str]:
    """Every reason the layout cannot run as configured; empty when it fits."""
    c, kind = run.cluster, run.device.type
    t, g, r = c.trainer, c.generator, c.reward
    name = f"cluster={c.name}"
    errors: list[str] = []

    if t.ranks < 1 or g.engines < 1 or r.actors < 1:
        errors.append("cluster.trainer.ranks, cluster.generator.engines and cluster.reward.actors must be >= 1")
    if kind == DeviceType.cpu and (t.gpus_per_rank or g.gpus_per_engine or r.gpus_per_actor):
        errors.append(f"{name} asks for GPUs but device=cpu; use device=gpu or a CPU layout")
    if c.nodes < 1:
        errors.append(f"{name}: cluster.nodes={c.nodes} must be >= 1")
    if c.nodes > 1 and not c.address:
        errors.append(
            f"{name} spans {c.nodes} nodes: set cluster.address to the running Ray cluster "
            "(auto on a node of it, e.g. inside slurm/ray_job.sbatch; or HEAD_IP:6379)"
        )
    errors += not_one_of("cluster.placement_strategy", c.placement_strategy, PlacementStrategy)
    if g.tensor_parallel < 1:
        errors.append(f"cluster.generator.tensor_parallel={g.tensor_parallel} must be >= 1")
    for field, value in (
        ("trainer.gpus_per_rank", t.gpus_per_rank),
        ("generator.gpus_per_engine", g.gpus_per_engine),
        ("reward.gpus_per_actor", r.gpus_per_actor),
    ):
        if not 0 <= value <= 1:
            errors.append(
                f"cluster.{field}={_fmt(value)}: one process uses at most one GPU (0 < value <= 1; "
                "use more ranks/engines or tensor_parallel for more GPUs)"
            )
    for field, value in (
        ("trainer.cpus_per_rank", t.cpus_per_rank),
        ("generator.cpus_per_engine", g.cpus_per_engine),
        ("reward.cpus_per_actor", r.cpus_per_actor),
    ):
        if value < 0:
            errors.append(f"cluster.{field}={_fmt(value)} must be >= 0")
    for role, layout in (("trainer", t), ("generator", g), ("reward", r)):
        for key, value in (layout.resources or {}).items():
            if not value or value <= 0:
                errors.append(f"cluster.{role}.resources.{key}={value}: custom resource amounts must be > 0")

    if c.colocate and kind != DeviceType.gpu:
        errors.append(
            f"{name}: cluster.colocate=true needs device=gpu (vLLM's sleep mode frees GPU memory "
            "while trainers step); on CPU set cluster.colocate=false"
        )

    need = demand(run)
    if kind == DeviceType.gpu:
        errors += _gpu_errors(run, need)
    capacity = cpu_capacity(c)
    if capacity is not None and need.cpus > capacity + 1e-9:
        source = (
            f"cluster.num_cpus={capacity}"
            if c.address is None and c.num_cpus is not None
            else f"cluster.nodes ({c.nodes}) x cluster.cpus_per_node ({c.cpus_per_node}) = {capacity}"
        )
        errors.append(
            f"{name} asks Ray for {_fmt(need.cpus)} CPUs (trainer {t.ranks} x {_fmt(t.cpus_per_rank)}, generator "
            f"{g.engines} x {_fmt(g.cpus_per_engine)}, reward {reward_actors(run)} x {_fmt(r.cpus_per_actor)}) but "
            f"{source}: lower the cpus_per_* fields or give Ray more CPUs"
        )
    return errors


def _gpu_errors(run, need: Demand) -> list[str]:
    c = run.cluster
    t, g, r = c.trainer, c.generator, c.reward
    name = f"cluster={c.name}"
    errors = []
    total = total_gpus(c)
    if c.gpus_per_node < 1:
        return [f"{name} with device=gpu: set cluster.gpus_per_node (GPUs on each node, e.g. 8)"]
    for field, value in (("trainer.gpus_per_rank", t.gpus_per_rank), ("generator.gpus_per_engine", g.gpus_per_engine)):
        if value <= 0:
            errors.append(f"{name} with device=gpu: cluster.{field} must be > 0 (a share of one GPU)")
    if reward_actors(run) and r.gpus_per_actor <= 0:
        errors.append(f"{name} with device=gpu: cluster.reward.gpus_per_actor must be > 0, or use reward=remote")
    if g.tensor_parallel > c.gpus_per_node:
        errors.append(
            f"cluster.generator.tensor_parallel={g.tensor_parallel} is larger than cluster.gpus_per_node="
            f"{c.gpus_per_node}: an engine's workers must sit on one node; lower tensor_parallel"
        )
    if g.tensor_parallel > 1 and g.gpus_per_engine < 1:
        errors.append(
            f"{name}: cluster.generator.tensor_parallel={g.tensor_parallel} needs whole GPUs per worker "
            f"(gpus_per_engine=1, not {_fmt(g.gpus_per_engine)}): a fractional share gives the engine one GPU"
        )
    if need.gpus > total + 1e-9:
        left = total - need.trainer_gpus - need.reward_gpus
        errors.append(
            f"{name}: cluster.generator.engines ({g.engines}) x tensor_parallel ({g.tensor_parallel}) x "
            f"gpus_per_engine ({_fmt(g.gpus_per_engine)}) = {_fmt(need.generator_gpus)} GPUs, but only "
            f"{_fmt(max(left, 0))} are left of cluster.nodes ({c.nodes}) x gpus_per_node ({c.gpus_per_node}) = "
            f"{total} after "
            f"{_fmt(need.trainer_gpus)} for trainer ranks and {_fmt(need.reward_gpus)} for reward actors: "
            "lower engines, tensor_parallel or trainer ranks, set cluster.colocate=true, or use a layout with more "
            "nodes"
        )
    if c.colocate:
        reward_share = r.gpus_per_actor if reward_actors(run) else 0.0
        if t.gpus_per_rank + g.gpus_per_engine + reward_share > 1 + 1e-9:
            errors.append(
                f"{name}: colocated trainer ranks, vLLM workers and reward actors share a GPU, so "
                f"cluster.trainer.gpus_per_rank ({_fmt(t.gpus_per_rank)}) + cluster.generator.gpus_per_engine "
                f"({_fmt(g.gpus_per_engine)}) + cluster.reward.gpus_per_actor ({_fmt(reward_share)}) must be <= 1"
            )
        if g.engines * g.tensor_parallel > t.ranks:
            errors.append(
                f"{name}: colocated, every vLLM worker sits on a trainer rank's GPU, but engines "
                f"({g.engines}) x tensor_parallel ({g.tensor_parallel}) > cluster.trainer.ranks ({t.ranks})"
            )
        if reward_actors(run) > t.ranks:
            errors.append(
                f"{name}: colocated, every reward actor sits on a trainer rank's GPU, but cluster.reward.actors "
                f"({r.actors}) > cluster.trainer.ranks ({t.ranks})"
            )
    return errors
