"""Scoring: reward of each (speech, response), from reward actors or a remote /get_reward server."""
