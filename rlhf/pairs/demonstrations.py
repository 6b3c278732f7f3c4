"""Reward-model pairs from demonstrations: for each counsel-chat question, the most upvoted
therapist's answer (chosen) against the policy's own answer to it (rejected), as in learning from
demonstrations (the human answer is taken to be the better one).

Where upvote pairs carry a weak signal (a reward model trained on counsel-chat's upvote pairs scores
close to chance on held-out ones), this one is strong and says what it measures: how far an answer
has moved from the base model's towards how therapists answer. The policy's answers are sampled once,
on a vLLM generator actor, and kept in the run directory, so a resumed stage trains on the same pairs.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

from rlhf.atomic import write_jsonl
from rlhf.data.records import PreferencePair

log = logging.getLogger(__name__)


def best_answer(question) -> str:
    return max(question.answers, key=lambda a: a.upvotes).text


def policy_answers(ctx, questions: list, path: Path) -> list[str]:
    """The policy's sampled answer to each question (the rounds' temperature and token budget), from
    `path` when an earlier run of this stage stored them for the same questions."""
    ids = [q.speech.id for q in questions]
    if path.is_file():
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if [r["speech_id"] for r in rows] == ids:
            return [r["text"] for r in rows]
    from rlhf.eval.generate import LocalModel, generate_on

    run = ctx.run
    log.info("demonstration pairs: the policy answers %d questions", len(questions))
    model = LocalModel(run, ctx.policy_dir, run.model.max_prompt_len + run.model.max_response_len + 8)
    try:
        answers = generate_on(
            model.group.actors,
            [ctx.encoder.prompt(q.speech.text) for q in questions],
            max_tokens=run.model.max_response_len,
            temperature=run.online.temperature,
            seed=run.seed,
        ).texts
    finally:
        model.shutdown()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(path, [{"speech_id": i, "text": t} for i, t in zip(ids, answers)])
    return answers


def demonstration_pairs(ctx, questions: list, limit: int | None, name: str) -> list[PreferencePair]:
    """Pairs for `questions` (a seeded sample of `limit` of them): therapist's best answer chosen,
    the policy's answer rejected; a question whose answers are the same text gives no pair."""
    chosen_questions = [q for q in questions if q.answers]
    if limit is not None and limit < len(chosen_questions):
        chosen_questions = random.Random(ctx.run.seed).sample(chosen_questions, limit)
    answers = policy_answers(ctx, chosen_questions, ctx.run_dir / "reward_data" / f"policy_answers_{name}.jsonl")
    return [
        PreferencePair(q.speech, best_answer(q), a)
        for q, a in zip(chosen_questions, answers)
        if a.strip() and a.strip() != best_answer(q).strip()
    ]
