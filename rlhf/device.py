"""Every device-specific call of the project lives here, so CPU runs exercise all other code.

`device_type` is "cpu" or "gpu" (device.type, set by the `device` config group). CPU: gloo collectives, float32 or
bfloat16 on the host, vLLM's CPU build. GPU: NCCL, CUDA tensors, vLLM on CUDA with tensor parallel.
"""

from __future__ import annotations

import functools
import os
import traceback

import torch

DEVICE_TYPES = ("cpu", "gpu")


def check_device_type(device_type: str) -> None:
    if device_type not in DEVICE_TYPES:
        raise ValueError(f"device.type must be one of {DEVICE_TYPES}, got {device_type!r}")


def dist_backend(device_type: str) -> str:
    """Collective backend for the trainer ranks."""
    check_device_type(device_type)
    return "nccl" if device_type == "gpu" else "gloo"


def torch_device(device_type: str) -> torch.device:
    """Where this process computes: its GPU (Ray sets CUDA_VISIBLE_DEVICES per actor) or the CPU."""
    check_device_type(device_type)
    if device_type == "gpu":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def torch_dtype(name: str) -> torch.dtype:
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in dtypes:
        raise ValueError(f"dtype must be one of {sorted(dtypes)}, got {name!r}")
    return dtypes[name]


def ray_actor_resources(device_type: str, cpus: float, gpus: float) -> dict:
    """Resources one actor asks Ray for."""
    check_device_type(device_type)
    return {"num_cpus": cpus, "num_gpus": gpus if device_type == "gpu" else 0}


def setup_process(device_type: str, threads: int, keep_host_memory: bool = False) -> None:
    """Per-process set-up, called first thing in every actor (`keep_host_memory`: device.keep_host_memory)."""
    check_device_type(device_type)
    if threads > 0:
        torch.set_num_threads(threads)
    if device_type == "gpu":
        torch.cuda.set_device(torch.cuda.current_device())
    elif keep_host_memory:
        keep_freed_host_memory()


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


@functools.cache  # looked up once per process, not on every step that trims
def _libc():
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def keep_freed_host_memory() -> bool:
    """glibc keeps the pages that freed tensors leave for the next allocation instead of returning
    them to the OS. By default it serves large blocks (logits, ZeRO's flat buffers) from a fresh mmap
    each time and trims its heap, so every micro-batch page-faults gigabytes back in: SmolLM2's rank
    took ~1M page faults per optimizer step, 16% of its time in the kernel. The process then holds
    its peak host memory between phases. False where the C library is not glibc."""
    try:
        libc = _libc()
        return bool(libc and libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (AttributeError, OSError):  # not glibc
        return False


def vllm_environment(device_type: str, kv_cache_gib: float) -> dict[str, str]:
    """Environment for a process that hosts a vLLM engine; set before `import vllm`."""
    check_device_type(device_type)
    env = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}  # engine in-process: faster start, direct RPC
    if device_type == "cpu":
        env["VLLM_CPU_KVCACHE_SPACE"] = str(max(1, int(kv_cache_gib)))
        env.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")  # let Ray place threads
    return env


def prepare_vllm_process(device_type: str) -> None:
    """CPU: vLLM's attention kernels use AMX where the processor has it; inside a Ray actor the
    kernel must be allowed to use AMX first, or it dies with `Illegal instruction`."""
    check_device_type(device_type)
    if device_type == "cpu":
        init_amx = getattr(torch._C, "_cpu", None) and getattr(torch._C._cpu, "_init_amx", None)
        if init_amx is not None:
            init_amx()


