"""The DeepSpeed config the trainers use, built from the typed run config."""

from __future__ import annotations

from rlhf import device


def zero3_config(
    *,
    micro_batch: int,
    accumulation: int,
    world_size: int,
    lr: float,
    weight_decay: float,
    grad_clip: float,
    dtype: str,
    train: bool = True,
    warmup_steps: int = 0,
    schedule: str = "constant",
    total_steps: int = 0,
    zero: dict | None = None,
    device_type: str = "cpu",
    compile: bool = False,
) -> dict:
    """ZeRO stage 3: parameters, gradients and optimizer state sharded across the trainer ranks.
    `train=False` gives a frozen, sharded inference engine (the DPO reference model). Which AdamW
    (fused on GPUs, torch's on CPUs) is the device module's choice. `compile`: no replaced linear
    function (rlhf.training.compiling)."""
    config = {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": accumulation,
        "train_batch_size": micro_batch * accumulation * world_size,
        "zero_optimization": {**zero_section(zero or {}, device_type, train), "memory_efficient_linear": not compile},
        "bf16": {"enabled": dtype == "bfloat16"},
        "fp16": {"enabled": dtype == "float16"},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if train:
        config["gradient_clipping"] = grad_clip
        adam_params, extra = device.optimizer_settings(device_type, fused=(zero or {}).get("fused_optimizer", True))
        config["optimizer"] = {
            "type": "AdamW",
            "params": {"lr": lr, "weight_decay": weight_decay, "betas": [0.9, 0.95], **adam_params},
        }
        config.update(extra)
        scheduler = lr_scheduler(lr, warmup_steps, schedule, total_steps)
        if scheduler:
            config["scheduler"] = scheduler
    return config


def zero_section(zero: dict, device_type: str = "cpu", train: bool = True) -> dict:
    """`zero`: rlhf.config.ZeroConfig as a dict (device.zero). Offloaded states go to host memory
    (pinned on GPU machines); a frozen engine has no optimizer state to offload."""
    section = {
        "stage": 3,
        "overlap_comm": zero.get("overlap_comm", False),
        "stage3_param_persistence_threshold": zero.get("param_persistence_threshold", 0),
        "reduce_scatter": zero.get("reduce_scatter", True),
        "stage3_prefetch_bucket_size": zero.get("prefetch_bucket_size", 50_000_000),
        "stage3_max_live_parameters": zero.get("max_live_parameters", 1_000_000_000),
    }
    host = {"device": "cpu", "pin_memory": device.pin_host_memory(device_type)}
    if train and zero.get("offload_optimizer"):
        section["offload_optimizer"] = dict(host)
    if zero.get("offload_param"):
        section["offload_param"] = dict(host)
    return section


def lr_scheduler(lr: float, warmup_steps: int, schedule: str, total_steps: int) -> dict | None:
    """Linear warm-up over `warmup_steps`, then constant or cosine decay to the last of `total_steps`
    (DeepSpeed's WarmupLR / WarmupCosineLR). None: a constant rate from the first step."""
    if schedule == "cosine" and total_steps > 0:
        return {
            "type": "WarmupCosineLR",
            "params": {
                "total_num_steps": max(total_steps, warmup_steps + 1),
                "warmup_num_steps": warmup_steps,
                "warmup_min_ratio": 0.0,
                "cos_min_ratio": 0.0,
                "warmup_type": "linear",
            },
        }
    if warmup_steps > 0:
        return {
            "type": "WarmupLR",
            "params": {
                "warmup_min_lr": 0.0,
                "warmup_max_lr": lr,
                "warmup_num_steps": warmup_steps,
                "warmup_type": "linear",
            },
        }
    return None
