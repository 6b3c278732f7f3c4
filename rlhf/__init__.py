"""PsychoCounsel-style RLHF on Ray: vLLM generators, reward scorers, DeepSpeed ZeRO-3 trainers.

Data flows through the subpackages in this order:
data -> generation -> scoring -> pairs -> training -> sync -> (eval).
"""

__version__ = "0.1.0"