def vllm_engine_args(
    device_type: str, tensor_parallel: int, gpu_memory_utilization: float, sleep_mode: bool = False
) -> dict:
    """`sleep_mode`: colocated engines, which free their GPU memory while trainers step (GPU only).

    Tensor parallel > 1 uses vLLM's multiprocessing executor inside the engine's actor: the actor
    holds all of the engine's GPUs (or CPU cores) and vLLM spawns one worker process per rank.
    Left to itself, vLLM picks its Ray executor inside a placement group, which refuses a bundle
    holding more than one GPU. GPU engines capture CUDA graphs (no enforce_eager), as OpenRLHF and
    verl run them; the CPU backend has none to capture."""
    check_device_type(device_type)
    args = {"tensor_parallel_size": tensor_parallel, "enforce_eager": device_type == "cpu"}
    if tensor_parallel > 1:
        args["distributed_executor_backend"] = "mp"
    if device_type == "gpu":
        args["gpu_memory_utilization"] = gpu_memory_utilization
        if sleep_mode:
            args["enable_sleep_mode"] = True
    elif sleep_mode:
        raise ValueError("vLLM sleep mode (cluster.colocate=true) needs device=gpu")
    return args


def vllm_sleep(device_type: str, llm) -> None:
    """Colocated engine, GPU: move the weights to host memory and drop the KV cache (level 1),
    so the trainer rank on the same GPU can use the memory."""
    check_device_type(device_type)
    if device_type != "gpu":
        raise ValueError("vLLM sleep mode needs device=gpu")
    llm.sleep(level=1)
    torch.cuda.empty_cache()


def vllm_wake(device_type: str, llm, tags: list[str]) -> None:
    """Bring back what `vllm_sleep` released: "weights" (before a weight sync) and/or "kv_cache"."""
    check_device_type(device_type)
    if device_type != "gpu":
        raise ValueError("vLLM sleep mode needs device=gpu")
    llm.wake_up(tags=tags)


def gpu_uuid(device_type: str) -> str:
    """Identity of this process's GPU, the same in every process that sees it (colocated sync)."""
    if device_type != "gpu":
        raise ValueError("GPU identity needs device=gpu")
    return str(torch.cuda.get_device_properties(torch.cuda.current_device()).uuid)


def ipc_handle(device_type: str, tensor: torch.Tensor):
    """A handle another process on the same GPU opens without a copy (CUDA IPC)."""
    if device_type != "gpu":
        raise ValueError("CUDA IPC needs device=gpu")
    from torch.multiprocessing.reductions import reduce_tensor

    return reduce_tensor(tensor)


def open_ipc_handle(device_type: str, handle) -> torch.Tensor:
    """The tensor behind `ipc_handle(...)`, opened on this process's current device (its index
    in this process may differ from the index in the process that made the handle)."""
    if device_type != "gpu":
        raise ValueError("CUDA IPC needs device=gpu")
    rebuild, args = handle
    args = list(args)
    args[6] = torch.cuda.current_device()  # reduce_tensor's device slot
    return rebuild(*args)


def synchronize(device_type: str) -> None:
    if device_type == "gpu":
        torch.cuda.synchronize()


def empty_cache(device_type: str) -> None:
    if device_type == "gpu":
        torch.cuda.empty_cache()


def return_freed_host_memory(device_type: str) -> None:
    """CPU with device.keep_host_memory=false: hand the heap pages glibc keeps after a step's
    activations are freed back to the OS (malloc_trim), so an idle trainer rank does not hold
    gigabytes while vLLM and the reward actors work beside it on the same machine. GPU: nothing
    (host memory is not where activations live, and emptying the CUDA cache every step would slow
    training)."""
    if device_type == "gpu":
        return
    try:
        libc = _libc()
        if libc:
            libc.malloc_trim(0)
    except (AttributeError, OSError):  # not glibc
        pass


