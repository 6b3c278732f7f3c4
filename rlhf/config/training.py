"""Config sections for training data, the training stages, the weight sync and the reward source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional  # noqa: UP035 - OmegaConf reads these annotations at runtime

from rlhf.choices import RewardPairs, RoundSpeeches, Schedule, SyncMethod, Truncated
from rlhf.config.fields import opt


# -- data and training --------------------------------------------------------------------------------
@dataclass
class DataConfig:
    path: str = opt(
        "data/counsel-chat/counsel_chat.csv",
        "counsel-chat CSV (questions, therapist answers, "
        "upvotes); relative: from the current directory, else "
        "the shipped copy",
    )
    preference_path: Optional[str] = opt(
        None,
        "Parquet in the PsychoCounsel-Preference schema (question, chosen, "
        "rejected, ...) for the reward and offline_dpo stages instead of "
        "counsel-chat upvote pairs",
    )
    max_sft_examples: Optional[int] = opt(None, "cap on SFT examples, for quick experiments (null = all)")
    max_pairs: Optional[int] = opt(None, "cap on reward / offline DPO training pairs (null = all)")


@dataclass
class OptimConfig:
    """One training stage's schedule. batch_size counts examples (or pairs) per optimizer step across
    all trainer ranks; micro_batch is per rank per forward pass. The learning rates here suit
    pretrained weights; the tiny and small presets (built from scratch) set their own."""

    epochs: int = opt(1, "passes over the stage's data")
    lr: float = opt(1e-5, "AdamW learning rate")
    weight_decay: float = opt(0.0, "AdamW weight decay")
    grad_clip: float = opt(1.0, "gradient-norm clip")
    batch_size: int = opt(16, "examples (or pairs) per optimizer step, all ranks")
    micro_batch: int = opt(8, "examples (or pairs) per rank per forward pass")
    warmup_steps: int = opt(0, "optimizer steps of linear warm-up from 0 to lr")
    schedule: Schedule = opt(
        Schedule.constant, "after warm-up: constant | cosine (decays to 0 by the stage's last step)"
    )


@dataclass
class RewardTrainingConfig(OptimConfig):
    """Bradley-Terry reward model, initialised from the policy with a fresh value head."""

    lr: float = opt(9e-6, "AdamW learning rate (paper: 9e-6)")
    normalize: bool = opt(
        True,
        "store mean/std of training rewards in the checkpoint (OpenRLHF's normalize_reward), so scores are z-scores",
    )
    eval_pairs: Optional[int] = opt(None, "held-out pairs scored for accuracy after training (null = all)")
    pairs: RewardPairs = opt(
        RewardPairs.upvotes,
        "counsel-chat pairs to train on (without data.preference_path): upvotes (the more upvoted of two "
        "therapists' answers is chosen) | demonstrations (the most upvoted therapist's answer is chosen over "
        "the policy's own sampled answer to the same question; rlhf/pairs/demonstrations.py)",
    )
    whole_answers: bool = opt(
        False,
        "train and test only on pairs whose answers both fit model.max_response_len "
        "(a cut answer has no EOS; a reward model trained on them can learn to prefer "
        "answers cut at the limit)",
    )


@dataclass
class DPOConfig(OptimConfig):
    """A preference-optimisation stage on (chosen, rejected) pairs with a frozen reference: the loss
    (rlhf/training/losses.py) and its temperature."""

    lr: float = opt(5e-7, "AdamW learning rate (paper: 5e-7)")
    micro_batch: int = opt(4, "pairs per rank per forward pass")
    loss: str = opt(
        "dpo",
        "the preference loss (rlhf/training/losses.py): dpo | ipo (IPO, on summed response "
        "log-probabilities as OpenRLHF)",
    )
    beta: float = opt(0.1, "DPO temperature (paper: 0.1); for ipo, tau: the target log-ratio margin is 1/(2 tau)")


@dataclass
class OnlineConfig(DPOConfig):
    """Online iterative DPO: each round samples speeches, generates K responses each with vLLM, scores
    them, pairs best vs worst, trains, and pushes the new weights into the generators."""

    rounds: int = opt(3, "online rounds")
    speeches_per_round: int = opt(48, "M: speeches sampled per round")
    speech_source: RoundSpeeches = opt(
        RoundSpeeches.counsel_chat,
        "where the rounds' speeches come from: counsel_chat (data.path's training questions) | "
        "preference_data (the distinct questions of data.preference_path) | prefs (prefs.speeches, cleaned "
        "as stage=build_prefs cleans it); a round larger than the source repeats speeches (a warning says so)",
    )
    samples_per_speech: int = opt(4, "K: responses per speech (paper: 8)")
    temperature: float = opt(1.0, "sampling temperature of the rounds")
    top_p: float = opt(1.0, "nucleus sampling of the rounds")
    min_reward_gap: float = opt(0.1, "drop pairs whose chosen-minus-rejected reward is below this")
    truncated: Truncated = opt(
        Truncated.reject_only,
        "a response cut at max_response_len: reject_only (never "
        "chosen, rejected when its reward is lowest) | drop | keep "
        "(ranked like any other)",
    )
    metric_pairs: int = opt(
        8,
        "pairs whose margins and implicit accuracy are measured after the update, by a no-grad forward; their "
        "margin before it comes from vLLM's sampling log-probabilities (0 = read them off the last training step)",
    )
    epochs: int = opt(2, "passes over each round's pairs")
    refresh_reference: bool = opt(False, "the reference becomes the current policy at each round's start")
    save_every_round: bool = opt(True, "write an HF checkpoint of the policy after each round")
    save_state_every: int = opt(
        1,
        "rounds between saves of the full ZeRO-3 training state (weights and AdamW state, ~16 B per "
        "parameter: ~128 GB for 8B); the last round is always saved. A resumed run restarts after the latest "
        "saved round; a trainer rank lost when the previous round was not saved stops the run (rerun to resume)",
    )


@dataclass
class SyncConfig:
    method: SyncMethod = opt(
        SyncMethod.auto,
        "how weights reach vLLM: auto (collective on GPUs, cuda_ipc when "
        "colocated, object_store on CPU) | object_store | collective | "
        "cuda_ipc",
    )


@dataclass
class RewardSourceConfig:
    """Where the online rounds' rewards come from (rlhf.scoring.sources)."""

    source: str = opt(
        "local",
        "local (reward-model actors) | remote (a /get_reward server) | python (a function; "
        "rlhf/scoring/sources.py has the registry)",
    )
    path: Optional[str] = opt(
        None, "local: reward-model checkpoint (ours or OpenRLHF's); null = the one this run trains"
    )
    url: Optional[str] = opt(None, "remote: the server's /get_reward URL")
    function: Optional[str] = opt(
        None, "python: 'package.module:function' taking [(speech, response), ...] and returning one float per item"
    )
    batch_size: int = opt(32, "sequences per forward pass (local) or texts per request (remote)")
    timeout_s: float = opt(60.0, "remote: seconds per request")
    retries: int = opt(3, "remote: retries on timeouts, 429 and 5xx, with exponential backoff")
    api_key_env: Optional[str] = opt(
        None, "remote: NAME of the environment variable holding a bearer token (never the token)"
    )
