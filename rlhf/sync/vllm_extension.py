"""Methods added to every vLLM worker (vLLM's `worker_extension_cls`), called via `collective_rpc`.

CPU: the state dict arrives in-process (through Ray's object store) and goes through vLLM's in-place
`reload_weights`, because vLLM's CPU backend pre-packs linear weights and `model.load_weights`
cannot write into them.
GPU: trainer rank 0 broadcasts buckets of weights over a NCCL group that includes every vLLM worker
(see rlhf.sync.weight_sync); each worker receives a bucket into fresh tensors and loads it.
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
        """CPU path: reload all weights from a full state dict. Returns how many tensors were loaded."""
        self.reload_weights(weights_iterator=iter(state.items()))
        return len(state)

    def init_weight_sync_group(self, master_address: str, master_port: int, rank_offset: int, world_size: int) -> None:
        """GPU path: join the broadcast group as rank `rank_offset + this worker's rank`."""
        from rlhf import device

        self._weight_group = device.weight_sync_group(
            "gpu", master_address, master_port, rank_offset + self.rank, world_size)

    def receive_bucket(self, names: list[str], dtypes: list[str], shapes: list[list[int]]) -> int:
        """GPU path: receive one bucket broadcast from trainer rank 0 and load it."""
        weights = []
        for name, dtype, shape in zip(names, dtypes, shapes):
            tensor = torch.empty(shape, dtype=getattr(torch, dtype), device=self.device)
            self._weight_group.broadcast(tensor, src=0)
            weights.append((name, tensor))
        self.model_runner.model.load_weights(weights=weights)
        return len(weights)
