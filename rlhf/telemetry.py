"""No usage statistics leave the machine: Ray and vLLM report them to their developers by default.

Ray's head sends cluster metadata to usage-stats.ray.io, and every vLLM engine posts its platform and
model settings to stats.vllm.ai, unless the environment says otherwise. A counselling system does not
phone home, so `rlhf/__init__.py` turns both off before anything of the package imports Ray or vLLM,
and `start_ray` passes the same variables to every actor through the job's runtime environment (the
workers of a cluster someone else started do not inherit the driver's environment).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

USAGE_STATS_OFF = {
    "RAY_USAGE_STATS_ENABLED": "0",  # Ray: read by the head (dashboard's usage module) and ray.init
    "VLLM_NO_USAGE_STATS": "1",  # vLLM's own switch (vllm/envs.py)
    "VLLM_DO_NOT_TRACK": "1",  # vLLM also honours these two; DO_NOT_TRACK is the cross-tool convention
    "DO_NOT_TRACK": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",  # huggingface_hub's request telemetry, for hub-name model loads
}


def disable_usage_stats(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set every switch in `environ`, overriding a value that would turn reporting on."""
    environ.update(USAGE_STATS_OFF)
