"""The outcome of the online rounds, measured on speeches no round trained on: the final policy
against the policy the rounds started from, with guards against reward hacking.

Held-out speeches: the dev split of the training speeches plus counsel-chat's val questions. Before
round 1 the starting policy answers them (on the generator group, which holds its weights then);
after the last round the final policy answers the same speeches. Both answer greedily unless
eval.temperature says otherwise. The starting answers are kept in run_dir/eval/outcome_start.jsonl
(local, so a resumed run compares against the same answers).

    win_rate [lo, hi]      the judge (the reward model) prefers the final answer (ties half), 95% bootstrap
    length_ratio           mean answer tokens, final / start
    distinct2_start/final  distinct token bigrams / all bigrams, over all answers (lower = more repetitive)
    truncated_share        final answers that hit the token limit (also _start)
    repetition_rate        mean share of repeated 4-grams within an answer (seq-rep-4; also _start)

A rise in reward bought with longer, cut-off or repetitive answers shows up in the guards.
"""

from __future__ import annotations

import json
from pathlib import Path
from statistics import fmean

from rlhf import atomic
from rlhf.eval import reward_judge
from rlhf.privacy import redact

GOALS = {"win_rate": 0.70, "length_ratio": (0.75, 1.25), "distinct2_drop": 0.10}
SAMPLES_SHOWN = 3


def distinct_n(token_lists: list[list[int]], n: int = 2) -> float:
    grams = [tuple(t[i : i + n]) for t in token_lists for i in range(len(t) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(tokens: list[int], n: int = 4) -> float:
    """Share of an answer's n-grams that repeat an earlier one in the same answer."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def guards(answers: list) -> dict:
    """Length, diversity, truncation and repetition of one policy's answers (generation Samples)."""
    tokens = [a.token_ids for a in answers]
    return {
        "mean_tokens": fmean([len(t) for t in tokens]),
        "distinct2": distinct_n(tokens),
        "truncated_share": fmean([float(not a.finished) for a in answers]),
        "repetition_rate": fmean([repetition_rate(t) for t in tokens]),
    }


def held_out(dev: list, val: list) -> list:
    """Dev split then val questions, each speech once."""
    seen, out = set(), []
    for speech in [*dev, *val]:
        if speech.id not in seen:
            seen.add(speech.id)
            out.append(speech)
    return out


class Outcome:
    def __init__(
        self, *, speeches: list, encoder, out_dir: Path, max_tokens: int, temperature: float, seed: int, bootstrap: dict
    ):
        self.speeches, self.encoder = speeches, encoder
        self.path = Path(out_dir) / "outcome_start.jsonl"
        self.max_tokens, self.temperature, self.seed, self.bootstrap = max_tokens, temperature, seed, bootstrap
        self.prompts = [encoder.prompt(s.text) for s in speeches]
        self.start: list | None = None

    def _answer(self, generators) -> list:
        import ray

        actors = generators.actors
        size = -(-len(self.prompts) // len(actors))
        refs = [
            a.generate.remote(
                self.prompts[i * size : (i + 1) * size],
                n=1,
                temperature=self.temperature,
                top_p=1.0,
                max_tokens=self.max_tokens,
                seed=self.seed + i,
            )
            for i, a in enumerate(actors)
        ]
        return [per_prompt[0] for part in ray.get(refs) for per_prompt in part]

    def prepare(self, generators, resuming: bool) -> bool:
        """The starting policy's answers (before round 1), or the ones recorded then (resume)."""
        from rlhf.generation.vllm_generator import Sample

        ids = [s.id for s in self.speeches]
        if self.path.is_file():
            rows = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
            if [r["speech_id"] for r in rows] == ids:
                self.start = [Sample(r["text"], r["token_ids"], r["finished"]) for r in rows]
                return True
        if resuming:
            return False
        self.start = self._answer(generators)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_jsonl(
            self.path,
            (
                {"speech_id": i, "text": a.text, "token_ids": a.token_ids, "finished": a.finished}
                for i, a in zip(ids, self.start)
            ),
        )
        return True

    def finish(self, generators, scorer, last_round: dict | None) -> tuple[dict, list[dict]]:
        """(the outcome's numbers, three speeches' answers before and after for the local report).
        The generators hold the final policy's weights."""
        final = self._answer(generators)
        texts = [s.text for s in self.speeches]
        start_rewards = reward_judge.score(scorer, texts, [a.text for a in self.start])
        final_rewards = reward_judge.score(scorer, texts, [a.text for a in final])
        judged = reward_judge.compare(final_rewards, start_rewards, **self.bootstrap)
        before, after = guards(self.start), guards(final)
        win = judged["win_rate"]
        out = {
            "speeches": len(self.speeches),
            "judge": "reward_model",
            "decoding": "greedy" if self.temperature == 0 else f"temperature {self.temperature}",
            "max_tokens": self.max_tokens,
            "win_rate": win["mean"],
            "win_rate_lo": win["lo"],
            "win_rate_hi": win["hi"],
            "wins": judged["wins"],
            "ties": judged["ties"],
            "losses": judged["losses"],
            "reward_start": judged["reference_reward"]["mean"],
            "reward_final": judged["policy_reward"]["mean"],
            "length_ratio": after["mean_tokens"] / before["mean_tokens"] if before["mean_tokens"] else float("nan"),
            "mean_tokens_start": before["mean_tokens"],
            "mean_tokens_final": after["mean_tokens"],
            "distinct2_start": before["distinct2"],
            "distinct2_final": after["distinct2"],
            "truncated_share": after["truncated_share"],
            "truncated_share_start": before["truncated_share"],
            "repetition_rate": after["repetition_rate"],
            "repetition_rate_start": before["repetition_rate"],
            "kl_to_reference_last_round": (last_round or {}).get("kl_to_reference"),
        }
        out["goals"] = check_goals(out)
        samples = [
            {
                "speech": redact(self.speeches[i].text),
                "start": redact(self.start[i].text),
                "final": redact(final[i].text),
                "reward_start": start_rewards[i],
                "reward_final": final_rewards[i],
            }
            for i in range(min(SAMPLES_SHOWN, len(self.speeches)))
        ]
        return out, samples


def check_goals(out: dict) -> dict:
    """Which of the run's goals were met, with the numbers that decide it."""
    lo, hi = GOALS["length_ratio"]
    drop = (1 - out["distinct2_final"] / out["distinct2_start"]) if out["distinct2_start"] else float("nan")
    goals = {
        "win_rate_at_least": GOALS["win_rate"],
        "win_rate_met": out["win_rate"] >= GOALS["win_rate"],
        "length_ratio_within": [lo, hi],
        "length_ratio_met": lo <= out["length_ratio"] <= hi,
        "distinct2_drop": drop,
        "distinct2_drop_at_most": GOALS["distinct2_drop"],
        "distinct2_met": drop <= GOALS["distinct2_drop"],
    }
    goals["all_met"] = goals["win_rate_met"] and goals["length_ratio_met"] and goals["distinct2_met"]
    return goals
