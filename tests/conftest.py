"""Shared test set-up: every cache and temp file of Ray, vLLM, W&B and DeepSpeed goes to a
temporary directory; the tiny model, and an SFT policy and reward model trained from it, are built
once per session for the tests that start from them."""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
_TMP = tempfile.mkdtemp(prefix="rlhf-t-")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO_ROOT / ".cache" / "torch_extensions"))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Ray and vLLM report usage statistics unless told not to; importing rlhf turns them off, and so
# does this, for anything a test starts before it imports the package.
os.environ.update({"RAY_USAGE_STATS_ENABLED": "0", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"})


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The embedded default's tiny model and tokenizer, built once per session."""
    from rlhf.config import TinyModelConfig
    from rlhf.data.counsel_chat import read_questions
    from rlhf.models.tiny import build_tiny_model

    questions = read_questions(REPO_ROOT / "data/counsel-chat/counsel_chat.csv", "train")
    texts = [q.speech.text for q in questions] + [a.text for q in questions for a in q.answers]
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), texts, TinyModelConfig(), seed=0)


# Data and round sizes of the end-to-end runs: small enough for 2 cores, large enough that the
# policy and reward model learn something (DPO moves the greedy output, the reward model ranks).
SMALL = ["data.max_sft_examples=480", "data.max_pairs=96", "reward_training.eval_pairs=16",
         "online.speeches_per_round=16", "online.samples_per_speech=4", "online.min_reward_gap=0.0",
         "online.epochs=4"]


@dataclass(frozen=True)
class TrainedModels:
    """An SFT policy and a reward model trained on the shipped data with SMALL."""

    run_dir: Path
    sft: Path
    reward_model: Path

    def online_overrides(self) -> list[str]:
        """stage=online_dpo from these models: the online rounds without training them again."""
        return ["stage=online_dpo", f"model.path={self.sft}", f"reward.path={self.reward_model}", *SMALL]


@pytest.fixture(scope="module", autouse=True)
def no_ray_after_module():
    """Ray started by a module's tests ends with the module: a later test that checks a stage starts
    no actor (or starts its own cluster) must not find this one still connected."""
    yield
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory) -> TrainedModels:
    """SFT and the reward model, trained once per session for every test that starts from them
    (the recipe's first two stages take minutes on CPU). Ray and the trainer group are torn down
    before the fixture returns: nothing of this run stays up while the tests run."""
    import ray

    from rlhf.config import load_config
    from rlhf.pipeline import Pipeline

    run_dir = tmp_path_factory.mktemp("trained")
    run = load_config(compose([f"run_dir={run_dir}", "recipe=[sft,reward]", "tracking.wandb=false", *SMALL]))
    pipe = Pipeline(run, {})
    try:
        pipe.start()
        for stage in run.stages:
            pipe.run_stage(stage)
    finally:
        pipe.shutdown()
        ray.shutdown()
    models = TrainedModels(run_dir, run_dir / "checkpoints" / "sft", run_dir / "checkpoints" / "reward_model")
    assert (models.sft / "config.json").is_file() and (models.reward_model / "config.json").is_file()
    return models


def compose(overrides: list[str] | None = None):
    """Compose conf/ with Hydra like `python -m rlhf.launch` does, without running anything."""
    from rlhf.config import compose as compose_config

    return compose_config(overrides or [])
