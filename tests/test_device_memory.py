"""device.keep_host_memory: the pages freed tensors leave stay with the process for the next ones."""

import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent(
    """
    import resource, sys, torch
    from rlhf import device
    if sys.argv[1] == "keep":
        assert device.keep_freed_host_memory()
    faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    def step():  # three 64 MiB blocks allocated, touched and freed, as activations are
        a = torch.ones(2**24)
        b = a * 2
        return (a + b).sum().item()
    for _ in range(10):  # warm-up: the heap grows to its working size
        step()
    before = faults()
    for _ in range(10):
        step()
    print((faults() - before) / (10 * 3 * 2**26 / 4096))
    """
)


def faulted_share(mode: str) -> float:
    """Page faults over the pages ten steps touch: 1 = every page faulted in afresh."""
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_kept_memory_is_reused_without_page_faults():
    assert faulted_share("default") > 0.5  # glibc's default: each large block is a fresh mmap
    assert faulted_share("keep") < 0.05


def test_setup_process_keeps_host_memory_only_when_asked(monkeypatch):
    from rlhf import device

    calls = []
    monkeypatch.setattr(device, "keep_freed_host_memory", lambda: calls.append(1) or True)
    device.setup_process("cpu", 0)
    assert calls == []
    device.setup_process("cpu", 0, keep_host_memory=True)
    assert calls == [1]
