"""Checks of the weight-sync config section (sync), before any actor starts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlhf.choices import DeviceType, SyncMethod, not_one_of

if TYPE_CHECKING:
    from rlhf.config import RunConfig


def validate_sync(run: RunConfig) -> list[str]:
    """Checks of the sync section: methods that cannot connect the configured device and layout."""
    method, kind, colocate = run.sync.method, run.device.type, run.cluster.colocate
    wrong = not_one_of("sync.method", method, SyncMethod)
    if wrong:
        return wrong
    if method == SyncMethod.cuda_ipc and not (kind == DeviceType.gpu and colocate):
        return [
            "sync.method=cuda_ipc needs device=gpu and a colocated layout (cluster.colocate=true): use sync.method=auto"
        ]
    if method == SyncMethod.collective and colocate:
        return [
            "sync.method=collective cannot connect a trainer rank and a vLLM worker on the same GPU "
            "(cluster.colocate=true): use sync.method=auto (CUDA IPC there)"
        ]
    return []
