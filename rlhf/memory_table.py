"""Expected GPU memory per layout and model, from the model's size, ZeRO-3 sharding and the vLLM
KV cache, written as a Markdown table:

    python -m rlhf.memory_table                 # rewrites docs/gpu-memory.md
    python -m rlhf.memory_table --check         # exit 1 if docs/gpu-memory.md is out of date

Layouts come from conf/cluster (those with GPUs), models from conf/model; a model's architecture is
read from its local config.json when model.path is a directory, else from the published sizes of
the hub checkpoints below. Estimates, not measurements: see ASSUMPTIONS.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from rlhf.layout import reward_actors
from rlhf.paths import CONF_DIR, checkout_root

OUTPUT = (checkout_root() or Path.cwd()) / "docs" / "gpu-memory.md"
GIB = 1 << 30
BF16 = 2

# Sizes from each checkpoint's config.json on the Hugging Face hub.
KNOWN_ARCHITECTURES = {
    "meta-llama/Llama-3.2-3B-Instruct": dict(
        vocab_size=128256,
        hidden_size=3072,
        intermediate_size=8192,
        num_layers=28,
        num_heads=24,
        num_kv_heads=8,
        head_dim=128,
        tie_embeddings=True,
    ),
    "meta-llama/Llama-3.1-8B-Instruct": dict(
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_layers=32,
        num_heads=32,
        num_kv_heads=8,
        head_dim=128,
        tie_embeddings=False,
    ),
}

ASSUMPTIONS = """\
- bf16 weights everywhere (device=gpu); GiB = 2^30 bytes; one GPU has {gpu_gib} GiB.
- Trainer rank, ZeRO-3 over the layout's trainer ranks: bf16 parameters (2 B) + bf16 gradients (2 B)
  + fp32 master weights (4 B) + AdamW moments (8 B) = 16 B per parameter, divided by the ranks; the
  frozen DPO reference model adds 2 B per parameter, also sharded. The optimizer step also turns
  the rank's gradient shard into fp32 (4 B per parameter / ranks; DeepSpeed's own estimator counts
  18 B per parameter because of it), but only after backward has freed the activations, and in
  every row here that copy is smaller than the working memory below.