def optimizer_settings(device_type: str, fused: bool = True) -> tuple[dict, dict]:
    """Which AdamW DeepSpeed builds: (extra entries of its optimizer params, extra top-level config).
    GPU: DeepSpeed's FusedAdam (one fused kernel over each flat ZeRO-3 shard, as OpenRLHF uses), or
    its DeepSpeedCPUAdam when device.zero.offload_optimizer keeps the state in host memory; DeepSpeed
    compiles either on first use (the CUDA toolkit's nvcc, or a C++ compiler, on every node; cached
    in TORCH_EXTENSIONS_DIR). CPU: torch's AdamW, which needs no compile step; it also steps
    offloaded state (on host tensors either way), so DeepSpeed's demand for its CPU Adam is lifted.
    `fused` (device.zero.fused_optimizer) picks torch's fused CPU kernel: DeepSpeed hands it one flat
    float32 shard, and the per-operation form makes a dozen passes over it per step."""
    check_device_type(device_type)
    if device_type == "gpu":
        return {}, {}
    return {"torch_adam": True, **({"fused": True} if fused else {})}, {"zero_force_ds_cpu_optimizer": False}


# DeepSpeed ops a run compiles on first use: a CPU's shared-memory collectives (deepspeed.init_distributed
# loads them), a GPU's fused Adam (its optimizer step)
_FIRST_USE_OPS = {"cpu": ("ShareMemCommBuilder",), "gpu": ("FusedAdamBuilder",)}


def build_ops(device_type: str) -> list[str]:
    """Compile now, into TORCH_EXTENSIONS_DIR, the DeepSpeed ops a run on `device_type` would compile
    on first use (the CPU's: ~30 s on 2 cores), so no run or test stops for it (`make install` does).
    Returns the ops built: those this DeepSpeed can build on this machine."""
    check_device_type(device_type)
    apply_env(env_for(device_type))
    import deepspeed
    from deepspeed.accelerator import get_accelerator

    built = []
    for name in _FIRST_USE_OPS[device_type]:
        builder = get_accelerator().create_op_builder(name)
        if builder is not None and deepspeed.ops.__compatible_ops__.get(builder.NAME, False):
            builder.load()
            built.append(builder.NAME)
    return built


def pin_host_memory(device_type: str) -> bool:
    """Page-locked host buffers for states moved off the device: fast copies to and from a GPU; a
    CPU has no device to copy to (and torch cannot pin memory without one)."""
    check_device_type(device_type)
    return device_type == "gpu"


def host_copy(device_type: str, tensor: torch.Tensor) -> torch.Tensor:
    """A copy of `tensor` in host memory (pinned on GPU machines), to bring back with `.to(device)`."""
    out = torch.empty(tensor.shape, dtype=tensor.dtype, device="cpu", pin_memory=pin_host_memory(device_type))
    out.copy_(tensor)
    return out


def local_rank_env(device_type: str) -> dict[str, str]:
    """Ray gives each GPU actor its own CUDA_VISIBLE_DEVICES, so every rank is local rank 0."""
    check_device_type(device_type)
    return {"LOCAL_RANK": "0"}


def deepspeed_accelerator_env(device_type: str) -> dict[str, str]:
    check_device_type(device_type)
    return {"DS_ACCELERATOR": "cuda" if device_type == "gpu" else "cpu"}


SYNC_METHODS = ("object_store", "collective", "cuda_ipc")


def default_sync_method(device_type: str, colocate: bool) -> str:
    """`sync.method=auto`: a broadcast group on GPUs (CUDA IPC when trainer and engine share a GPU,
    where NCCL cannot connect them); Ray's object store on CPU, the quickest there."""
    check_device_type(device_type)
    if device_type == "gpu":
        return "cuda_ipc" if colocate else "collective"
    return "object_store"


def sync_backend(device_type: str, method: str) -> str:
    """What carries the weights for a sync method on this device (recorded in the run summary)."""
    check_device_type(device_type)
    return {"object_store": "ray", "cuda_ipc": "cuda_ipc"}.get(method, "nccl" if device_type == "gpu" else "gloo")


def loads_weights_per_bucket(device_type: str) -> bool:
    """GPU: each received bucket goes straight into the model (`load_weights`). CPU: vLLM's CPU
    backend pre-packs linear weights, which `load_weights` cannot write into, so buckets are kept
    until the last one and applied together with `reload_weights`."""
    check_device_type(device_type)
    return device_type == "gpu"


