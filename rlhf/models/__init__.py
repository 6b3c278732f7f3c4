"""Models: the starting model and its tokenizer (base), the tiny local model, GGUF conversion, reward
models (ours and OpenRLHF's format), and the checks of the model config section."""
