"""Preference-data builder (the first half of the PsychoCounsel recipe):
client speeches -> a pool of responders -> a seven-principle judge -> preference pairs in the
PsychoCounsel-Preference Parquet schema, which the reward stage reads (data.preference_path).

Modules: speeches (read + clean), responders, judge (+ the versioned prompt file), store
(append-only durable records), build (orchestration), report (summary, judge check), checks (the
prefs config section). Chat backends are rlhf.chat; the pairs and their Parquet files rlhf.pairs."""
