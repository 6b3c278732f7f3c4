"""The local chat backend's prompt fitting, with the tiny model's real tokenizer and chat template
(the generator actor itself is exercised by tests/test_prefs_launch.py)."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from rlhf.chat.api import ChatRequest
from rlhf.chat.local import LocalChat, model_context
from rlhf.prefs.judge import JudgePrompt, request


def no_actor():
    raise AssertionError("no generator actor may start for requests that cannot fit")


@pytest.fixture(scope="module")
def chat(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return LocalChat(str(tiny_model_dir), no_actor, tokenizer, model_context(str(tiny_model_dir), 4096), batch_size=8)


def test_context_comes_from_the_model_capped_by_config(tiny_model_dir):
    assert model_context(str(tiny_model_dir), 4096) == 512 and model_context(str(tiny_model_dir), 300) == 300


def test_long_speech_is_cut_for_responders_but_never_for_the_judge(chat):
    speech = "I feel lost and alone since my divorce and I cannot stop crying at night. " * 40
    ask = ChatRequest(({"role": "system", "content": "You are a therapist."}, {"role": "user", "content": speech}),
                      1.0, 1.0, 64)
    ids = chat.fit(ask, truncate=True)
    assert ids is not None and len(ids) <= chat.context - 64
    assert chat.tokenizer.decode(ids).count("divorce") < 40  # the end of the speech was cut
    assert chat.fit(ask, truncate=False) is None
    judge_request = request(JudgePrompt.load(None), speech[:300], "That sounds hard.", temperature=0.0,
                            max_tokens=96, json_mode=False)
    # the judge prompt alone is longer than the tiny model's 512 tokens: a permanent error, no actor started
    ((index, result),) = list(chat.complete_many([judge_request]))
    assert index == 0 and result.text is None and result.permanent and "longer than the model's context" in result.error
    assert chat.stats.failed == 1
