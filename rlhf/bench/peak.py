"""The machine's matmul peak, measured in the benchmark's own process: the best of several timed
square matmuls per dtype, after a warm-up, with the same torch thread count the benchmark uses."""

from __future__ import annotations

import time


def matmul_peak(dtype_name: str, size: int = 2048, repeats: int = 5, threads: int | None = None) -> dict:
    import torch

    if threads:
        torch.set_num_threads(threads)
    dtype = getattr(torch, dtype_name)
    a = torch.randn(size, size, dtype=torch.float32).to(dtype)
    b = torch.randn(size, size, dtype=torch.float32).to(dtype)
    torch.mm(a, b)  # warm-up (AMX / oneDNN kernels are chosen on first use)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    flops = 2.0 * size ** 3
    return {"dtype": dtype_name, "size": size, "seconds": best, "flops_per_s": flops / best,
            "threads": torch.get_num_threads()}


def measure(threads: int, size: int = 2048) -> dict:
    return {name: matmul_peak(name, size=size, threads=threads) for name in ("float32", "bfloat16")}
