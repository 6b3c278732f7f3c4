"""One retry loop for calls over the network (chat endpoints, reward servers): transient failures
are retried with exponential backoff, honouring a server's Retry-After; other errors end at once."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

T = TypeVar("T")


class Transient(Exception):
    """Raised by an attempt that may succeed when repeated (timeout, 429, 5xx, a dropped connection)."""

    def __init__(self, reason: str, retry_after_s: float | None = None):
        super().__init__(reason)
        self.reason, self.retry_after_s = reason, retry_after_s


class GaveUp(Exception):
    """Every attempt failed transiently."""

    def __init__(self, reason: str, attempts: int):
        super().__init__(f"{reason}; gave up after {attempts} attempts")
        self.reason, self.attempts = reason, attempts


@dataclass(frozen=True)
class Backoff:
    """Waits of base_s, 2 x base_s, 4 x base_s, ... capped at max_s; with `jitter`, each is scaled
    by a random factor in [0.5, 1] so that clients do not retry in lockstep."""

    base_s: float = 1.0
    max_s: float = float("inf")
    jitter: bool = False

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (0-based)."""
        if retry_after_s is not None:  # the server said when: no jitter
            return min(self.max_s, max(0.0, retry_after_s))
        wait = min(self.max_s, self.base_s * 2**attempt)
        return wait * random.uniform(0.5, 1.0) if self.jitter else wait


def retry_after_s(headers) -> float | None:
    """Seconds a server asked us to wait before retrying (`retry-after-ms`, or `Retry-After` as
    seconds or an HTTP date), or None when it did not say or said something unreadable."""
    lowered = {str(name).lower(): value for name, value in (headers or {}).items()}
    for header, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = lowered.get(header)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / scale)
        except (TypeError, ValueError):
            pass
        try:  # Retry-After may also be an HTTP date
            return max(0.0, parsedate_to_datetime(str(value)).timestamp() - time.time())
        except (TypeError, ValueError, IndexError, OverflowError):
            continue
    return None


def with_retries(
    attempt: Callable[[], T],
    *,
    retries: int,
    backoff: Backoff,
    on_retry: Callable[[Transient], None] | None = None,
    sleep=time.sleep,
) -> T:
    """`attempt()`'s result; a `Transient` error is retried up to `retries` more times, then
    `GaveUp` is raised naming the last reason. Any other error propagates at once."""
    last: Transient | None = None
    for number in range(retries + 1):
        try:
            return attempt()
        except Transient as err:
            last = err
            if number < retries:
                if on_retry is not None:
                    on_retry(err)
                sleep(backoff.delay(number, err.retry_after_s))
    raise GaveUp(last.reason if last else "no attempt", retries + 1)
