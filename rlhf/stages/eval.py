"""stage=eval: win rates against a reference, reward-model metrics, safety probes and a report
(rlhf.eval.run)."""

from __future__ import annotations

from rlhf.eval.run import evaluate
from rlhf.stages.context import RunContext


def run(ctx: RunContext) -> None:
    ctx.results["eval"] = evaluate(ctx)
