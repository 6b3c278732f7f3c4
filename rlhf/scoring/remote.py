"""Client for a reward server speaking OpenRLHF's HTTP API (POST /get_reward).

Request: {"query": [chat text, ...]}; answer: {"rewards": [float, ...]} in the same order.
Retries timeouts, connection errors, 429 and 5xx with exponential backoff (rlhf.retry), waiting as
long as a Retry-After header asks (at most one request's timeout); other errors are final. Every
error names the URL and what was wrong; the API key never appears in one, nor in the log.
"""

from __future__ import annotations

import logging
import math

import requests

from rlhf.retry import Backoff, GaveUp, Transient, retry_after_s, with_retries

log = logging.getLogger(__name__)


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
        self._secret = api_key or None  # only to scrub it from server text quoted in errors
        if api_key:  # sent as a header only; never stored elsewhere or logged
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def __repr__(self) -> str:
        return f"RemoteRewardClient(url={self.url!r})"

    def get_rewards(self, texts: list[str]) -> list[float]:
        rewards: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            rewards += self._post(texts[start : start + self.batch_size])
        return rewards

    def _quote(self, text: str) -> str:
        """The start of a server's answer for an error message, without our key: a server or a proxy
        that echoes the request (some do, in their error pages) would otherwise put it in our logs."""
        if self._secret:  # scrubbed before the cut, which could otherwise keep part of it
            text = text.replace(self._secret, "<api key>")
        return text[:200]

    def _rewards(self, response: requests.Response, count: int) -> list[float]:
        try:
            rewards = response.json().get("rewards")
        except (ValueError, AttributeError):  # not JSON, or JSON that is not an object
            raise RemoteRewardError(
                f"{self.url}: the answer is not a JSON object with 'rewards': {self._quote(response.text)!r}"
            ) from None
        if not isinstance(rewards, list) or len(rewards) != count:
            got = f"{len(rewards)}" if isinstance(rewards, list) else "none"
            raise RemoteRewardError(
                f"{self.url}: sent {count} texts, got {got} rewards back "
                f"(a server must answer one reward per text, in order): {self._quote(str(rewards))}"
            )
        try:
            values = [float(r[0] if isinstance(r, list) else r) for r in rewards]
        except (TypeError, ValueError, IndexError):
            raise RemoteRewardError(f"{self.url}: rewards are not all numbers: {self._quote(str(rewards))}") from None
        if not all(math.isfinite(v) for v in values):
            raise RemoteRewardError(f"{self.url}: rewards include NaN or infinity: {self._quote(str(rewards))}")
        return values

    def _post(self, texts: list[str]) -> list[float]:
        def attempt() -> list[float]:
            try:
                response = self.session.post(self.url, json={"query": texts}, timeout=self.timeout_s)
            except (requests.Timeout, requests.ConnectionError) as err:
                raise Transient(type(err).__name__) from None
            if response.status_code == 429 or response.status_code >= 500:
                raise Transient(f"HTTP {response.status_code}", retry_after_s(response.headers))
            if response.status_code != 200:
                raise RemoteRewardError(f"{self.url}: HTTP {response.status_code}: {self._quote(response.text)}")
            return self._rewards(response, len(texts))

        def retrying(err: Transient) -> None:
            log.warning("reward server %s: %s; retrying", self.url, err.reason)

        # a server's Retry-After is honoured up to one request's timeout, so it cannot stall a round
        backoff = Backoff(self.backoff_s, max_s=max(self.timeout_s, self.backoff_s))
        try:
            return with_retries(attempt, retries=self.retries, backoff=backoff, on_retry=retrying)
        except GaveUp as err:
            raise RemoteRewardError(
                f"{self.url}: no answer after {err.attempts} attempts (last: {err.reason})"
            ) from None
