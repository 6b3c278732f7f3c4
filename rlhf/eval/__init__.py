"""Evaluation (the second half of the PsychoCounsel recipe): win rates of a policy against a
reference judged by the seven principles (both orders per pair) or by the reward model, absolute
1-5 ratings, reward-model metrics on a preference test split, and a Markdown report with plots.

Modules: stats (bootstrap intervals, ties, position swap), rm_metrics (accuracy, AUC, ECE, Brier),
pairwise (the pairwise principle judge + its versioned prompt), reward_judge (the reward model as
judge), generate (responses from local checkpoints, endpoints or a stored file), run (stage=eval)
with inputs, answers and judging, online (the dev-split hook of the rounds) with online_setup and
online_report, outcome, safety (the probes on every evaluated policy), report, report_sections and
figures (Markdown, PNG, W&B), summary (lines of the run summary), checks (the eval config section)."""