class WeightGroup:
    """A broadcast group between trainer rank 0 (rank 0) and every vLLM worker, outside both
    sides' default process groups (the trainers' ZeRO-3 world, vLLM's tensor-parallel world).
    `broadcast` sends from / receives into `tensor`; `close` frees the communicator and drops the
    last reference to it, which closes its connections, so peers blocked on it fail at once
    instead of waiting out the timeout."""

    def __init__(self, handle, broadcast, close):
        self._handle, self._broadcast, self._close = handle, broadcast, close

    def broadcast(self, tensor: torch.Tensor, src: int) -> None:
        if self._handle is None:
            raise RuntimeError("the weight-sync group was closed")
        try:
            self._broadcast(self._handle, tensor, src)
        except Exception as err:
            traceback.clear_frames(err.__traceback__)  # its frames would keep the communicator alive after close()
            raise

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            self._close(handle)


def weight_sync_group(
    device_type: str, master_address: str, master_port: int, rank: int, world_size: int, timeout_s: float = 600.0
) -> WeightGroup:
    """Join a new weight-sync group; rank 0 hosts its rendezvous at master_address:master_port.
    GPU: vLLM's stateless NCCL communicator. CPU: a stateless gloo group (same protocol, so CPU
    runs exercise it)."""
    check_device_type(device_type)
    if device_type == "gpu":
        return _nccl_weight_group(master_address, master_port, rank, world_size, timeout_s)
    return _gloo_weight_group(master_address, master_port, rank, world_size, timeout_s)


def _nccl_weight_group(address: str, port: int, rank: int, world_size: int, timeout_s: float) -> WeightGroup:
    from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator
    from vllm.distributed.utils import StatelessProcessGroup

    group = StatelessProcessGroup.create(
        host=address, port=port, rank=rank, world_size=world_size, store_timeout=int(timeout_s)
    )
    return WeightGroup(
        PyNcclCommunicator(group, device=torch.cuda.current_device()), _nccl_broadcast, lambda comm: comm.destroy()
    )


def _nccl_broadcast(comm, tensor: torch.Tensor, src: int) -> None:
    stream = torch.cuda.current_stream()
    comm.broadcast(tensor, src=src, stream=stream)
    stream.synchronize()  # the receiver loads the tensor next; the sender may free it


def _gloo_weight_group(address: str, port: int, rank: int, world_size: int, timeout_s: float) -> WeightGroup:
    from datetime import timedelta

    from vllm.distributed.utils import stateless_init_torch_distributed_process_group

    group = stateless_init_torch_distributed_process_group(
        address, port, rank, world_size, backend="gloo", timeout=timedelta(seconds=timeout_s)
    )
    # A stateless group: its own ranks, so its own broadcast (torch.distributed.broadcast would
    # translate ranks through the default group).
    return WeightGroup(group, lambda pg, tensor, src: pg.broadcast(tensor, src).wait(), lambda pg: pg.shutdown())


def sync_troubleshooting(device_type: str, method: str = "collective") -> str:
    """What to check when a weight sync hangs."""
    if method == "object_store":
        return "the weights travel through Ray's object store: check `ray status` for object store memory"
    if device_type == "gpu":
        return (
            "trainer rank 0 must reach every vLLM worker's NCCL group: check firewalls between nodes "
            "and NCCL_SOCKET_IFNAME; NCCL_DEBUG=INFO shows where it stops"
        )
    return (
        "trainer rank 0 must reach every vLLM worker's gloo group over TCP: check firewalls between nodes "
        "and GLOO_SOCKET_IFNAME"
    )


def env_for(device_type: str) -> dict[str, str]:
    env = dict(deepspeed_accelerator_env(device_type))
    env.update(local_rank_env(device_type))
    return env


def apply_env(env: dict[str, str]) -> None:
    for key, value in env.items():
        os.environ[key] = value
