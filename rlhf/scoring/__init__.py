"""Scoring: the reward of each (speech, response), from a reward source (sources: reward-model actors,
a /get_reward server, a Python function), and the reward server that serves our models."""
