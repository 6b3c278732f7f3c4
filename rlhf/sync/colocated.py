"""Weight sync for colocated layouts (GPU): each vLLM worker shares its GPU with a trainer rank, so
NCCL cannot connect them (one GPU, two ranks). Instead, every trainer rank gathers each bucket of
ZeRO-3 shards onto its GPU (the gather is collective anyway), makes CUDA IPC handles for the
gathered tensors, and the handles of all ranks are collected on rank 0, keyed by GPU; rank 0 hands
each engine the bucket's handles (one remote call per bucket and engine), and each vLLM worker
opens the handles of its own GPU and loads the weights without a copy between processes. The
interface is the one of `weight_sync.sync_weights`; a call that does not return within the timeout
fails with what to check.
"""

from __future__ import annotations

import ray

from rlhf import device


class ColocatedSyncError(RuntimeError):
    pass


def _send_buckets(rank, generators: list, bucket_bytes: int, timeout_s: float) -> int:
    """Runs inside every TrainerRank actor (through Ray's __ray_call__), all ranks together."""
    import deepspeed
    import torch

    uuid = device.gpu_uuid("gpu")
    # The training step's cached blocks go back to the GPU first: vLLM, waking its weights on this
    # GPU, cannot use another process's allocator cache.
    device.empty_cache("gpu")
    named = list(rank.engine.module.named_parameters())
    sent, bucket, size = 0, [], 0
    for index, (name, param) in enumerate(named):
        bucket.append((name, param))
        size += param.ds_numel * param.element_size()
        if size < bucket_bytes and index < len(named) - 1:
            continue
        with deepspeed.zero.GatheredParameters([p for _, p in bucket], modifier_rank=None):
            handles = [device.ipc_handle("gpu", p.data) for _, p in bucket]
            everyone: list = [None] * rank.world_size
            torch.distributed.all_gather_object(everyone, (uuid, handles))
            if rank.rank == 0:
                by_gpu = dict(everyone)
                names = [n for n, _ in bucket]
                refs = [g.receive_ipc_bucket.remote(names, by_gpu) for g in generators]
                ready, pending = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
                if pending:
                    raise ColocatedSyncError(
                        f"{len(pending)} of {len(refs)} engines did not load a weight bucket within {timeout_s:.0f}s: "
                        "check that every generator is alive and awake (vLLM sleep mode)"
                    )
                ray.get(ready)
                sent += len(bucket)
            torch.distributed.barrier()  # the engines have copied: the gathered tensors may go
        bucket, size = [], 0
    if rank.rank == 0:
        ray.get([g.finish_sync.remote() for g in generators], timeout=timeout_s)
    device.empty_cache("gpu")  # the gathered copies, before the engines wake their KV cache
    return sent


def load_bucket(worker, names: list[str], handles_by_gpu: dict) -> int:
    """Runs in each vLLM worker (through collective_rpc): open this GPU's handles and load them."""
    uuid = device.gpu_uuid("gpu")
    if uuid not in handles_by_gpu:
        raise ColocatedSyncError(
            f"vLLM worker on GPU {uuid} shares no GPU with a trainer rank ({len(handles_by_gpu)} trainer GPUs): "
            "colocated layouts need a trainer rank on every GPU that holds a vLLM worker"
        )
    tensors = [device.open_ipc_handle("gpu", h) for h in handles_by_gpu[uuid]]
    worker.model_runner.model.load_weights(weights=list(zip(names, tensors)))
    device.synchronize("gpu")
    return len(tensors)


def sync_colocated(trainers, generators, *, bucket_bytes: int, timeout_s: float) -> int:
    from rlhf.workers.group import get_all

    refs = [a.__ray_call__.remote(_send_buckets, generators.actors, bucket_bytes, timeout_s) for a in trainers.actors]
    try:  # the first rank to fail raises its own error, without waiting for ranks stuck behind it
        return max(get_all(refs, timeout_s=timeout_s))
    except TimeoutError:
        raise ColocatedSyncError(
            f"colocated weight sync did not finish within {timeout_s:.0f}s: a trainer rank may be stuck gathering "
            "ZeRO-3 shards or an engine loading a bucket; check that every trainer rank and generator is alive"
        ) from None
