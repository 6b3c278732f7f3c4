"""Every config group composes into a valid typed config; mistakes are caught before any actor."""

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rlhf.config import ConfigError, RunConfig, load_config
from tests.conftest import REPO_ROOT, compose

GROUPS = {group.name: sorted(p.stem for p in group.glob("*.yaml"))
          for group in (REPO_ROOT / "conf").iterdir() if group.is_dir()}


def test_default_is_the_embedded_recipe():
    run = load_config(compose())
    assert isinstance(run, RunConfig)
    assert run.stages == ("sft", "reward", "online_dpo")
    assert run.model.path is None and run.device.type == "cpu"
    assert run.cluster.trainer.ranks >= 2 and run.online.rounds >= 3


# A GPU layout on its own keeps device=cpu and the tiny recipe's batches (16), so it must be refused:
# it asks for GPUs on a CPU device, and its trainer ranks do not divide any stage's batch.
# layout -> (trainer ranks, the GPU-specific errors)
GPU_LAYOUTS_ON_CPU = {
    "gpu_1x8": (8, ["cluster=gpu_1x8 asks for GPUs but device=cpu; use device=gpu or a CPU layout",
                    "cluster=gpu_1x8: cluster.colocate=true needs device=gpu"]),
    "gpu_2x8": (8, ["cluster=gpu_2x8 asks for GPUs but device=cpu; use device=gpu or a CPU layout"]),
    "gpu_4x8": (16, ["cluster=gpu_4x8 asks for GPUs but device=cpu; use device=gpu or a CPU layout"]),
}
BATCH_STAGES = {"sft", "reward_training", "offline", "online"}
# device=gpu needs a GPU layout and a model sized for it to make a whole configuration.
COMPANIONS = {("device", "gpu"): ["cluster=gpu_1x8", "model=llama3_8b"]}


def required_values(group: str, option: str) -> list[str]:
    """Keys the option's YAML leaves required (???): composing it alone must name them."""
    return sorted(OmegaConf.missing_keys(OmegaConf.load(REPO_ROOT / "conf" / group / f"{option}.yaml")))


def error_lines(err: ConfigError) -> list[str]:
    return [line.strip()[2:] for line in str(err).splitlines() if line.strip().startswith("- ")]


def check_gpu_layout_refused(layout: str, err: ConfigError) -> None:
    ranks, gpu_errors = GPU_LAYOUTS_ON_CPU[layout]
    lines = error_lines(err)
    for expected in gpu_errors:
        assert any(line.startswith(expected) for line in lines), (expected, lines)
    others = [line for line in lines if not any(line.startswith(e) for e in gpu_errors)]
    split = re.compile(rf"(\w+)\.batch_size=\d+ must be a multiple of \1\.micro_batch \(\d+\) x "
                       rf"cluster\.trainer\.ranks \({ranks}, the ZeRO-3 world size of cluster={layout}\)")
    assert {match.group(1) for match in map(split.match, others) if match} == BATCH_STAGES, others
    assert len(others) == len(BATCH_STAGES), others


def test_the_expected_failures_are_options():
    assert set(GPU_LAYOUTS_ON_CPU) <= set(GROUPS["cluster"])
    assert all(option in GROUPS[group] for group, option in COMPANIONS)


@pytest.mark.parametrize("group, option", [(g, o) for g, options in GROUPS.items() for o in options])
def test_every_option_of_every_group_composes(group, option):
    """Each option on its own (device=gpu with a GPU layout and model) validates, except exactly the
    GPU layouts on the CPU default and options that leave a value to the command line."""
    run = lambda: load_config(compose([f"{group}={option}", *COMPANIONS.get((group, option), [])]))
    required = required_values(group, option)
    if group == "cluster" and option in GPU_LAYOUTS_ON_CPU:
        with pytest.raises(ConfigError) as err:
            run()
        check_gpu_layout_refused(option, err.value)
    elif required:
        with pytest.raises(ConfigError, match=re.escape(f"missing required value(s): {', '.join(required)} ")):
            run()
    else:
        assert isinstance(run(), RunConfig)


def test_paper_hyperparameters_in_the_real_model_configs():
    run = load_config(compose(["model=llama3_8b"]))
    assert run.model.path == "meta-llama/Llama-3.1-8B-Instruct"
    assert (run.online.speeches_per_round, run.online.samples_per_speech, run.online.batch_size) == (6400, 8, 64)
    assert run.online.lr == pytest.approx(5e-7) and run.online.beta == pytest.approx(0.1)
    assert run.online.rounds * run.online.speeches_per_round // run.online.batch_size == 1600
    assert (run.reward_training.epochs, run.reward_training.batch_size) == (2, 128)
    assert run.reward_training.lr == pytest.approx(9e-6)
    assert load_config(compose(["model=llama3_3b"])).model.path == "meta-llama/Llama-3.2-3B-Instruct"


@pytest.mark.parametrize("overrides, message", [
    (["online.batch_size=10"], "online.batch_size=10 must be a multiple"),
    (["online.samples_per_speech=1"], "need at least 2"),
    (["stage=online_dpo", "model.path=/x"], "needs reward.path"),
    (["reward=remote", "reward.url=null"], "needs reward.url"),
    (["model.tiny.head_dim=16"], "head_dim=16"),
    (["stage=nonsense"], "stage='nonsense'"),
    (["cluster.trainer.gpus_per_rank=1"], "asks for GPUs but device=cpu"),
])
def test_mistakes_are_caught_with_what_to_change(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config(compose(overrides))


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match="online.rounds"):
        load_config(compose(["online.rounds=three"]))


def test_every_yaml_field_is_commented():
    """Each leaf key in conf/ is explained: an inline comment, a comment right above, or it sits in a
    run of keys (or a section) that such a comment opens."""
    for path in Path(REPO_ROOT / "conf").rglob("*.yaml"):
        covered_at: dict[int, bool] = {}  # indent -> is the current run/section at this indent covered
        previous = ""
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            stripped = line.strip()
            indent = len(line) - len(line.lstrip())
            if not stripped:
                covered_at, previous = {}, ""
                continue
            if stripped.startswith("#") or stripped.startswith("- ") or ":" not in stripped:
                previous = stripped
                continue
            key, _, value = stripped.partition(":")
            covered = ("#" in value or previous.startswith("#") or covered_at.get(indent, False)
                       or any(v for i, v in covered_at.items() if i < indent))
            covered_at = {i: v for i, v in covered_at.items() if i < indent}
            covered_at[indent] = covered
            if value.strip() and not value.strip().startswith("#"):
                assert covered, f"{path.relative_to(REPO_ROOT)}:{number}: {key} has no comment"
            previous = stripped
