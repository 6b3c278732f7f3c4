"""Evaluation inside the online rounds (the paper picks its checkpoint on a 10% dev split).

A dev split of the training speeches is held out (deterministic by seed; the round sampler never
draws it). Before round 1 the starting policy (the SFT model in the default recipe, also the DPO
reference) answers every dev speech greedily; those answers are scored once and their rewards kept in
run_dir/eval/dev_reference.json (numbers only). Every `every_rounds` rounds, and after the last,
the current policy answers the same speeches greedily on the generator group, the reward model
scores them, and the round's metrics record gets dev_* fields: win rate against the initial
policy's answers (by reward, ties half) and mean reward, each with a bootstrap interval, and the
mean answer length. The best round by the dev metric gives the run's best checkpoint."""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path

from rlhf.atomic import write_json
from rlhf.eval import reward_judge, stats
from rlhf.eval.generate import generate_on

log = logging.getLogger(__name__)


def split_dev(speeches: list, fraction: float, seed: int, cap: int | None = None) -> tuple[list, list]:
    """(train, dev): round(fraction x n) speeches drawn by seed (at most `cap`), in their original
    order; the rest, in order, stay for training."""
    count = min(round(len(speeches) * fraction), cap if cap is not None else len(speeches))
    if fraction <= 0 or count < 1:
        return list(speeches), []
    chosen = set(random.Random(seed * 7919 + 17).sample(range(len(speeches)), count))
    return ([s for i, s in enumerate(speeches) if i not in chosen], [s for i, s in enumerate(speeches) if i in chosen])


def best_round(rounds: list[dict], metric: str, safety_gate: bool = False) -> dict | None:
    """The round record with the highest dev metric (ties: higher dev reward, then the earlier round).
    With `safety_gate`, a round whose safety probes regressed against the starting policy cannot be it."""
    key = "dev_win_rate" if metric == "win_rate" else "dev_reward_mean"
    scored = [r for r in rounds if key in r and not (safety_gate and r.get("safety_regressed"))]
    if not scored:
        return None
    return max(scored, key=lambda r: (r[key], r.get("dev_reward_mean", 0.0), -r["round"]))


class DevEvaluator:
    def __init__(
        self,
        *,
        speeches: list,
        encoder,
        out_dir: Path,
        every_rounds: int,
        rounds: int,
        metric: str,
        max_tokens: int,
        seed: int,
        bootstrap: dict,
        safety=None,
    ):
        self.speeches, self.encoder = speeches, encoder
        self.path = Path(out_dir) / "dev_reference.json"
        self.every_rounds, self.rounds, self.metric = every_rounds, rounds, metric
        self.max_tokens, self.seed, self.bootstrap = max_tokens, seed, bootstrap
        self.prompts = [encoder.prompt(s.text) for s in speeches]
        self.reference: dict | None = None
        self.safety = safety  # rlhf.eval.safety.SafetyCheck: the probes, every time the dev split is answered
        self.safety_reference: dict | None = None

    def _answers(self, generators, scorer) -> tuple[list[float], list[int]]:
        responses = generate_on(
            generators.actors, self.prompts, max_tokens=self.max_tokens, temperature=0.0, seed=self.seed
        )
        rewards = reward_judge.score(scorer, [s.text for s in self.speeches], responses.texts)
        return rewards, responses.tokens

    def prepare(self, generators, scorer, resuming: bool) -> bool:
        """Score the initial policy's answers (before round 1), or load them (resume). False when
        they cannot be had (a resumed run that did not evaluate before), and the hook stays off."""
        ids = [s.id for s in self.speeches]
        if self.path.is_file():
            saved = json.loads(self.path.read_text())
            if saved.get("speech_ids") == ids:
                self.reference = saved
                self.safety_reference = saved.get("safety")
                return True
        if resuming:
            log.warning("dev evaluation: off (this run's initial-policy answers were not recorded before round 1)")
            return False
        start = time.perf_counter()
        rewards, tokens = self._answers(generators, scorer)
        self.reference = {
            "speech_ids": ids,
            "rewards": rewards,
            "tokens": tokens,
            "seconds": round(time.perf_counter() - start, 2),
        }
        if self.safety is not None:  # the starting policy on the safety probes: what later rounds are held to
            self.safety_reference = self.reference["safety"] = self._safety(generators, "start")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, self.reference)
        return True

    def _safety(self, generators, name: str) -> dict:
        answers = generate_on(
            generators.actors,
            self.safety.prompts(self.encoder),
            max_tokens=self.safety.cfg.max_tokens or self.max_tokens,
            temperature=0.0,
            seed=self.seed,
        )
        return self.safety.evaluate(name, answers.texts)

    def reference_summary(self) -> dict:
        ref = self.reference or {}
        return {
            "speeches": len(self.speeches),
            "reward": stats.mean_with_interval(ref.get("rewards", []), **self.bootstrap).as_dict(),
            "response_tokens": stats.mean_with_interval(ref.get("tokens", []), **self.bootstrap).as_dict(),
        }

    def due(self, round_number: int) -> bool:
        return (
            self.reference is not None
            and self.every_rounds > 0
            and (round_number % self.every_rounds == 0 or round_number == self.rounds)
        )

    def __call__(self, controller, record: dict) -> dict:
        """The round hook: dev_* fields for the round's metrics record (after its weight sync)."""
        if not self.due(record["round"]):
            return {}
        start = time.perf_counter()
        rewards, tokens = self._answers(controller.generators, controller.scorer)
        result = reward_judge.compare(rewards, self.reference["rewards"], **self.bootstrap)
        win, reward = result["win_rate"], result["policy_reward"]
        length = stats.mean_with_interval(tokens, **self.bootstrap)
        fields = {
            "dev_win_rate": win["mean"],
            "dev_win_rate_lo": win["lo"],
            "dev_win_rate_hi": win["hi"],
            "dev_wins": result["wins"],
            "dev_ties": result["ties"],
            "dev_losses": result["losses"],
            "dev_reward_mean": reward["mean"],
            "dev_reward_lo": reward["lo"],
            "dev_reward_hi": reward["hi"],
            "dev_response_tokens": length.mean,
            "dev_speeches": len(rewards),
        }
        if self.safety is not None and self.safety_reference is not None:
            fields.update(self.safety_fields(self._safety(controller.generators, f"round_{record['round']:03d}")))
        record.setdefault("seconds", {})["dev_eval"] = round(time.perf_counter() - start, 4)
        return fields

    def safety_fields(self, policy: dict) -> dict:
        """The round's safety numbers (rates and category names only) against the starting policy."""
        compared = self.safety.compare(policy, self.safety_reference)
        rate = policy["pass_rate"]
        return {
            "safety_pass_rate": rate["mean"],
            "safety_pass_rate_lo": rate["lo"],
            "safety_pass_rate_hi": rate["hi"],
            "safety_judged": policy["judged"],
            "safety_failed": policy["failed"],
            "safety_not_judged": policy["not_judged"],
            "safety_regressed": compared["regressed"],
            "safety_regressed_categories": compared["regressed_categories"],
            # per category: mean, 95% interval and n judged (a dict: W&B's round metrics skip it)
            "safety_categories": {c: v["pass_rate"] for c, v in policy["categories"].items()},
        }
