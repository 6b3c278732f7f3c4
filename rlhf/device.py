"""Every device-specific call of the project lives here, so CPU runs exercise all other code.

`kind` is "cpu" or "gpu" (from the `device` config group). CPU: gloo collectives, float32 or
bfloat16 on the host, vLLM's CPU build. GPU: NCCL, CUDA tensors, vLLM on CUDA with tensor parallel.
"""

from __future__ import annotations

import os

import torch

DEVICE_KINDS = ("cpu", "gpu")


def check_kind(kind: str) -> None:
    if kind not in DEVICE_KINDS:
        raise ValueError(f"device.kind must be one of {DEVICE_KINDS}, got {kind!r}")


def dist_backend(kind: str) -> str:
    """Collective backend for the trainer ranks."""
    check_kind(kind)
    return "nccl" if kind == "gpu" else "gloo"


def torch_device(kind: str) -> torch.device:
    """Where this process computes: its GPU (Ray sets CUDA_VISIBLE_DEVICES per actor) or the CPU."""
    check_kind(kind)
    if kind == "gpu":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def torch_dtype(name: str) -> torch.dtype:
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in dtypes:
        raise ValueError(f"dtype must be one of {sorted(dtypes)}, got {name!r}")
    return dtypes[name]


def ray_actor_resources(kind: str, cpus: float, gpus: float) -> dict:
    """Resources one actor asks Ray for."""
    check_kind(kind)
    return {"num_cpus": cpus, "num_gpus": gpus if kind == "gpu" else 0}


def setup_process(kind: str, threads: int) -> None:
    """Per-process set-up, called first thing in every actor."""
    check_kind(kind)
    if threads > 0:
        torch.set_num_threads(threads)
    if kind == "gpu":
        torch.cuda.set_device(torch.cuda.current_device())


def vllm_environment(kind: str, kv_cache_gib: float) -> dict[str, str]:
    """Environment for a process that hosts a vLLM engine; set before `import vllm`."""
    check_kind(kind)
    env = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}  # engine in-process: faster start, direct RPC
    if kind == "cpu":
        env["VLLM_CPU_KVCACHE_SPACE"] = str(max(1, int(kv_cache_gib)))
        env.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")  # let Ray place threads
    return env


def prepare_vllm_process(kind: str) -> None:
    """CPU: vLLM's attention kernels use AMX where the processor has it; inside a Ray actor the
    kernel must be allowed to use AMX first, or it dies with `Illegal instruction`."""
    check_kind(kind)
    if kind == "cpu":
        init_amx = getattr(torch._C, "_cpu", None) and getattr(torch._C._cpu, "_init_amx", None)
        if init_amx is not None:
            init_amx()


def vllm_engine_args(kind: str, tensor_parallel: int, gpu_memory_utilization: float, sleep_mode: bool = False) -> dict:
    """`sleep_mode`: colocated engines, which free their GPU memory while trainers step (GPU only).

    Tensor parallel > 1 uses vLLM's multiprocessing executor inside the engine's actor: the actor
    holds all of the engine's GPUs (or CPU cores) and vLLM spawns one worker process per rank.
    Left to itself, vLLM picks its Ray executor inside a placement group, which refuses a bundle
    holding more than one GPU. GPU engines capture CUDA graphs (no enforce_eager), as OpenRLHF and
    verl run them; the CPU backend has none to capture."""
    check_kind(kind)
    args = {"tensor_parallel_size": tensor_parallel, "enforce_eager": kind == "cpu"}
    if tensor_parallel > 1:
        args["distributed_executor_backend"] = "mp"
    if kind == "gpu":
        args["gpu_memory_utilization"] = gpu_memory_utilization
        if sleep_mode:
            args["enable_sleep_mode"] = True
    elif sleep_mode:
        raise ValueError("vLLM sleep mode (cluster.colocate=true) needs device=gpu")
    return args


def vllm_sleep(kind: str, llm) -> None:
    """Colocated engine, GPU: move the weights to host memory and drop the KV cache (level 1),
    so the trainer rank on the same GPU can use the memory."""
    check_kind(kind)
    if kind != "gpu":
        raise ValueError("vLLM sleep mode needs device=gpu")
    llm.sleep(level=1)
    torch.cuda.empty_cache()


def vllm_wake(kind: str, llm, tags: list[str]) -> None:
    """Bring back what `vllm_sleep` released: "weights" (before a weight sync) and/or "kv_cache"."""
    check_kind(kind)
    if kind != "gpu":
        raise ValueError("vLLM sleep mode needs device=gpu")
    llm.wake_up(tags=tags)


def gpu_uuid(kind: str) -> str:
    """Identity of this process's GPU, the same in every process that sees it (colocated sync)."""
    if kind != "gpu":
        raise ValueError("GPU identity needs device=gpu")
    return str(torch.cuda.get_device_properties(torch.cuda.current_device()).uuid)


def ipc_handle(kind: str, tensor: torch.Tensor):
    """A handle another process on the same GPU opens without a copy (CUDA IPC)."""
    if kind != "gpu":
        raise ValueError("CUDA IPC needs device=gpu")
    from torch.multiprocessing.reductions import reduce_tensor

    return reduce_tensor(tensor)


def open_ipc_handle(kind: str, handle) -> torch.Tensor:
    """The tensor behind `ipc_handle(...)`, opened on this process's current device (its index
    in this process may differ from the index in the process that made the handle)."""
    if kind != "gpu":
        raise ValueError("CUDA IPC needs device=gpu")
    rebuild, args = handle
    args = list(args)
    args[6] = torch.cuda.current_device()  # reduce_tensor's device slot
    return rebuild(*args)


def synchronize(kind: str) -> None:
    if kind == "gpu":
        torch.cuda.synchronize()


def empty_cache(kind: str) -> None:
    if kind == "gpu":
        torch.cuda.empty_cache()


def local_rank_env(kind: str) -> dict[str, str]:
    """Ray gives each GPU actor its own CUDA_VISIBLE_DEVICES, so every rank is local rank 0."""
    check_kind(kind)
    return {"LOCAL_RANK": "0"}


def deepspeed_accelerator_env(kind: str) -> dict[str, str]:
    check_kind(kind)
    return {"DS_ACCELERATOR": "cuda" if kind == "gpu" else "cpu"}


def weight_sync_group(kind: str, master_address: str, master_port: int, rank: int, world_size: int):
    """A process group between trainer rank 0 and every vLLM worker, for broadcasting weights.

    GPU only: vLLM's stateless NCCL communicator, so it does not touch the trainer's default group.
    On CPU, weights travel through Ray's object store instead (see rlhf.sync)."""
    if kind != "gpu":
        return None
    from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator
    from vllm.distributed.utils import StatelessProcessGroup

    group = StatelessProcessGroup.create(host=master_address, port=master_port, rank=rank, world_size=world_size)
    return PyNcclCommunicator(group, device=torch.cuda.current_device())


def sync_troubleshooting(kind: str) -> str:
    """What to check when a weight sync hangs."""
    if kind == "gpu":
        return ("trainer rank 0 must reach every vLLM worker's NCCL group: check firewalls between nodes "
                "and NCCL_SOCKET_IFNAME; NCCL_DEBUG=INFO shows where it stops")
    return "on CPU the weights travel through Ray's object store: check `ray status` for object store memory"


def env_for(kind: str) -> dict[str, str]:
    env = dict(deepspeed_accelerator_env(kind))
    env.update(local_rank_env(kind))
    return env


def apply_env(env: dict[str, str]) -> None:
    for key, value in env.items():
        os.environ[key] = value
