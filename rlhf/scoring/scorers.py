"""The scorers the built-in reward sources start (rlhf.scoring.sources): each has
`score([(speech, response), ...]) -> [reward, ...]`, `recover(error)` and `shutdown()`."""

from __future__ import annotations

from rlhf.scoring.remote import RemoteRewardClient


class ActorScorer:
    """Reward actors (a Ray worker group); items are split evenly among them."""

    def __init__(self, group):
        self.group = group

    def score(self, items: list[tuple[str, str]]) -> list[float]:
        import ray

        count = len(self.group.actors)
        chunks = [items[i::count] for i in range(count)]
        results = ray.get([actor.score.remote(chunk) for actor, chunk in zip(self.group.actors, chunks)])
        rewards = [0.0] * len(items)
        for offset, result in enumerate(results):
            rewards[offset::count] = result
        return rewards

    def recover(self, error: Exception) -> bool:
        """A reward actor died: wait until Ray has restarted it (it holds nothing beyond its checkpoint)."""
        from rlhf.workers.group import ACTOR_FAILURES

        if not self.group.dead() and not isinstance(error, ACTOR_FAILURES):
            return False  # nobody died: a real error
        self.group.wait_alive()
        return True

    def shutdown(self) -> None:
        self.group.shutdown()


class RemoteScorer:
    """A /get_reward server; texts are built with the policy's chat template."""

    def __init__(self, client: RemoteRewardClient, encoder):
        self.client, self.encoder = client, encoder

    def score(self, items: list[tuple[str, str]]) -> list[float]:
        return self.client.get_rewards([self.encoder.scoring_text(s, r) for s, r in items])

    def recover(self, error: Exception) -> bool:
        return False  # the client retried already; a server that stays down is an error

    def shutdown(self) -> None:
        pass
