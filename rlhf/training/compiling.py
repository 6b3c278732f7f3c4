"""torch.compile under DeepSpeed ZeRO-3 (model.compile), for ranks that hold every parameter whole.

ZeRO-3 hooks every submodule to gather its weights before its forward and release them after;
torch.compile has to break its graph at each hook, and the pieces left between hooks are too small
to gain from generated kernels (and recompile for every weight shape). When every parameter is
persistent (device.zero.param_persistence_threshold above the largest weight: ZeRO-3 keeps it whole
on each rank and gathers it again after each optimizer step), the hooks have nothing to gather, so
they are removed, as DeepSpeed's own compiler does before it takes over the gathers, and the model
compiles as a few large graphs. Gradients, fp32 master weights and optimizer states stay sharded:
the gradient hooks on the parameters are kept. DeepSpeed's replacement of torch's linear function
is off with it (zero3_config's `compile`). The losses' log-softmax over the logits, which runs
outside the module, is compiled too (losses.compile_logprobs)."""

from __future__ import annotations

from rlhf.training import losses


def compile_engine(engine) -> None:
    """Compile a ZeRO-3 engine's module in place (dynamic shapes: each micro-batch has its own
    padded width; the first passes compile). Raises ValueError when a parameter is partitioned."""
    from deepspeed.runtime.zero.parameter_offload import DeepSpeedZeRoOffload
    from deepspeed.runtime.zero.partition_parameters import ZeroParamStatus

    params = list(engine.module.parameters())
    partitioned = [p for p in params if not getattr(p, "ds_persist", False)]
    if partitioned:
        raise ValueError(
            f"model.compile needs every parameter whole on each rank, but {len(partitioned)} are partitioned "
            f"(the largest has {max(p.ds_numel for p in partitioned):,} elements): set "
            "device.zero.param_persistence_threshold above it, or model.compile=false"
        )
    optimizer = engine.optimizer  # a trained engine's ZeRO-3 optimizer, or a frozen one's parameter offload
    offload = optimizer if isinstance(optimizer, DeepSpeedZeRoOffload) else optimizer.parameter_offload
    offload._remove_module_hooks()  # noqa: SLF001 - DeepSpeed's compiler removes them the same way

    def whole(*_) -> None:
        """Gather what was partitioned since the last forward: leaving deepspeed.zero.GatheredParameters
        (the weight sync, saving) partitions even persistent weights, and no hook gathers them now."""
        missing = [p for p in params if p.ds_status != ZeroParamStatus.AVAILABLE]
        if missing:
            missing[0].all_gather(missing)

    whole()
    engine.register_forward_pre_hook(whole)  # on the engine, outside the compiled module: runs eagerly
    engine.compile(compile_kwargs={"dynamic": True})
    losses.compile_logprobs()  # the losses' log-softmax over its logits, outside the module
