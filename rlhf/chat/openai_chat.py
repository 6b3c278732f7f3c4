"""An OpenAI-compatible chat endpoint (GPT-4o, a vLLM server, ...) through the official `openai`
client, with bounded concurrency and our own counted retries (rlhf.retry)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from rlhf.chat.api import CallStats, ChatRequest, ChatResult
from rlhf.errors import ConfigError
from rlhf.retry import Backoff, GaveUp, Transient, retry_after_s, with_retries


def retry_after(err) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms or Retry-After), if it said."""
    return retry_after_s(getattr(getattr(err, "response", None), "headers", None))


class OpenAIChat:
    """An OpenAI-compatible chat endpoint. The API key is read from the environment variable whose
    NAME is configured; it is passed to the client and never logged or written anywhere.

    Timeouts, connection errors, 408, 409, 429 and 5xx are retried with exponential backoff and jitter
    (honouring Retry-After), up to `max_retries` times; 401/403/404 stop the build with a
    ConfigError (wrong key, URL or model); other 4xx fail that request only."""

    def __init__(
        self,
        label: str,
        base_url: str,
        model: str,
        api_key_env: str | None,
        *,
        timeout_s: float,
        max_retries: int,
        concurrency: int,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
    ):
        import openai

        if not base_url:
            raise ConfigError(f"{label}: backend=openai needs base_url (e.g. http://127.0.0.1:8000/v1)")
        if not model:
            raise ConfigError(f"{label}: backend=openai needs model (the endpoint's model name)")
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise ConfigError(f"{label}: environment variable {api_key_env} (api_key_env) is not set or empty")
        else:
            key = "EMPTY"  # servers without authentication (a local vLLM server) ignore it
        self.label, self.base_url, self.model = label, base_url, model
        self.max_retries, self.concurrency = max_retries, max(1, concurrency)
        self.backoff = Backoff(backoff_s, max_backoff_s, jitter=True)
        self.stats = CallStats()
        self._openai = openai
        # Retries are ours (counted, with backoff); the client's own are off.
        self.client = openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout_s, max_retries=0)

    def describe(self) -> dict:
        return {"backend": "openai", "base_url": self.base_url, "model": self.model}

    def complete(self, request: ChatRequest) -> ChatResult:
        self.stats.add(calls=1)
        try:
            result = with_retries(
                lambda: self._attempt(request),
                retries=self.max_retries,
                backoff=self.backoff,
                on_retry=lambda _: self.stats.add(retries=1),
            )
        except GaveUp as err:
            self.stats.add(failed=1)
            return ChatResult(error=str(err))
        self.stats.add(**{"succeeded" if result.text is not None else "failed": 1})
        return result

    def _attempt(self, request: ChatRequest) -> ChatResult:
        """One request: a result, a `Transient` error to retry, or a ConfigError (wrong key, URL, model)."""
        openai = self._openai
        extra = {"response_format": {"type": "json_object"}} if request.json_mode else {}
        try:
            reply = self.client.chat.completions.create(
                model=self.model,
                messages=list(request.messages),
                temperature=request.temperature,
                top_p=request.top_p,
                max_tokens=request.max_tokens,
                **extra,
            )
        except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as err:
            raise ConfigError(
                f"{self.label}: {self.base_url} refused the request with HTTP {err.status_code} "
                f"(check base_url, model={self.model!r} and the API key variable)"
            ) from None
        except openai.RateLimitError as err:
            self.stats.add(rate_limited=1)
            raise Transient("rate limited (429)", retry_after(err)) from None
        except openai.InternalServerError as err:
            self.stats.add(server_errors=1)
            raise Transient(f"server error ({err.status_code})", retry_after(err)) from None
        except openai.APITimeoutError:  # a subclass of APIConnectionError: test it first
            self.stats.add(timeouts=1)
            raise Transient("timed out") from None
        except openai.APIConnectionError:
            self.stats.add(connection_errors=1)
            raise Transient("connection error") from None
        except openai.APIStatusError as err:
            if err.status_code not in (408, 409):  # other 4xx: this request is at fault (e.g. too long)
                return ChatResult(error=f"HTTP {err.status_code} from the endpoint", permanent=True)
            self.stats.add(server_errors=1)  # request timeout / conflict: transient
            raise Transient(f"HTTP {err.status_code}", retry_after(err)) from None
        text = reply.choices[0].message.content if reply.choices else None
        if text is None:
            return ChatResult(error="the endpoint returned no message content")
        return ChatResult(text=text)

    def complete_many(self, requests: list[ChatRequest], truncate: bool = False) -> Iterator[tuple[int, ChatResult]]:
        """At most `concurrency` requests in flight; results in completion order. (`truncate` is
        for local models; an endpoint answers an over-long prompt with a 400, a permanent error.)"""
        if not requests:
            return
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="chat")
        pending = {}
        queue = iter(enumerate(requests))
        try:
            for index, request in queue:
                pending[pool.submit(self.complete, request)] = index
                if len(pending) >= self.concurrency:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    yield index, future.result()
                    nxt = next(queue, None)
                    if nxt is not None:
                        pending[pool.submit(self.complete, nxt[1])] = nxt[0]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
