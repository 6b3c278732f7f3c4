"""The pairwise principle judge against a real OpenAI-compatible HTTP server on loopback (the
preference builder's scripted fake, reached with the official `openai` client): both orders per
pair, position bias cancelled, garbage answers leave a pair unscored (never scored), repairs."""

from __future__ import annotations

import json

import pytest

from rlhf.chat.openai_chat import OpenAIChat
from rlhf.eval.pairwise import KEYS, REPAIR, PairwiseJudge, both_orders, load_prompt, parse, summarise
from tests.test_prefs_support import FakeOpenAI, completion

PROMPT = load_prompt(None)
SPEECHES = [f"Speech {i}: I keep worrying about my exams and I cannot sleep at night." for i in range(6)]
GOOD = [f"It sounds exhausting to carry that worry ({i}). What feels hardest at night?" for i in range(6)]
BAD = [f"Just stop worrying ({i})." for i in range(6)]


def is_pairwise(body: dict) -> bool:
    return body["messages"][0]["content"] == PROMPT.text


def verdicts(winner: str) -> str:
    return json.dumps({k: winner for k in KEYS})


def fair(body, number):
    """Prefers the response that asks a question, wherever it is shown."""
    data = json.loads(body["messages"][1]["content"])
    a, b = "?" in data["response_a"], "?" in data["response_b"]
    return 200, completion(verdicts("A" if a and not b else "B" if b and not a else "tie")), {}


def judge_for(server, attempts: int = 2) -> PairwiseJudge:
    chat = OpenAIChat("eval.judge", server.url, "judge", None, timeout_s=10, max_retries=1, concurrency=4)
    return PairwiseJudge(chat, PROMPT, max_attempts=attempts, temperature=0.0, max_tokens=160, json_mode=False)


def test_both_orders_are_judged_and_a_fair_judge_ranks_the_better_answer():
    with FakeOpenAI(fair) as server:
        pairs = both_orders(judge_for(server), SPEECHES, GOOD, BAD)
        assert server.count() == 2 * len(SPEECHES)
        shown = [json.loads(b["messages"][1]["content"]) for b in server.requests]
        reverse = summarise(both_orders(judge_for(server), SPEECHES, BAD, GOOD), samples=200)
    # every pair was shown with the policy as A and as B; texts only as JSON string values
    assert sum(s["response_a"] in GOOD for s in shown) == sum(s["response_b"] in GOOD for s in shown) == len(SPEECHES)
    assert all(is_pairwise(b) for b in server.requests)
    result = summarise(pairs, samples=200)
    assert result["win_rate"]["mean"] == 1.0 and result["wins"] == 6 and result["unscored"] == 0
    assert all(result["per_principle"][k]["mean"] == 1.0 for k in result["per_principle"])
    assert reverse["win_rate"]["mean"] == 0.0 and reverse["losses"] == 6


def test_a_judge_biased_to_position_a_gives_ties():
    with FakeOpenAI(lambda body, n: (200, completion(verdicts("A")), {})) as server:
        result = summarise(both_orders(judge_for(server), SPEECHES, GOOD, BAD), samples=200)
    assert result["ties"] == 6 and result["win_rate"]["mean"] == 0.5 and result["position_consistent"] == 0


def test_garbage_leaves_the_pair_unscored_never_scored():
    def script(body, number):
        data = json.loads(body["messages"][1]["content"])
        if "Speech 0" in data["client_speech"] or "Speech 1" in data["client_speech"]:
            return 200, completion("Response A is clearly better, I would say."), {}  # never valid JSON
        if "Speech 2" in data["client_speech"]:
            return 200, completion(json.dumps({**{k: "A" for k in KEYS}, "safety": "maybe"})), {}
        return fair(body, number)

    with FakeOpenAI(script) as server:
        pairs = both_orders(judge_for(server, attempts=3), SPEECHES, GOOD, BAD)
        repairs = [b for b in server.requests if len(b["messages"]) > 2]
    result = summarise(pairs, samples=200)
    assert result["unscored"] == 3 and result["win_rate"]["n"] == 3 and result["wins"] == 3
    assert result["unscored_reasons"] == {"no JSON object in the answer": 2, "verdict for safety is not A, B or tie": 1}
    for first, second in pairs[:3]:
        assert first.verdicts is None and second.verdicts is None and first.attempts == 3
    # each unusable answer was shown back with the repair note, twice per comparison (3 attempts)
    assert len(repairs) == 3 * 2 * 2
    assert repairs[0]["messages"][-1]["content"].startswith(REPAIR.split(":")[0])


def test_a_repaired_answer_counts():
    def script(body, number):
        if len(body["messages"]) == 2:
            return 200, completion("```json\n{\"empathy\": \"A\"}\n```"), {}  # incomplete first answer
        return fair(body, number)

    with FakeOpenAI(script) as server:
        pairs = both_orders(judge_for(server, attempts=2), SPEECHES[:2], GOOD[:2], BAD[:2])
    assert all(v.verdicts is not None and v.attempts == 2 for pair in pairs for v in pair)
    assert summarise(pairs, samples=100)["win_rate"]["mean"] == 1.0


@pytest.mark.parametrize("text, ok", [
    (verdicts("A"), True),
    ("Sure!\n```json\n" + json.dumps({k.upper(): " Tie " for k in KEYS}) + "\n```", True),
    (json.dumps({k: "A" for k in KEYS[:-1]}), False),  # no overall
    (json.dumps({**{k: "A" for k in KEYS}, "note": "x"}), False),
    (json.dumps({**{k: "A" for k in KEYS}, "overall": 1}), False),
    ("", False),
    ("[\"A\"]", False),
])
def test_parse_is_strict(text, ok):
    verdict, reason = parse(text)
    assert (verdict is not None) == ok and (reason == "") == ok
