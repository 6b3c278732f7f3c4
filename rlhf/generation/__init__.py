"""Generation: vLLM engines in Ray actors sample K responses per client speech."""