- Trainer working memory: the largest module's parameters gathered whole (DeepSpeed's estimator
  allows 4 B per parameter of it: the vocab x hidden embedding or LM head), one weight-sync bucket
  ({bucket_mib} MiB), and the activations of the largest micro-batch of any stage. A Llama decoder
  layer keeps 12 x hidden + 8 x heads x head_dim + 8 x intermediate bytes per token for backward
  (each model's figure is in its line above):
  both RMSNorms' fp32 inputs (4 B) and bf16 outputs (2 B); q after RoPE, k and v repeated to every
  query head (HF repeats them when a padding mask is passed) and the attention output (2 B each);
  the SwiGLU gate output, SiLU output, up output and their product (2 B x intermediate each). With
  model.gradient_checkpointing only each layer's bf16 input (2 x hidden) is kept, plus one layer's
  full activations while it is recomputed. Plus the final RMSNorm (6 x hidden) and, for the response
  tokens only, bf16 logits, their fp32 copy and fp32 log-softmax (10 B x vocab). DPO and reward pairs
  count as two sequences each.
- vLLM worker: takes gpu_memory_utilization x the GPU when awake: its share of the weights
  (tensor parallel), about 1 GiB of runtime overhead (CUDA graphs included), the rest is KV cache. Asleep
  (colocated layouts, while trainers step) it keeps no weights or KV cache on the GPU.
- Reward actor: the reward model's bf16 weights plus one scoring batch's transient activations.
- Colocated layouts add up what shares one GPU: the training phase (trainer + reward actor, vLLM
  asleep) and the generation phase (what the trainer keeps + awake vLLM + reward actor); the larger
  is shown. With device.zero.offload_states (on for colocated layouts) a trainer keeps only its bf16
  parameter shards (2 B per parameter / ranks) and the reference while vLLM generates: the AdamW
  moments, fp32 master weights and gradients wait in host memory. With device.zero.offload_optimizer
  the master weights and moments never leave host memory (4 B per parameter / ranks on the GPU).
- Sequence length = model.max_prompt_len + model.max_response_len; logits cover model.max_response_len."""


@dataclass
class Architecture:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    tie_embeddings: bool

    def layer_params(self) -> int:
        h, kv = self.hidden_size, self.num_kv_heads * self.head_dim
        attention = h * self.num_heads * self.head_dim * 2 + h * kv * 2
        return attention + 3 * h * self.intermediate_size + 2 * h

    def params(self) -> int:
        embeddings = self.vocab_size * self.hidden_size * (1 if self.tie_embeddings else 2)
        return embeddings + self.num_layers * self.layer_params() + self.hidden_size

    def kv_bytes_per_token(self, tensor_parallel: int = 1) -> float:
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * BF16 / tensor_parallel

    def attention_width(self) -> int:
        return self.num_heads * self.head_dim

    def largest_module_params(self) -> int:
        """Parameters of the module that owns the most directly: ZeRO-3 gathers module by module,
        so this is the largest piece gathered whole (the embedding or LM head for Llama 3)."""
        h = self.hidden_size
        return max(self.vocab_size * h, h * self.intermediate_size, h * self.attention_width())

    def layer_activation_bytes(self) -> int:
        """Bytes one Llama decoder layer keeps for backward per token (bf16 2 B, fp32 4 B); h hidden,
        a = heads x head_dim, i intermediate:
            input RMSNorm             fp32 input (kept by pow and mul)                     4h
                                      bf16 output (weight's grad; q/k/v projections' input) 2h
            attention                 q after RoPE                                         2a
                                      k, v repeated to every query head (HF's SDPA path
                                      repeats them when a padding mask is passed)          2a + 2a
                                      output (SDPA's and o_proj's input)                   2a
            post-attention RMSNorm    fp32 input + bf16 output (gate/up input)             4h + 2h
            SwiGLU MLP                gate output (SiLU's input)                           2i
                                      SiLU output, up output (the product's inputs)        2i + 2i
                                      product (down_proj's input)                          2i
        = 12h + 8a + 8i. Left out as small: SDPA's fp32 log-sum-exp (4 B per head), RoPE's cos/sin
        and the boolean attention mask every layer shares."""
        return 12 * self.hidden_size + 8 * self.attention_width() + 8 * self.intermediate_size


def architecture(model) -> Architecture:
    """From a local config.json, the known hub checkpoints, or the tiny model's settings."""
    if model.path is None:
        t = model.tiny
        return Architecture(
            t.vocab_size, t.hidden_size, t.intermediate_size, t.num_layers, t.num_heads, t.num_heads, t.head_dim, False
        )
    config = Path(model.path) / "config.json"
    if config.exists():
        c = json.loads(config.read_text())
        heads = c["num_attention_heads"]
        return Architecture(
            c["vocab_size"],
            c["hidden_size"],
            c["intermediate_size"],
            c["num_hidden_layers"],
            heads,
            c.get("num_key_value_heads", heads),
            c.get("head_dim") or c["hidden_size"] // heads,
            c.get("tie_word_embeddings", False),
        )
    if model.path in KNOWN_ARCHITECTURES:
        return Architecture(**KNOWN_ARCHITECTURES[model.path])
    raise ValueError(
        f"unknown architecture for model.path={model.path!r}: point it at a local directory with "
        "config.json or add the checkpoint to KNOWN_ARCHITECTURES"
    )


@dataclass
class Estimate:
    role: str
    gpus_each: float
    resident_gib: float  # weights / sharded states
    working_gib: float  # activations, buffers, KV cache
    note: str = ""

    @property
    def total_gib(self) -> float:
        return self.resident_gib + self.working_gib


def activation_bytes(arch: Architecture, sequences: int, seq_len: int, logit_tokens: int, checkpointing: bool) -> float:
    """Activations kept at the peak of one micro-batch's forward and backward. With checkpointing,
    each layer keeps only its bf16 input, and one layer's activations exist again while recomputed."""
    h = arch.hidden_size
    if checkpointing:
        layers = arch.num_layers * 2 * h + arch.layer_activation_bytes()
    else:
        layers = arch.num_layers * arch.layer_activation_bytes()
    final_norm = 6 * h  # fp32 input + bf16 output
    logits = 10 * arch.vocab_size  # bf16 logits, their fp32 copy, fp32 log-softmax
    return sequences * (seq_len * (layers + final_norm) + logit_tokens * logits)


def policy_state_bytes(arch: Architecture, ranks: int, optimizer_on_host: bool = False) -> float:
    """bf16 parameters and gradients, fp32 master weights and AdamW moments: 16 B per parameter, sharded.
    With device.zero.offload_optimizer the master weights and moments (12 B) live in host memory."""
    return (4 if optimizer_on_host else 16) * arch.params() / ranks


def gathered_parameter_bytes(arch: Architecture) -> float:
    """ZeRO-3's gathered parameters, as DeepSpeed's estimator counts them: 4 B per parameter of the
    largest module (the bf16 copy in use, and as much again prefetched or not yet released)."""
    return 4 * arch.largest_module_params()


def trainer_estimate(run, arch: Architecture, bucket_bytes: int) -> tuple[Estimate, float]:
    """(estimate while stepping, GiB the rank keeps on its GPU while vLLM generates)."""
    params, ranks = arch.params(), run.cluster.trainer.ranks
    states = policy_state_bytes(arch, ranks, run.device.zero.offload_optimizer)
    reference = BF16 * params / ranks if "online_dpo" in run.stages or run.stage == "offline_dpo" else 0.0
    m = run.model
    seq_len, checkpointing = m.max_prompt_len + m.max_response_len, m.gradient_checkpointing
    stages = {
        "sft": activation_bytes(arch, run.sft.micro_batch, seq_len, m.max_response_len, checkpointing),
        "reward": activation_bytes(arch, 2 * run.reward_training.micro_batch, seq_len, 0, checkpointing),
        "dpo": activation_bytes(arch, 2 * run.online.micro_batch, seq_len, m.max_response_len, checkpointing),
    }
    stage = max(stages, key=stages.get)
    buffers = gathered_parameter_bytes(arch) + bucket_bytes
    resident = (states + reference) / GIB
    note = f"ZeRO-3 over {ranks} ranks; peak activations in the {stage} stage" + (
        ", gradient checkpointing" if checkpointing else ", no gradient checkpointing"
    )
    if run.device.zero.offload_optimizer:
        note += "; AdamW state in host memory"
    # device.zero.offload_states: while vLLM generates only the bf16 parameter shards (and the reference) stay
    generating = (BF16 * params / ranks + reference) / GIB if run.offload_trainer_states else resident
    if run.offload_trainer_states:
        note += f"; while vLLM generates, states offloaded: {generating:.1f} GiB stay"
    return Estimate(
        "trainer rank", run.cluster.trainer.gpus_per_rank, resident, (stages[stage] + buffers) / GIB, note
    ), generating


def vllm_estimate(run, arch: Architecture, gpu_gib: float) -> tuple[Estimate, float]:
    """(estimate when awake, KV-cache tokens per engine)."""
    g = run.cluster.generator
    weights = arch.params() * BF16 / g.tensor_parallel / GIB
    budget = g.gpu_memory_utilization * gpu_gib
    kv = max(budget - weights - 1.0, 0.0)
    tokens = kv * GIB / arch.kv_bytes_per_token(g.tensor_parallel)
    seq_len = run.model.max_prompt_len + run.model.max_response_len
    note = (
        f"TP {g.tensor_parallel}, gpu_memory_utilization {g.gpu_memory_utilization}: KV cache for "
        f"{tokens / 1000:,.0f}k tokens (~{tokens / seq_len:,.0f} sequences of {seq_len})"
    )
    if kv <= 0:
        note = f"TP {g.tensor_parallel}: weights do not fit in gpu_memory_utilization x GPU; raise it or TP"
    return Estimate("vLLM worker", g.gpus_per_engine, weights, budget - weights, note), tokens


def reward_estimate(run, arch: Architecture) -> Estimate:
    r = run.cluster.reward
    seq_len = run.model.max_prompt_len + run.model.max_response_len
    transient = run.reward.batch_size * seq_len * (4 * arch.hidden_size + 2 * arch.intermediate_size) * BF16
    return Estimate(
        "reward actor",
        r.gpus_per_actor,
        arch.params() * BF16 / GIB,
        transient / GIB,
        f"scoring batch {run.reward.batch_size}",
    )


def layout_rows(run, gpu_gib: float, bucket_bytes: int) -> list[Estimate]:
    arch = architecture(run.model)
    trainer, states = trainer_estimate(run, arch, bucket_bytes)
    vllm, _ = vllm_estimate(run, arch, gpu_gib)
    rows = [trainer, vllm]
    reward = reward_estimate(run, arch) if reward_actors(run) else None
    if reward:
        rows.append(reward)
    if run.cluster.colocate:
        shared = reward.total_gib if reward else 0.0
        train_phase = trainer.total_gib + shared
        generate_phase = states + vllm.total_gib + shared
        phase = "training (vLLM asleep)" if train_phase >= generate_phase else "generation (vLLM awake)"
        rows.append(
            Estimate(
                "one shared GPU",
                1.0,
                max(train_phase, generate_phase),
                0.0,
                f"peak in {phase}: training {train_phase:.1f}, generation {generate_phase:.1f} GiB",
            )
        )
    return rows


def compose_run(overrides: list[str]):
    from rlhf.config import compose, load_config

    return load_config(compose(overrides))


def gpu_layouts() -> list[str]:
    names = []
    for path in sorted((CONF_DIR / "cluster").glob("*.yaml")):
        run = compose_run([f"cluster={path.stem}", "model=llama3_8b", "device=gpu"]) if "gpu" in path.stem else None
        if run is not None and run.cluster.gpus_per_node > 0:
            names.append(path.stem)
    return names


def render(gpu_gib: float, bucket_bytes: int, models=("llama3_3b", "llama3_8b")) -> str:
    lines = [
        "# Expected GPU memory per layout and model",
        "",
        "Generated by `python -m rlhf.memory_table` from conf/cluster, conf/model and the formulas in",
        "rlhf/memory_table.py; do not edit by hand (a test checks that it is current).",
        "",
    ]
    for model in models:
        run = compose_run(["model=" + model, "device=gpu", "cluster=gpu_2x8"])
        arch = architecture(run.model)
        checkpointing = "on" if run.model.gradient_checkpointing else "off"
        lines.append(
            f"- **{model}** ({run.model.path}): {arch.params() / 1e9:.2f} B parameters, "
            f"{arch.num_layers} layers, KV cache {arch.kv_bytes_per_token() / 1024:.0f} KiB per token, "
            f"sequence length {run.model.max_prompt_len + run.model.max_response_len}; training keeps "
            f"{arch.layer_activation_bytes() / 1024:.0f} KiB per token per layer "
            f"({arch.layer_activation_bytes() / arch.hidden_size:.1f} x hidden), gradient checkpointing "
            f"{checkpointing}."
        )
    lines += [
        "",
        "| layout | model | role | GPU share | weights / states (GiB) | activations / KV / buffers (GiB) "
        f"| total (GiB) | of {gpu_gib:g} GiB | notes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for layout in gpu_layouts():
        for model in models:
            run = compose_run([f"cluster={layout}", f"model={model}", "device=gpu"])
            c = run.cluster
            shape = f"{layout} ({c.nodes}x{c.gpus_per_node}{', colocated' if c.colocate else ''})"
            for row in layout_rows(run, gpu_gib, bucket_bytes):
                fits = "fits" if row.total_gib <= gpu_gib * max(row.gpus_each, 1.0) else "**over**"
                lines.append(
                    f"| {shape} | {model} | {row.role} | {row.gpus_each:g} | {row.resident_gib:.1f} | "
                    f"{row.working_gib:.1f} | {row.total_gib:.1f} | {fits} | {row.note} |"
                )
    lines += [
        "",
        "Fractional GPU shares are Ray's scheduling units; memory is shared by whatever sits on the",
        "GPU, which the *one shared GPU* rows add up for colocated layouts.",
        "",
        "## Assumptions",
        "",
        ASSUMPTIONS.format(gpu_gib=f"{gpu_gib:g}", bucket_mib=bucket_bytes >> 20),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from rlhf.controller import WEIGHT_BUCKET_BYTES

    parser = argparse.ArgumentParser(prog="python -m rlhf.memory_table", description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-gib", type=float, default=80.0, help="memory of one GPU (default 80: A100/H100 80GB)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="compare with --output instead of writing it")
    args = parser.parse_args(argv)
    text = render(args.gpu_gib, WEIGHT_BUCKET_BYTES)
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run python -m rlhf.memory_table", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
