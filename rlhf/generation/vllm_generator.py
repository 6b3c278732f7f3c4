"""A vLLM engine in a Ray actor. N of them form the generator group; prompts are split among them.

Prompts arrive as token ids (the driver applies the chat template once, identically for generation
and training), responses leave as text plus token ids.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from rlhf import device


@dataclass
class Sample:
    text: str
    token_ids: list[int]
    finished: bool  # False when cut off by max_tokens
    logprobs: list[float] | None = None  # the policy's log-probability of each sampled token (if asked)


class Generator:
    def __init__(
        self,
        model_dir: str,
        *,
        device_type: str,
        threads: int,
        seed: int,
        dtype: str,
        max_model_len: int,
        tensor_parallel: int = 1,
        kv_cache_gib: float = 1.0,
        gpu_memory_utilization: float = 0.5,
        colocate: bool = False,
        keep_host_memory: bool = False,
    ):
        device.apply_env(device.vllm_environment(device_type, kv_cache_gib))
        device.setup_process(device_type, threads, keep_host_memory)
        device.prepare_vllm_process(device_type)
        from vllm import LLM

        start = time.perf_counter()
        self.llm = LLM(
            model=model_dir,
            dtype=dtype,
            seed=seed,
            max_model_len=max_model_len,
            load_format="safetensors",
            worker_extension_cls="rlhf.sync.vllm_extension.WeightSyncExtension",
            **device.vllm_engine_args(device_type, tensor_parallel, gpu_memory_utilization, sleep_mode=colocate),
        )
        self.startup_seconds = time.perf_counter() - start
        # Colocated (GPU): asleep between generations, so the trainer rank on this GPU has the memory.
        self.device_type, self.colocate, self.sleeping = device_type, colocate, set()

    def _sleep(self) -> None:
        if self.colocate and not self.sleeping:
            device.vllm_sleep(self.device_type, self.llm)
            self.sleeping = {"weights", "kv_cache"}

    def _wake(self, *tags: str) -> None:
        todo = [t for t in (tags or ("weights", "kv_cache")) if t in self.sleeping]
        if todo:
            device.vllm_wake(self.device_type, self.llm, todo)
            self.sleeping -= set(todo)
            if "kv_cache" in todo:
                self.llm.reset_prefix_cache()  # the KV cache was dropped while asleep

    def info(self) -> dict:
        import vllm

        return {
            "pid": os.getpid(),
            "vllm": vllm.__version__,
            "engine": f"{type(self.llm).__module__}.{type(self.llm).__qualname__}",  # what really generates
            "startup_seconds": self.startup_seconds,
        }

    def requests_served(self) -> int | None:
        """Prompts this engine has generated for since it started (vLLM numbers each request)."""
        return getattr(getattr(self.llm, "request_counter", None), "counter", None)

    def generate(
        self,
        prompts: list[list[int]],
        *,
        n: int,
        temperature: float,
        top_p: float,
        max_tokens: int,
        seed: int | None = None,
        logprobs: bool = False,
        json_schema: str | None = None,
    ) -> list[list[Sample]]:
        """`n` samples per prompt. With `seed`, the engine's sampler is reseeded first, so the
        result depends only on (weights, prompts, seed) for a fixed layout. (Per-request seeds would
        not depend on the layout either, but vLLM's CPU backend cannot combine them with chunked
        prefill.) `logprobs`: each sampled token's log-probability under the engine's weights
        before temperature and top-p (vLLM's raw log-probs), i.e. the policy's own. `json_schema`:
        decode under that JSON schema (structured outputs), so every answer is valid JSON of it."""
        import json

        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        if seed is not None:
            self.llm.collective_rpc("reseed", args=(seed,))
        from vllm.sampling_params import StructuredOutputsParams

        guided = StructuredOutputsParams(json=json.loads(json_schema)) if json_schema else None
        params = SamplingParams(
            n=n,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            logprobs=0 if logprobs else None,
            structured_outputs=guided,
        )
        self._wake()
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False)
        self._sleep()  # colocated: free the GPU for scoring and training until the weight sync
        return [
            [
                Sample(
                    o.text,
                    list(o.token_ids),
                    o.finish_reason == "stop",
                    [step[token].logprob for step, token in zip(o.logprobs, o.token_ids)] if logprobs else None,
                )
                for o in out.outputs
            ]
            for out in outputs
        ]

    def greedy(self, prompts: list[list[int]], max_tokens: int) -> list[str]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(n=1, temperature=0.0, max_tokens=max_tokens)
        self._wake()
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False)
        self._sleep()
        return [out.outputs[0].text for out in outputs]

    def load_state(self, state: dict) -> int:
        """object_store sync: the full state dict, handed over through Ray's object store."""
        self._wake("weights")
        loaded = max(self.llm.collective_rpc("load_state", kwargs={"state": state}))  # per worker, all the same
        self.llm.reset_prefix_cache()  # cached KV was computed with the old weights
        return loaded

    def init_weight_sync_group(self, **group) -> list[int]:
        """Every worker of this engine joins a new broadcast group (leaving the old one); returns
        their ranks in it. Arguments: those of WeightSyncExtension.init_weight_sync_group."""
        return self.llm.collective_rpc("init_weight_sync_group", kwargs=group)

    def receive_bucket(self, names: list[str], dtypes: list[str], shapes: list[list[int]]) -> int:
        self._wake("weights")  # colocated: weights back on the GPU before they are overwritten
        return max(self.llm.collective_rpc("receive_bucket", args=(names, dtypes, shapes)))

    def receive_ipc_bucket(self, names: list[str], handles_by_gpu: dict) -> int:
        """Colocated GPU sync: each worker opens the CUDA IPC handles of its own GPU's trainer rank."""
        from rlhf.sync.colocated import load_bucket

        self._wake("weights")
        return sum(self.llm.collective_rpc(load_bucket, args=(names, handles_by_gpu)))

    def finish_sync(self) -> None:
        """After the last bucket: workers apply buckets they kept (CPU), and the prefix cache,
        computed with the old weights, goes."""
        self.llm.collective_rpc("finish_sync")
        self.llm.reset_prefix_cache()
