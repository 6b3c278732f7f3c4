"""Methods added to every vLLM worker (vLLM's `worker_extension_cls`), called via `collective_rpc`.

With tensor parallel > 1 each worker is its own process, so each joins the weight-sync group as
its own rank and receives every tensor; its model keeps the shard it owns.

object_store: the full state dict arrives in-process (through Ray's object store) and goes through
vLLM's in-place `reload_weights`.
collective: trainer rank 0 broadcasts buckets of weights over a group that includes every vLLM
worker (NCCL on GPU, gloo on CPU; see rlhf.sync.weight_sync). On GPU each bucket is loaded as it
arrives; on CPU, whose backend pre-packs linear weights so that `model.load_weights` cannot write
into them, the buckets are kept and applied with `reload_weights` when the last one has arrived.
"""

from __future__ import annotations

import torch


class WeightSyncExtension:
    def reseed(self, seed: int) -> None:
        """Seed the sampler's random state, so a round's samples depend only on (weights, prompts,
        seed): a resumed run draws the same samples as an uninterrupted one."""
        import random

        random.seed(seed)
        torch.manual_seed(seed)

    def load_state(self, state: dict[str, torch.Tensor]) -> int:
        """object_store: reload all weights from a full state dict. Returns how many tensors were loaded."""
        self.reload_weights(weights_iterator=iter(state.items()))
        return len(state)

    def worker_identity(self) -> tuple[int, int]:
        """(tensor-parallel rank, process id) of this worker."""
        import os

        return self.rank, os.getpid()

    def init_weight_sync_group(
        self,
        master_address: str,
        master_port: int,
        rank_offset: int,
        world_size: int,
        device_type: str,
        timeout_s: float,
    ) -> int:
        """Join a new broadcast group as rank `rank_offset + this worker's rank`, leaving any older
        one (after a recovery its peers may be gone). Returns this worker's rank in the group."""
        from rlhf import device

        self.close_weight_sync_group()
        self._sync_device_type = device_type
        self._weight_group = device.weight_sync_group(
            device_type, master_address, master_port, rank_offset + self.rank, world_size, timeout_s
        )
        return rank_offset + self.rank

    def close_weight_sync_group(self) -> None:
        group = getattr(self, "_weight_group", None)
        self._weight_group, self._pending_weights = None, []
        if group is not None:
            group.close()

    def receive_bucket(self, names: list[str], dtypes: list[str], shapes: list[list[int]]) -> int:
        """Receive one bucket broadcast from trainer rank 0; load it now (GPU) or keep it for
        `finish_sync` (CPU). A failed receive leaves the group, so a retry starts from a new one."""
        from rlhf import device

        if getattr(self, "_weight_group", None) is None:
            raise RuntimeError("this vLLM worker is in no weight-sync group (init_weight_sync_group first)")
        weights = []
        try:
            for name, dtype, shape in zip(names, dtypes, shapes):
                tensor = torch.empty(shape, dtype=getattr(torch, dtype), device=self.device)
                self._weight_group.broadcast(tensor, src=0)
                weights.append((name, tensor))
        except Exception:
            self.close_weight_sync_group()
            raise
        if device.loads_weights_per_bucket(self._sync_device_type):
            self.model_runner.model.load_weights(weights=weights)
        else:
            self._pending_weights.extend(weights)
        return len(weights)

    def finish_sync(self) -> int:
        """After the last bucket: apply the kept buckets (CPU). Returns how many tensors that was."""
        pending, self._pending_weights = getattr(self, "_pending_weights", []), []
        if pending:
            self.reload_weights(weights_iterator=iter(pending))
        return len(pending)
