"""Model building and loading: the tiny local model, reward models (ours and OpenRLHF's format)."""
