"""Training: losses, batching, and the DeepSpeed ZeRO-3 trainer actors (SFT, reward model, DPO)."""
