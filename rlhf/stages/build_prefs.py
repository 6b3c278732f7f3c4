"""stage=build_prefs: preference data (rlhf.prefs): speeches -> responders -> judge -> Parquet pairs."""

from __future__ import annotations

from pathlib import Path

from rlhf.chat.local import LocalModels
from rlhf.paths import resolve_path
from rlhf.prefs.build import build_preferences
from rlhf.stages.context import RunContext


def run(ctx: RunContext) -> None:
    prefs = ctx.run.prefs
    out_dir = Path(prefs.out_dir).expanduser().resolve() if prefs.out_dir else ctx.run_dir / "prefs"
    local = LocalModels(ctx.run, prefs.local_max_model_len, prefs.local_batch_size)
    try:
        ctx.results["build_prefs"] = built = build_preferences(ctx.run, out_dir, ctx.policy_dir, resolve_path, local)
    finally:
        local.shutdown()
    counts = {**built["counts"], **{f"pairs_{k}": v for k, v in built["pairs"].items()}}
    ctx.tracker.summary({f"prefs/{k}": v for k, v in counts.items() if isinstance(v, int)})  # counts only
