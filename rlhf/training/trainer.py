"""One DeepSpeed ZeRO-3 trainer rank, hosted in a Ray actor. N of them form the trainer group.

The same rank runs every training stage of the recipe: `load(loss, ...)` builds the model(s) that
loss declares (rlhf.training.losses: a causal LM, or one with a value head, plus a frozen ZeRO-3
reference for losses on referenced pairs) and `train_step(...)` applies one optimizer step of it.
"""

from __future__ import annotations

import copy
import gc
import os
import time
from contextlib import contextmanager

import torch

from rlhf import device
from rlhf.training import compiling, flops, losses, offload
from rlhf.training.batching import collate, collate_pairs, collate_shared
from rlhf.training.deepspeed_config import zero3_config


class TrainerRank:
    def __init__(self, rank: int, world_size: int, device_type: str, threads: int, seed: int, keep_host_memory=False):
        self.rank, self.world_size, self.device_type, self.seed = rank, world_size, device_type, seed
        self.keep_host_memory = keep_host_memory  # device.keep_host_memory: no malloc_trim after each step
        device.apply_env(device.env_for(device_type))
        device.setup_process(device_type, threads, keep_host_memory)
        self.engine = self.reference = self.shape = None
        self._hf_ds_configs = []  # HfDeepSpeedConfig must stay alive while ZeRO-3 models load
        self.loss, self.settings = None, {}
        self.share_prompt = True  # referenced pairs run each prompt once (losses.shared_prompt_logprobs)
        self._parked = None  # training states moved to host memory (offload_states), until reload_states

    # -- set-up --------------------------------------------------------------------------------
    def address(self) -> tuple[str, int]:
        """This node's IP and a free port: rank 0's answer is the rendezvous for all ranks."""
        import socket

        import ray

        with socket.socket() as sock:
            sock.bind(("", 0))
            port = sock.getsockname()[1]
        return ray.util.get_node_ip_address(), port

    def init_process_group(self, master_address: str, master_port: int) -> int:
        import deepspeed

        os.environ.update(MASTER_ADDR=master_address, MASTER_PORT=str(master_port))
        os.environ.update(RANK=str(self.rank), WORLD_SIZE=str(self.world_size))
        deepspeed.init_distributed(dist_backend=device.dist_backend(self.device_type), auto_mpi_discovery=False)
        return torch.distributed.get_world_size()

    def pid(self) -> int:
        return os.getpid()

    def compiled(self) -> bool:
        """Whether the trained model runs through torch.compile (model.compile)."""
        return bool(self.engine is not None and self.engine.is_compiled)

    def partitions(self) -> dict:
        """What this rank holds of the trained model: DeepSpeed's ZeRO stage and, per parameter,
        (name, full size, elements held here, elements materialised outside a gather). Under
        ZeRO-3 a rank keeps about 1/world_size of every parameter (its `ds_tensor`) and the full
        tensor exists only inside a gather; a parameter DeepSpeed did not partition reports its
        whole size held and materialised."""
        params = [
            (name, getattr(p, "ds_numel", p.numel()), getattr(p, "ds_tensor", p).numel(), p.data.numel())
            for name, p in self.engine.module.named_parameters()
        ]
        return {"zero_stage": self.engine.zero_optimization_stage(), "world_size": self.world_size, "params": params}

    def load(
        self,
        loss: str,
        model_dir: str,
        *,
        settings: dict,
        accumulation: int,
        dtype: str = "float32",
        reference_dir: str | None = None,
        gradient_checkpointing: bool = False,
        attention: str = "sdpa",
        share_prompt: bool = True,
        compile: bool = False,
        total_steps: int = 0,
        zero: dict | None = None,
    ) -> None:
        """Build the DeepSpeed engine(s) for a stage, replacing any previous stage's: the model the
        loss trains (rlhf.training.losses) and, for losses on referenced pairs, a frozen ZeRO-3
        reference. `settings` is the stage's config section (lr, micro_batch, beta, ...); `compile`:
        both through torch.compile (model.compile)."""
        import deepspeed
        from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
        from transformers.integrations import HfDeepSpeedConfig

        if loss not in losses.LOSSES:
            raise ValueError(f"unknown loss {loss!r}; expected one of {sorted(losses.LOSSES)}")
        self.release()
        torch.manual_seed(self.seed)
        self.loss, self.settings = losses.LOSSES[loss], dict(settings)
        # gradient checkpointing recomputes each layer without a KV cache: two full rows per pair then
        self.share_prompt = share_prompt and not gradient_checkpointing
        torch_dtype = device.torch_dtype(dtype)
        common = {k: settings[k] for k in ("micro_batch", "lr", "weight_decay", "grad_clip")}
        common.update(accumulation=accumulation, world_size=self.world_size, dtype=dtype, zero=zero)
        common.update(device_type=self.device_type, compile=compile)
        train_config = zero3_config(
            **common, warmup_steps=settings["warmup_steps"], schedule=settings["schedule"], total_steps=total_steps
        )
        self._hf_ds_configs.append(HfDeepSpeedConfig(train_config))  # partitions weights as they load
        if self.loss.model == losses.VALUE_HEAD:
            model = AutoModelForSequenceClassification.from_pretrained(
                model_dir, num_labels=1, dtype=torch_dtype, use_safetensors=True, attn_implementation=attention
            )
        else:
            model = AutoModelForCausalLM.from_pretrained(
                model_dir, dtype=torch_dtype, use_safetensors=True, attn_implementation=attention
            )
        model.config.use_cache = False
        if gradient_checkpointing:  # recompute each layer's activations in backward: memory for compute
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.engine, *_ = deepspeed.initialize(
            model=model, config=train_config, model_parameters=[p for p in model.parameters() if p.requires_grad]
        )
        if self.loss.data == losses.REFERENCED_PAIRS:
            ref_config = zero3_config(**common, train=False)
            self._hf_ds_configs.append(HfDeepSpeedConfig(ref_config))
            ref_model = AutoModelForCausalLM.from_pretrained(
                reference_dir or model_dir, dtype=torch_dtype, use_safetensors=True, attn_implementation=attention
            )
            ref_model.config.use_cache = False
            self.reference, *_ = deepspeed.initialize(model=ref_model, config=ref_config)
            self.reference.eval()
        self.shape = flops.ModelShape.of(self.engine.module)
        for engine in [e for e in (self.engine, self.reference) if e is not None and compile]:
            compiling.compile_engine(engine)
        self.device = device.torch_device(self.device_type)

    def release(self) -> None:
        self.engine = self.reference = self._parked = None
        self._hf_ds_configs.clear()
        gc.collect()
        device.empty_cache(self.device_type)

    # -- forward passes -------------------------------------------------------------------------
    def _batch(self, items: list, pad_id: int, pairs: bool, referenced: bool = False) -> dict:
        """Tensors of one micro-batch: pairs of a referenced-pairs loss in the shared-prompt layout
        (model.share_prompt), other pairs as two full rows each, examples one row each."""
        if referenced and self.share_prompt:
            batch = collate_shared(items, pad_id)
        else:
            batch = (collate_pairs if pairs else collate)(items, pad_id)
        return {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}

    def _rewards(self, batch: dict) -> torch.Tensor:
        """One reward per sequence, read at its last real token (as OpenRLHF does), through the
        engine's forward; the value head's per-token output is taken from a hook, because the
        model's own pooling skips a final EOS whenever pad and EOS share an id."""
        from rlhf.models.reward_model import HEAD, last_token_index

        captured = {}
        hook = getattr(self.engine.module, HEAD).register_forward_hook(
            lambda _module, _inputs, output: captured.update(values=output)
        )
        try:
            self.engine(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], position_ids=batch["position_ids"]
            )
        finally:
            hook.remove()
        values = captured["values"].squeeze(-1)
        return values.gather(1, last_token_index(batch["attention_mask"])).squeeze(1)

    def _loss(self, items: list, pad_id: int) -> tuple[torch.Tensor, dict]:
        """The loaded loss (rlhf.training.losses) on one micro-batch."""
        loss = self.loss
        if loss.data == losses.REFERENCED_PAIRS and any(item.reference is None for item in items):
            raise ValueError(f"{loss.name} items need their reference log-probabilities first (with_reference)")
        batch = self._batch(
            items, pad_id, pairs=loss.data != losses.EXAMPLES, referenced=loss.data == losses.REFERENCED_PAIRS
        )
        out, stats = loss.compute(losses.Batch(self.engine, batch, items, self.settings, lambda: self._rewards(batch)))
        return out, {**stats, "forward_flops": flops.forward_flops(self.shape, batch)}

    @torch.no_grad()
    def reference_logprobs(self, micro_batches: list[list], pad_id: int) -> list[list[tuple[list, list]]]:
        """The frozen reference model's per-token log-probabilities of each pair's (chosen, rejected)
        response, one forward per micro-batch. They do not change while the policy trains, so a
        DPO pass computes them once and every step and epoch reuses them."""
        out = []
        for items in micro_batches:
            batch = self._batch(items, pad_id, pairs=True, referenced=True)
            logprobs, mask = losses.pair_logprobs(self.reference, batch)
            rows = [row[: int(m.sum())].tolist() for row, m in zip(logprobs.float(), mask)]
            n = len(items)
            out.append(list(zip(rows[:n], rows[n:])))
        return out

    # -- steps ------------------------------------------------------------------------------------
    def train_step(self, micro_batches: list[list], pad_id: int) -> dict:
        """One optimizer step over this rank's micro-batches (gradient accumulation inside)."""
        if self._parked is not None:
            raise RuntimeError("the optimizer state is in host memory (offload_states): reload_states before a step")
        self.engine.train()
        totals: dict[str, float] = {}
        start = time.perf_counter()
        for items in micro_batches:
            loss, stats = self._loss(items, pad_id)
            self.engine.backward(loss)
            self.engine.step()
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + value
        if not self.keep_host_memory:
            device.return_freed_host_memory(self.device_type)
        return _average(totals, len(micro_batches), time.perf_counter() - start)

    @torch.no_grad()
    def evaluate(self, micro_batches: list[list], pad_id: int) -> dict:
        """The stage's metrics without updating (e.g. the SFT validation loss)."""
        self.engine.eval()
        totals: dict[str, float] = {}
        for items in micro_batches:
            _, stats = self._loss(items, pad_id)
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + value
        return _average(totals, len(micro_batches), 0.0)

    @torch.no_grad()
    def score(self, micro_batches: list[list], pad_id: int) -> list[list[float]]:
        """Reward of each (prompt, response) item, per micro-batch; for normalisation statistics and
        held-out accuracy after reward-model training."""
        self.engine.eval()
        return [self._rewards(self._batch(items, pad_id, pairs=False)).float().tolist() for items in micro_batches]

    def save_state(self, state_dir: str) -> None:
        """Training state for resuming: this rank's ZeRO-3 shards of weights and optimizer state.
        Every rank writes its own files (a shared filesystem across nodes)."""
        with self._states_in_place():
            self.engine.save_checkpoint(state_dir, tag="state", save_latest=False)

    def load_state(self, state_dir: str) -> None:
        with self._states_in_place():
            self.engine.load_checkpoint(
                state_dir, tag="state", load_optimizer_states=True, load_lr_scheduler_states=True
            )

    # -- training states out of device memory while vLLM works (rlhf.training.offload) ----------------
    def offload_states(self) -> int:
        """Optimizer state, fp32 master weights and gradient buffers to host memory; bytes moved."""
        if self._parked is None:
            self._parked = offload.offload(self.engine, self.device_type)
        return self._parked.bytes

    def reload_states(self) -> None:
        parked, self._parked = self._parked, None
        if parked is not None:
            offload.reload(self.engine, parked, self.device_type)

    @contextmanager
    def _states_in_place(self):
        """Saving or loading the training state needs it in place; offloaded again afterwards."""
        parked = self._parked is not None
        self.reload_states()
        try:
            yield
        finally:
            if parked:
                self.offload_states()

    def refresh_reference(self) -> None:
        """Copy the policy into the reference model. Both are partitioned identically under ZeRO-3,
        so each rank copies its own shards: no gather needed. A parameter kept whole on every rank
        (device.zero.param_persistence_threshold) is read from its whole copy, which is copied too;
        the policy's is current (DeepSpeed gathers those after every step)."""
        for ref_param, param in zip(self.reference.module.parameters(), self.engine.module.parameters()):
            ref_param.ds_tensor.data.copy_(param.ds_tensor.data)
            if ref_param.data.numel() == ref_param.ds_numel and param.data.numel() == param.ds_numel:
                ref_param.data.copy_(param.data)

    # -- weights out --------------------------------------------------------------------------------
    def gathered_buckets(self, bucket_bytes: int, to_cpu: bool = True):
        """Yield lists of (name, full tensor) on rank 0 (None elsewhere), gathering ZeRO-3 shards a
        bucket at a time so peak memory stays near one bucket."""
        import deepspeed

        named = list(self.engine.module.named_parameters())
        bucket, size = [], 0
        for index, (name, param) in enumerate(named):
            bucket.append((name, param))
            size += param.ds_numel * param.element_size()
            if size >= bucket_bytes or index == len(named) - 1:
                with deepspeed.zero.GatheredParameters([p for _, p in bucket], modifier_rank=None):
                    yield (
                        [(n, p.data.detach().to("cpu", copy=True) if to_cpu else p.data) for n, p in bucket]
                        if self.rank == 0
                        else None
                    )
                bucket, size = [], 0

    def full_state_dict(self, bucket_bytes: int = 64 << 20) -> dict | None:
        state = {}
        for bucket in self.gathered_buckets(bucket_bytes):
            if bucket is not None:
                state.update(bucket)
        return state if self.rank == 0 else None

    def save(self, out_dir: str, extra_config: dict | None = None) -> None:
        """Rank 0 writes an HF checkpoint (safetensors); all ranks must call (the gather is collective)."""
        state = self.full_state_dict()
        if self.rank == 0:
            module = self.engine.module
            module.save_pretrained(out_dir, state_dict=state, safe_serialization=True)
            # The checkpoint is for inference (KV cache on); the live module trains without a cache,
            # so only the written config changes.
            config = copy.deepcopy(module.config)
            for key, value in {**(extra_config or {}), "use_cache": True}.items():
                setattr(config, key, value)
            config.save_pretrained(out_dir)
        torch.distributed.barrier()

    def init_weight_sync_group(
        self, master_address: str, master_port: int, world_size: int, timeout_s: float = 600.0
    ) -> None:
        """Rank 0 joins a new broadcast group with every vLLM worker, as its rank 0, leaving the
        old one (after a recovery its peers may be gone). Other ranks only help gather."""
        if self.rank == 0:
            self.close_weight_sync_group()
            self._weight_group = device.weight_sync_group(
                self.device_type, master_address, master_port, 0, world_size, timeout_s
            )

    def close_weight_sync_group(self) -> None:
        group, self._weight_group = getattr(self, "_weight_group", None), None
        if group is not None:
            group.close()

    def broadcast_weights(self, generators: list, bucket_bytes: int, timeout_s: float) -> int:
        """Collective weight sync: every rank helps gather each bucket; rank 0 announces the bucket
        to the engines (one call per bucket, not per tensor) and broadcasts its tensors. If sending
        fails (an engine died), rank 0 closes the group, so the other engines stop waiting, and
        keeps gathering with the other ranks until the last bucket, so none of them is left in a
        collective; then it raises. If a gather fails (a trainer rank died), it closes the group too."""
        device.empty_cache(self.device_type)  # the step's cached blocks, before the engines load weights
        sent, error = 0, None
        try:
            for bucket in self.gathered_buckets(bucket_bytes, to_cpu=False):
                if bucket is None or error is not None:
                    continue
                try:
                    sent += self._send_bucket(generators, bucket, timeout_s)
                except Exception as err:  # noqa: BLE001 - raised after the last gather
                    error = err
                    self.close_weight_sync_group()
            if self.rank == 0 and error is None:
                import ray

                ray.get([g.finish_sync.remote() for g in generators], timeout=timeout_s)
        except Exception:
            self.close_weight_sync_group()
            raise
        finally:
            device.empty_cache(self.device_type)
        if error is not None:
            raise error
        return sent

    def _send_bucket(self, generators: list, bucket: list, timeout_s: float) -> int:
        import ray

        if getattr(self, "_weight_group", None) is None:
            raise RuntimeError("trainer rank 0 is in no weight-sync group (init_weight_sync_group first)")
        names = [name for name, _ in bucket]
        dtypes = [str(t.dtype).removeprefix("torch.") for _, t in bucket]
        shapes = [list(t.shape) for _, t in bucket]
        pending = [g.receive_bucket.remote(names, dtypes, shapes) for g in generators]
        for _, tensor in bucket:
            self._weight_group.broadcast(tensor, src=0)
        ray.get(pending, timeout=timeout_s)
        return len(bucket)

    def shutdown(self) -> None:
        self.close_weight_sync_group()
        self.release()
        if torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def _average(totals: dict, count: int, seconds: float) -> dict:
    """Metrics averaged over micro-batches; token counts added up."""
    counts = {"tokens": 0, **{k: v for k, v in totals.items() if k in losses.COUNTS}}
    return {**{k: v / max(count, 1) for k, v in totals.items() if k not in counts}, **counts, "seconds": seconds}
