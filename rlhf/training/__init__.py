"""Training: the loss registry, batching, the DeepSpeed ZeRO-3 trainer ranks and their group, the
step loop of the step-based stages, and the checks of the training config sections."""
