"""Shared test set-up: every cache and temp file of Ray, vLLM, W&B and DeepSpeed goes to a
temporary directory, and one local Ray instance serves the in-process end-to-end tests."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
_TMP = tempfile.mkdtemp(prefix="rlhf-t-")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO_ROOT / ".cache" / "torch_extensions"))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The embedded default's tiny model and tokenizer, built once per session."""
    from rlhf.config import TinyModelConfig
    from rlhf.data.counsel_chat import read_questions
    from rlhf.models.tiny import build_tiny_model

    questions = read_questions(REPO_ROOT / "data/counsel-chat/counsel_chat.csv", "train")
    texts = [q.speech.text for q in questions] + [a.text for q in questions for a in q.answers]
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), texts, TinyModelConfig(), seed=0)


def compose(overrides: list[str] | None = None):
    """Compose conf/ with Hydra like `python -m rlhf.launch` does, without running anything."""
    from rlhf.config import compose as compose_config

    return compose_config(overrides or [])
