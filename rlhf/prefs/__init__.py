"""Preference-data builder (the first half of the PsychoCounsel recipe):
client speeches -> a pool of responders -> a seven-principle judge -> preference pairs in the
PsychoCounsel-Preference Parquet schema, which the reward stage reads (data.preference_path).

Modules: speeches (read + clean), chat (one interface over OpenAI-compatible endpoints and local
vLLM generator actors), responders, judge (+ the versioned prompt file), store (append-only
durable records), pairs (scores, train/test pairs, Parquet), build (orchestration)."""
