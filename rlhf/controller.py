"""The online preference rounds (iterative DPO), one explicit loop:

for each round:
    generate   K responses per sampled speech on the vLLM generators
    score      every (speech, response) with the reward source
    pair       best vs worst per speech, drop small gaps and identical texts
    train      DPO on the trainer group (ZeRO-3), reference = the starting policy
    sync       new policy weights -> every generator, no disk round-trip
    checkpoint HF checkpoint of the policy (optional), metrics line
"""

from __future__ import annotations

import logging
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import ray

from rlhf.data.records import Speech
from rlhf.data.sampler import round_indices
from rlhf.logs import progress
from rlhf.pairs.online import select_pairs, write_round_pairs
from rlhf.sync.weight_sync import WeightSyncTimeout, connect, sync_weights
from rlhf.training.batching import EncodedPair
from rlhf.workers.group import ACTOR_FAILURES

if TYPE_CHECKING:
    from rlhf.config import OnlineConfig

WEIGHT_BUCKET_BYTES = 256 << 20
SYNC_TIMEOUT_S = 600.0
MAX_RECOVERIES = 2  # per phase per round; then the error stands
log = logging.getLogger(__name__)


@dataclass
class PhaseTimer:
    seconds: dict = field(default_factory=dict)
    on_phase: object = None  # called with the phase name as it starts (progress display)

    @contextmanager
    def phase(self, name: str):
        if self.on_phase:
            self.on_phase(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 4)


