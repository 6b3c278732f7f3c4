"""Weight sync: move the trainer's new policy weights into every vLLM generator, without disk."""
