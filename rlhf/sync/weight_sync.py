"""Push the trainer group's current policy weights into every generator engine.

CPU (and any layout where trainers and engines don't share a NCCL group): trainer rank 0 gathers
the ZeRO-3 shards bucket by bucket into one state dict, which goes into Ray's object store once and
is read by every engine; vLLM reloads it in place. No checkpoint on disk.
GPU: trainer rank 0 broadcasts bucket by bucket over a NCCL group with every vLLM worker
(TrainerRank.broadcast_weights + WeightSyncExtension.receive_bucket).
"""

from __future__ import annotations

import ray

from rlhf import device


class WeightSyncTimeout(RuntimeError):
    pass


def sync_weights(trainers, generators, *, device_kind: str, bucket_bytes: int, timeout_s: float) -> int:
    """Returns the number of tensors each engine loaded."""
    if device_kind == "gpu" and getattr(generators, "colocated", False):
        from rlhf.sync.colocated import sync_colocated

        return sync_colocated(trainers, generators, bucket_bytes=bucket_bytes, timeout_s=timeout_s)
    if device_kind == "gpu":
        refs = [a.broadcast_weights.remote(generators.actors, bucket_bytes, timeout_s) for a in trainers.actors]
    else:
        state = trainers.state_dict(bucket_bytes)  # ObjectRef to rank 0's gathered dict
        refs = [g.load_state.remote(state) for g in generators.actors]
    ready, pending = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    if pending:
        raise WeightSyncTimeout(
            f"weight sync did not finish within {timeout_s:.0f}s ({len(pending)} of {len(refs)} calls pending): "
            f"check that every generator is alive; {device.sync_troubleshooting(device_kind)}")
    loaded = [n for n in ray.get(ready) if n]
    return max(loaded) if loaded else 0


def init_gpu_sync_group(trainers, generators, tensor_parallel: int) -> None:
    """GPU only: one NCCL group of trainer rank 0 (rank 0) and every vLLM worker (ranks 1..)."""
    address, port = ray.get(trainers.actors[0].address.remote())
    world = 1 + len(generators.actors) * tensor_parallel
    refs = [trainers.actors[0].init_weight_sync_group.remote(address, port, world)]
    refs += [g.init_weight_sync_group.remote(address, port, 1 + i * tensor_parallel, world)
             for i, g in enumerate(generators.actors)]
    ray.get(refs)