def generate(generators, prompts: list[list[int]], online: OnlineConfig, max_tokens: int, seed: int):
    """Split prompts into contiguous chunks, one per engine; results come back in prompt order,
    with each sampled token's log-probability under the policy that sampled it."""
    engines = generators.actors
    size = -(-len(prompts) // len(engines))
    refs = [
        engine.generate.remote(
            prompts[i * size : (i + 1) * size],
            n=online.samples_per_speech,
            temperature=online.temperature,
            top_p=online.top_p,
            max_tokens=max_tokens,
            seed=seed + i,
            logprobs=True,
        )
        for i, engine in enumerate(engines)
    ]
    return [samples for chunk in ray.get(refs) for samples in chunk]


def k3_kl(sampled: list[list[float]], reference: list[list[float]]) -> float:
    """KL(policy || reference) per token, estimated on tokens the policy sampled (Schulman's k3:
    r - 1 - log r with r = p_ref / p_policy; unbiased, never negative)."""
    import math

    total, count = 0.0, 0
    for policy_row, reference_row in zip(sampled, reference):
        for p, q in zip(policy_row, reference_row):
            log_ratio = q - p
            total += math.exp(log_ratio) - 1.0 - log_ratio
            count += 1
    return total / count if count else 0.0


def sampled_margin(chosen: list, rejected: list) -> float:
    """Mean of log pi(chosen) - log pi(rejected) over pairs, from the log-probabilities vLLM returned
    with the sampled tokens (the policy before the round's update: its raw log-probabilities, not
    temperature-scaled). The trainer's `logp_margin` is the same sum over the same tokens."""
    if not chosen:
        return float("nan")
    return statistics.fmean(sum(c.logprobs) - sum(r.logprobs) for c, r in zip(chosen, rejected))


class OnlineDPO:
    def __init__(
        self,
        *,
        online: OnlineConfig,
        trainers,
        generators,
        scorer,
        encoder,
        speeches: list[Speech],
        tracker,
        save_policy,
        device_type: str,
        seed: int,
        pairs_dir: Path | None = None,
        recover_trainers=None,
        phase_hook=None,
        log_samples: int = 0,
        round_hook=None,
    ):
        self.online, self.trainers, self.generators, self.scorer = online, trainers, generators, scorer
        self.encoder, self.speeches, self.tracker = encoder, speeches, tracker
        self.save_policy, self.device_type, self.seed = save_policy, device_type, seed
        self.pairs_dir = pairs_dir
        self.recover_trainers = recover_trainers  # rebuilds the trainer group from the last saved state
        self.phase_hook = phase_hook
        self.log_samples = log_samples  # opt-in, redacted sample tables
        self.round_hook = round_hook  # called with (controller, record) after a round; returns extra fields

    def run_round(self, round_index: int, on_phase=None) -> dict:
        def phase_started(name: str) -> None:
            if on_phase:
                on_phase(name)
            if self.phase_hook:
                self.phase_hook(round_index + 1, name)

        online, timer = self.online, PhaseTimer(on_phase=phase_started)
        events: list[dict] = []  # actor failures recovered from in this round
        pad_id = self.encoder.tokenizer.pad_token_id
        round_start = time.perf_counter()

        with timer.phase("generate"):
            batch = [
                self.speeches[i]
                for i in round_indices(len(self.speeches), round_index, online.speeches_per_round, self.seed)
            ]
            prompts = [self.encoder.prompt(s.text) for s in batch]
            samples = self._with_recovery(
                "generate",
                events,
                self._recover_generators,
                lambda: generate(
                    self.generators,
                    prompts,
                    online,
                    self.encoder.max_response_len,
                    seed=self.seed * 1_000_003 + round_index * 1009,
                ),
            )
        responses = [[s.text for s in per_speech] for per_speech in samples]
        finished = [[s.finished for s in per_speech] for per_speech in samples]
        tokens_generated = sum(len(s.token_ids) for per_speech in samples for s in per_speech)

        with timer.phase("score"):
            flat = [(speech.text, text) for speech, texts in zip(batch, responses) for text in texts]
            flat_rewards = self._with_recovery("score", events, self._recover_scorers, lambda: self.scorer.score(flat))
            k = online.samples_per_speech
            rewards = [flat_rewards[i * k : (i + 1) * k] for i in range(len(batch))]

        if self.log_samples:
            self.tracker.log_samples(
                round_index + 1, [(s, r, w) for (s, r), w in zip(flat[: self.log_samples], flat_rewards)]
            )
        pairs, pair_stats = select_pairs(batch, responses, rewards, online.min_reward_gap, finished, online.truncated)
        flat_samples = [s for per_speech in samples for s in per_speech]
        if self.pairs_dir is not None:
            write_round_pairs(
                self.pairs_dir / f"round_{round_index + 1:03d}.jsonl", pairs, [s.finished for s in flat_samples]
            )
        # Train on exactly the tokens the policy sampled (a finished response ends with its EOS, a
        # cut one does not); their sampling log-probabilities are the policy's before the update.
        chosen = [flat_samples[p.chosen_index] for p in pairs]
        rejected = [flat_samples[p.rejected_index] for p in pairs]
        encoded = [
            EncodedPair(prompts[p.chosen_index // k], c.token_ids, r.token_ids)
            for p, c, r in zip(pairs, chosen, rejected)
        ]

        def train_and_sync() -> dict:
            """One unit for recovery: if a trainer rank dies in either phase, both are redone."""
            with timer.phase("train"):
                self.trainers.reload_states()  # device.zero.offload_states: back from host memory
                if online.refresh_reference and round_index > 0:
                    self.trainers.refresh_reference()
                with_reference, reference = self.trainers.with_reference(encoded, pad_id)
                # a few of the round's pairs, through the policy after the update: the round's margins and
                # implicit accuracy, measured rather than read off a half-updated training pass. Before the
                # update, the same pairs' log-probabilities are the ones vLLM returned while sampling them
                # (the same weights), so that side costs no forward pass.
                probe = with_reference[: online.metric_pairs]
                steps = self.trainers.plan(with_reference, online.epochs, self.seed + round_index)
                results = [self.trainers.train_step(step, pad_id) for step in steps]
                after = self.trainers.evaluate(probe, pad_id) if probe else results[-1]
                self.trainers.offload_states()  # out of the GPU before vLLM wakes for the sync and generation
            with timer.phase("weight_sync"):
                self._sync()
            sampled = [s.logprobs for s in chosen] + [s.logprobs for s in rejected]
            return {
                "dpo_loss": statistics.fmean(r["loss"] for r in results),
                "optimizer_steps": len(steps),
                "implicit_reward_accuracy": after["implicit_accuracy"],
                "implicit_reward_margin": after["implicit_margin"],
                "kl_to_reference": k3_kl(sampled, [c for c, _ in reference] + [r for _, r in reference]),
                "logp_margin_before": sampled_margin(chosen[: len(probe) or None], rejected[: len(probe) or None]),
                "logp_margin_after": after["logp_margin"],
                "metric_pairs": len(probe),
            }

        train = self._with_recovery("train", events, self._recover_trainers, train_and_sync) if encoded else {}

        checkpoint = None
        if online.save_every_round or round_index == online.rounds - 1:
            with timer.phase("checkpoint"):
                checkpoint = self.save_policy(round_index)

        margins = [p.chosen_score - p.rejected_score for p in pairs]
        return {
            "round": round_index + 1,
            "speeches": len(batch),
            "samples": len(flat),
            "reward_mean": statistics.fmean(flat_rewards),
            "reward_std": statistics.pstdev(flat_rewards),
            "chosen_minus_rejected": statistics.fmean(margins) if margins else 0.0,
            "pairs": pair_stats.pairs,
            "pairs_dropped_small_gap": pair_stats.dropped_small_gap,
            "pairs_dropped_identical": pair_stats.dropped_identical,
            "pairs_dropped_unfinished": pair_stats.dropped_unfinished,
            "truncated_samples": pair_stats.truncated,
            "truncated_share": pair_stats.truncated / max(len(flat), 1),
            "tokens_generated": tokens_generated,
            "mean_response_tokens": tokens_generated / max(len(flat), 1),
            **train,
            "seconds": timer.seconds,
            "round_seconds": round(time.perf_counter() - round_start, 4),
            "recoveries": events,
            "checkpoint": checkpoint,
        }

    # -- recovery from dead actors -------------------------------------------------------------------
    def _sync(self) -> None:
        """Weights to every engine. If the sync fails while every trainer rank is alive, an engine
        died or restarted under it: wait until all engines answer, rebuild the broadcast group
        (a restarted engine's workers are in none) and sync again. A dead trainer rank is left
        to the caller (the trainer group is rebuilt and the training redone)."""
        for attempt in range(MAX_RECOVERIES + 1):
            try:
                sync_weights(
                    self.trainers,
                    self.generators,
                    device_type=self.device_type,
                    bucket_bytes=WEIGHT_BUCKET_BYTES,
                    timeout_s=SYNC_TIMEOUT_S,
                )
                return
            except (*ACTOR_FAILURES, ray.exceptions.RayTaskError, WeightSyncTimeout) as err:
                if attempt == MAX_RECOVERIES or self.trainers.group.dead():
                    raise
                log.warning(
                    "weight_sync: failed (%s); waiting for every engine, then syncing again", type(err).__name__
                )
                self.generators.wait_alive()
                connect(self.trainers, self.generators)

    def _with_recovery(self, phase: str, events: list, recover, work):
        """Run `work`; if an actor died under it, let `recover` restore the group and run it again."""
        for attempt in range(MAX_RECOVERIES + 1):
            try:
                return work()
            except (*ACTOR_FAILURES, ray.exceptions.RayTaskError) as err:
                if attempt == MAX_RECOVERIES or not recover(err):
                    raise
                events.append({"phase": phase, "error": type(err).__name__, "attempt": attempt + 1})
                log.warning("%s: an actor died (%s); recovered, redoing the %s phase", phase, type(err).__name__, phase)

    def _recover_generators(self, err) -> bool:
        """Ray restarts a dead engine from the checkpoint it started with; give it the current policy."""
        if not self.generators.dead() and not isinstance(err, ACTOR_FAILURES):
            return False  # nobody died: a real error
        self.generators.wait_alive()
        connect(self.trainers, self.generators)  # the restarted engine's workers are in no weight-sync group
        self._sync()
        return True

    def _recover_scorers(self, err) -> bool:
        return self.scorer.recover(err)

    def _recover_inference(self, err) -> bool:
        """Generators first (a restarted engine gets the current weights), then reward actors."""
        return self._recover_generators(err) or self._recover_scorers(err)

    def guarded(self, phase: str, events: list, work):
        """`work` that uses the generators and the reward source outside a round (the evaluations
        before the first round and after the last), recovered like a round's phases."""
        return self._with_recovery(phase, events, self._recover_inference, work)

    def _recover_trainers(self, err) -> bool:
        """A lost rank breaks the whole ZeRO-3 group: rebuild it from the last completed round."""
        if self.recover_trainers is None or not self.trainers.group.dead():
            return False
        self.trainers = self.recover_trainers()
        connect(self.trainers, self.generators)  # the new rank 0 is in no weight-sync group
        return True

    def run(self, start_round: int = 0):
        """Run the remaining rounds, yielding each round's metrics record as it completes."""
        with progress(self.online.rounds, "online dpo", "round", initial=start_round) as bar:
            for round_index in range(start_round, self.online.rounds):
                record = self.run_round(round_index, on_phase=bar.set_postfix_str)
                if self.round_hook:  # e.g. the dev-split evaluation (rlhf.eval.online)
                    bar.set_postfix_str("dev eval")
                    # a generator lost during the evaluation comes back with the round's weights, as in a round
                    record.update(
                        self.guarded(
                            "dev_eval", record["recoveries"], lambda record=record: self.round_hook(self, record)
                        )
                    )
                self.tracker.log_round(record)
                bar.update(1)
                log.info(format_round(record, self.online.rounds, self.online.loss))
                yield record


def format_round(record: dict, rounds: int, loss: str = "dpo") -> str:
    s = record["seconds"]
    dropped = record["pairs_dropped_small_gap"] + record["pairs_dropped_identical"] + record["pairs_dropped_unfinished"]
    line = (
        f"round {record['round']}/{rounds}: reward {record['reward_mean']:+.3f} ± {record['reward_std']:.3f}, "
        f"pairs {record['pairs']} (dropped {dropped}), "
        f"truncated {100 * record['truncated_share']:.0f}%"
    )
    if "dpo_loss" in record:
        line += (
            f", {loss} loss {record['dpo_loss']:.3f}, implicit acc {record['implicit_reward_accuracy']:.2f}, "
            f"KL/token {record['kl_to_reference']:.4f}"
        )
    if "dev_win_rate" in record:
        line += (
            f", dev win {100 * record['dev_win_rate']:.0f}% [{100 * record['dev_win_rate_lo']:.0f}, "
            f"{100 * record['dev_win_rate_hi']:.0f}] vs start"
        )
    line += " | " + " ".join(f"{k} {v:.1f}s" for k, v in s.items())
    return line
