"""Client for a reward server speaking OpenRLHF's HTTP API (POST /get_reward).

Request: {"query": [chat text, ...]}; answer: {"rewards": [float, ...]} in the same order.
Retries timeouts, connection errors, 429 and 5xx with exponential backoff (rlhf.retry); other errors are final.
"""

from __future__ import annotations

import requests

from rlhf.retry import Backoff, GaveUp, Transient, with_retries


class RemoteRewardError(RuntimeError):
    pass


class RemoteRewardClient:
    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 32,
        timeout_s: float = 60.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        api_key: str | None = None,
    ):
        self.url, self.batch_size, self.timeout_s = url, batch_size, timeout_s
        self.retries, self.backoff_s = retries, backoff_s
        self.session = requests.Session()
        if api_key:  # sent as a header only; never stored elsewhere or logged
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def __repr__(self) -> str:
        return f"RemoteRewardClient(url={self.url!r})"

    def get_rewards(self, texts: list[str]) -> list[float]:
        rewards: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            rewards += self._post(texts[start : start + self.batch_size])
        return rewards

    def _post(self, texts: list[str]) -> list[float]:
        def attempt() -> list[float]:
            try:
                response = self.session.post(self.url, json={"query": texts}, timeout=self.timeout_s)
            except (requests.Timeout, requests.ConnectionError) as err:
                raise Transient(type(err).__name__) from None
            if response.status_code == 429 or response.status_code >= 500:
                raise Transient(f"HTTP {response.status_code}")
            if response.status_code != 200:
                raise RemoteRewardError(f"{self.url}: HTTP {response.status_code}: {response.text[:200]}")
            rewards = response.json().get("rewards")
            if not isinstance(rewards, list) or len(rewards) != len(texts):
                raise RemoteRewardError(f"{self.url}: expected {len(texts)} rewards, got {str(rewards)[:200]}")
            return [float(r[0] if isinstance(r, list) else r) for r in rewards]

        try:
            return with_retries(attempt, retries=self.retries, backoff=Backoff(self.backoff_s))
        except GaveUp as err:
            raise RemoteRewardError(
                f"{self.url}: no answer after {err.attempts} attempts (last: {err.reason})"
            ) from None
