"""Every cluster layout composes with every model it is meant for, and its resource arithmetic holds:
what the worker groups ask Ray for fits the nodes the layout describes. Mistakes stop before any actor
starts, naming the field to change."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from rlhf.config import ConfigError, load_config
from rlhf.layout import cpu_capacity, demand, total_gpus
from tests.conftest import REPO_ROOT, compose

LAYOUTS = sorted(p.stem for p in (REPO_ROOT / "conf" / "cluster").glob("*.yaml"))
GPU_LAYOUTS = [name for name in LAYOUTS if name.startswith("gpu_")]
# Presets that take any checkpoint leave model.path to the command line; they pair with no layout here.
MODELS = sorted(p.stem for p in (REPO_ROOT / "conf" / "model").glob("*.yaml")
                if not OmegaConf.is_missing(compose([f"model={p.stem}"]).model, "path"))
# GPU layouts are sized for the hub checkpoints (model.path set); the locally built models
# (model.path null) use the recipe's small CPU batches, meant for the CPU layouts.
HUB_MODELS = [m for m in MODELS if compose([f"model={m}"]).model.path is not None]

# What each layout asks Ray for and what its nodes offer, worked out by hand from its YAML:
# (trainer GPUs, generator GPUs, reward GPUs, CPUs asked; GPUs, CPUs the nodes have).
# Generators ask gpus_per_engine on each tensor-parallel worker and cpus_per_engine per engine.
EXPECTED_DEMAND = {
    # 8 ranks x 0.5 | 8 engines x TP 1 x 0.35 | 4 actors x 0.15; CPUs 8 x 4 + 8 x 2 + 4 x 2; 1 node x (8 GPUs, 64 CPUs)
    "gpu_1x8": (4, 2.8, 0.6, 56, 8, 64),
    # 8 x 1 | 3 x 2 x 1 | 2 x 1; CPUs 8 x 4 + 3 x 4 + 2 x 4; 2 nodes x (8, 64)
    "gpu_2x8": (8, 6, 2, 52, 16, 128),
    # 16 x 1 | 6 x 2 x 1 | 4 x 1; CPUs 16 x 4 + 6 x 4 + 4 x 4; 4 nodes x (8, 64)
    "gpu_4x8": (16, 12, 4, 104, 32, 256),
    # no GPUs; CPUs 2 x 0.5 + 1 x 0.5 + 1 x 0.5 of num_cpus=2
    "local_cpu": (0, 0, 0, 2, 0, 2),
    # no GPUs; CPUs 2 x 0.5 (node_a) + 0.5 + 0.5 (node_b) of 2 nodes x 1
    "two_node_cpu": (0, 0, 0, 2, 0, 2),
}


def overrides_for(layout: str, model: str) -> list[str]:
    extra = ["device=gpu"] if layout in GPU_LAYOUTS else []
    if layout == "two_node_cpu":
        extra.append("cluster.address=127.0.0.1:6379")
    return [f"cluster={layout}", f"model={model}", *extra]


def test_the_expected_layouts_exist():
    assert {"local_cpu", "gpu_1x8", "gpu_2x8", "gpu_4x8", "two_node_cpu"} <= set(LAYOUTS)
    assert {"tiny", "llama3_3b", "llama3_8b"} <= set(MODELS)
    assert {"llama3_3b", "llama3_8b"} <= set(HUB_MODELS) and "tiny" not in HUB_MODELS
    assert set(EXPECTED_DEMAND) == set(LAYOUTS), "work out a new layout's numbers in EXPECTED_DEMAND"


@pytest.mark.parametrize("layout, model", [(layout, model) for layout in LAYOUTS for model in MODELS
                                           if (layout in GPU_LAYOUTS) == (model in HUB_MODELS)])
def test_layout_composes_and_fits(layout, model):
    run = load_config(compose(overrides_for(layout, model)))
    c, need = run.cluster, demand(run)
    t, g, r = c.trainer, c.generator, c.reward
    trainer_gpus, generator_gpus, reward_gpus, cpus, gpus_owned, cpus_owned = EXPECTED_DEMAND[layout]
    assert (need.trainer_gpus, need.generator_gpus, need.reward_gpus) == pytest.approx(
        (trainer_gpus, generator_gpus, reward_gpus))
    assert need.cpus == pytest.approx(cpus)
    assert (total_gpus(c), cpu_capacity(c)) == (gpus_owned, cpus_owned)
    assert need.gpus <= gpus_owned + 1e-9 and need.cpus <= cpus_owned
    if layout in GPU_LAYOUTS:
        assert c.gpus_per_node == 8 and c.nodes in (1, 2, 4)
        assert g.tensor_parallel <= c.gpus_per_node
        if c.colocate:  # each vLLM worker beside a trainer rank, sharing its GPU
            assert g.engines * g.tensor_parallel <= t.ranks
            assert t.gpus_per_rank + g.gpus_per_engine + r.gpus_per_actor <= 1
        else:  # whole GPUs, nothing shared, no GPU idle
            assert need.gpus == pytest.approx(gpus_owned)
    # ZeRO-3: every stage's batch splits evenly over the trainer ranks
    for stage in (run.sft, run.reward_training, run.offline, run.online):
        assert stage.batch_size % (stage.micro_batch * t.ranks) == 0
    if c.nodes > 1:
        assert c.address


def test_two_node_layout_pins_trainers_and_inference_to_different_nodes():
    run = load_config(compose(overrides_for("two_node_cpu", "tiny")))
    c = run.cluster
    assert set(c.trainer.resources) == {"node_a"}
    assert set(c.generator.resources) == set(c.reward.resources) == {"node_b"}
    # each node has one CPU: trainers fill node_a's, generator + reward fill node_b's
    assert c.trainer.ranks * c.trainer.cpus_per_rank <= c.cpus_per_node
    assert c.generator.engines * c.generator.cpus_per_engine + c.reward.actors * c.reward.cpus_per_actor \
        <= c.cpus_per_node


def every_yaml_field_has_a_comment(path) -> list[str]:
    missing = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not stripped.endswith(":") and "#" not in line:
            missing.append(f"{path.name}:{number}: {stripped}")
    return missing


@pytest.mark.parametrize("layout", [name for name in LAYOUTS if name != "local_cpu"])
def test_new_layout_fields_are_documented(layout):
    assert every_yaml_field_has_a_comment(REPO_ROOT / "conf" / "cluster" / f"{layout}.yaml") == []


BAD = [
    (["cluster=gpu_2x8", "model=llama3_8b", "device=gpu", "cluster.generator.engines=5"],
     ["cluster.generator.engines (5) x tensor_parallel (2)", "only 6 are left", "lower engines"]),
    (["cluster=gpu_4x8", "model=llama3_8b", "device=gpu", "cluster.generator.tensor_parallel=16",
      "cluster.generator.engines=1"], ["tensor_parallel=16 is larger than cluster.gpus_per_node=8"]),
    (["cluster=gpu_2x8", "model=llama3_8b", "device=gpu", "cluster.trainer.ranks=6"],
     ["online.batch_size=64 must be a multiple of online.micro_batch (1) x cluster.trainer.ranks (6"]),
    (["cluster=gpu_1x8", "model=llama3_8b", "device=gpu", "cluster.generator.gpus_per_engine=0.6"],
     ["gpus_per_rank (0.5) + cluster.generator.gpus_per_engine (0.6) + cluster.reward.gpus_per_actor (0.15) must be <= 1"]),
    (["cluster=gpu_1x8", "model=llama3_8b", "device=gpu", "cluster.reward.actors=9"],
     ["every reward actor sits on a trainer rank's GPU, but cluster.reward.actors (9) > cluster.trainer.ranks (8)"]),
    (["cluster=gpu_1x8", "model=llama3_8b", "device=gpu", "cluster.generator.tensor_parallel=2"],
     ["tensor_parallel=2 needs whole GPUs per worker"]),
    (["cluster=local_cpu", "cluster.colocate=true"], ["cluster.colocate=true needs device=gpu"]),
    (["cluster=gpu_2x8", "model=llama3_8b"], ["asks for GPUs but device=cpu; use device=gpu"]),
    (["cluster=gpu_2x8", "model=llama3_8b", "device=gpu", "cluster.address=null"],
     ["spans 2 nodes: set cluster.address"]),
    (["cluster.trainer.cpus_per_rank=1"], ["asks Ray for 3 CPUs", "cluster.num_cpus=2"]),
    (["cluster=gpu_2x8", "model=llama3_8b", "device=gpu", "cluster.gpus_per_node=0"],
     ["set cluster.gpus_per_node"]),
    (["cluster=two_node_cpu", "cluster.trainer.resources.node_a=0"], ["custom resource amounts must be > 0"]),
]


@pytest.mark.parametrize("overrides, messages", BAD, ids=[" ".join(o[1:] if len(o) > 1 else o) for o, _ in BAD])
def test_bad_layouts_say_what_to_change(overrides, messages):
    with pytest.raises(ConfigError) as err:
        load_config(compose(overrides))
    for message in messages:
        assert message in str(err.value)


def test_launch_reports_a_layout_error_without_starting_anything(tmp_path):
    """What `python -m rlhf.launch` runs, in this process (the CLI's exit status 2 for a ConfigError
    is tested once, in test_bad_input)."""
    import ray

    from rlhf.launch import execute

    overrides = ["cluster=gpu_2x8", "model=llama3_8b", "device=gpu", "cluster.generator.engines=8"]
    with pytest.raises(ConfigError) as err:
        execute(compose([*overrides, f"run_dir={tmp_path / 'run'}"]))
    assert "cluster.generator.engines (8)" in str(err.value)
    assert not ray.is_initialized() and not (tmp_path / "run" / "run_summary.json").exists()


def test_an_address_where_no_ray_listens_fails_fast_with_what_to_do():
    import socket
    import time

    from rlhf.workers.ray_session import start_ray

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        start_ray(f"127.0.0.1:{port}", None, None, False)
    assert time.monotonic() - start < 60  # Ray itself would block for minutes
    assert f"cluster.address=127.0.0.1:{port}: no Ray cluster answers" in str(err.value)
    assert "cluster.address=null" in str(err.value)
