"""The model a run starts from, and its tokenizer: a model directory or hub name (model.path), a
packaged GGUF converted once (model.gguf), or the tiny model built from the shipped text. Mistakes
(a missing directory, no chat template) are refused before any actor starts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rlhf import atomic
from rlhf.data.errors import DataError
from rlhf.paths import resolve_path, work_dir

if TYPE_CHECKING:
    from rlhf.config import RunConfig


def base_model(run: RunConfig, checkpoints: Path, questions: list) -> str:
    """The starting model's directory or hub name; the tiny model is built into
    checkpoints/base from `questions` (their speeches and answers train its tokenizer) once."""
    model = run.model
    if model.path is not None:
        path = resolve_path(model.path)
        if path.exists():
            if not (path / "config.json").exists():
                raise DataError(
                    str(path),
                    "not a model directory (no config.json)",
                    hint="model.path takes a Hugging Face model directory or hub name",
                )
            return str(path)
        if model.path.startswith(("/", ".", "~")) or model.path.count("/") != 1:
            raise DataError(
                model.path,
                "model directory not found",
                hint="check model.path (a local directory, or a hub name like org/model)",
            )
        return model.path  # a hub name
    if model.gguf is not None:  # a pretrained model shipped in a package: converted once, then cached
        from rlhf.models.gguf import convert

        return str(convert(model.gguf, work_dir(model.cache_dir) / model.name))
    from rlhf.models.tiny import build_tiny_model

    base = checkpoints / "base"
    if not (base / "config.json").exists():
        texts = [q.speech.text for q in questions] + [a.text for q in questions for a in q.answers]
        with atomic.directory(base) as tmp:
            build_tiny_model(tmp, texts, model.tiny, run.seed)
    return str(base)


def load_tokenizer(model_dir: str, run: RunConfig):
    """(tokenizer, Encoder) of a model: its chat template turns speeches into prompts within the
    run's token budgets. A tokenizer without a chat template is refused."""
    from transformers import AutoTokenizer

    from rlhf.training.batching import Encoder

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=run.model.trust_remote_code)
    except (OSError, ValueError) as err:
        raise DataError(
            model_dir,
            f"cannot load its tokenizer ({str(err).splitlines()[0][:200]})",
            hint="a hub name needs the model in the local cache or network access",
        ) from None
    if not tokenizer.chat_template:
        raise DataError(
            model_dir,
            "the tokenizer has no chat template",
            hint="use an instruct/chat model or add chat_template to tokenizer_config.json",
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, Encoder(tokenizer, run.system_prompt, run.model.max_prompt_len, run.model.max_response_len)
