"""PsychoCounsel-style RLHF on Ray: vLLM generators, reward scorers, DeepSpeed ZeRO-3 trainers.

`python -m rlhf.launch` composes the config (rlhf.config), and the pipeline (rlhf.pipeline) runs the
configured stages of rlhf.stages on one Ray cluster. Within the online rounds data flows
data -> generation -> scoring -> pairs -> training -> sync, with eval beside them.
CONTRIBUTING.md maps the packages and the ways to extend them.
"""

from rlhf.telemetry import disable_usage_stats

__version__ = "0.1.0"

# Before any module of the package imports Ray or vLLM: every entry point (rlhf.launch, the reward
# server, the benchmark, the node wait) and every actor imports this package first.
disable_usage_stats()
