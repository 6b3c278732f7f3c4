"""The /get_reward client against a real HTTP server on loopback that answers from a script:
429 and 5xx are retried (Retry-After honoured) until the retries run out, a wrong answer is a clear
error at once, and the API key reaches the server as a header but no error message or log line."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rlhf.scoring.remote import RemoteRewardClient, RemoteRewardError

KEY = "sk-Zq7vN3xK9pL2wR5t"


class ScriptedServer:
    """Answers each POST with the next scripted (status, headers, body); once the script is used
    up, with one reward per text. Records every request it gets (time, headers, texts)."""

    def __init__(self, script: list[tuple[int, dict, object]] | None = None):
        self.script, self.requests = list(script or []), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                texts = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["query"]
                outer.requests.append({"time": time.monotonic(), "headers": dict(self.headers), "texts": texts})
                status, headers, body = (
                    outer.script.pop(0) if outer.script else (200, {}, {"rewards": [float(len(t)) for t in texts]})
                )
                if callable(body):  # answers built from the request (an echo)
                    body = body(self.headers, texts)
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):  # the test reads the records, not stderr
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/get_reward"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self.thread.start()  # the socket listens from construction on: no wait needed
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def client(url: str, **kwargs) -> RemoteRewardClient:
    return RemoteRewardClient(url, **{"retries": 2, "backoff_s": 0.01, "timeout_s": 10, **kwargs})


def echo_headers(headers, texts) -> bytes:
    """A server (or proxy) that quotes the request's headers in its error page."""
    return f"refused: Authorization: {headers['Authorization']}; all headers: {dict(headers)}".encode()


def test_a_429_is_retried_after_the_wait_the_server_asks_for():
    with ScriptedServer([(429, {"Retry-After": "1"}, {"error": "slow down"})]) as server:
        assert client(server.url).get_rewards(["ab", "abcd"]) == [2.0, 4.0]
    first, second = server.requests
    assert first["texts"] == second["texts"] == ["ab", "abcd"]
    # the client's own backoff is 0.01 s: only the server's Retry-After explains a second's wait
    assert second["time"] - first["time"] >= 0.9


def test_a_5xx_is_retried_and_a_server_that_stays_down_is_a_clear_error():
    with ScriptedServer([(503, {}, {}), (500, {}, {})]) as server:
        assert client(server.url).get_rewards(["abc"]) == [3.0]
    assert len(server.requests) == 3

    down = [(503, {}, {}), (502, {}, {}), (500, {}, {"detail": "out of memory"})]
    with ScriptedServer(down) as server, pytest.raises(RemoteRewardError) as err:
        client(server.url).get_rewards(["abc"])
    assert len(server.requests) == 3  # 1 + retries=2, then it gave up
    assert str(err.value) == f"{server.url}: no answer after 3 attempts (last: HTTP 500)"


@pytest.mark.parametrize(
    "body, message",
    [
        ({"rewards": [1.0]}, "sent 2 texts, got 1 rewards back"),
        ({"rewards": [1.0, 2.0, 3.0]}, "sent 2 texts, got 3 rewards back"),
        ({"scores": [1.0, 2.0]}, "sent 2 texts, got none rewards back"),
        ({"rewards": [1.0, "high"]}, "rewards are not all numbers"),
        ({"rewards": [1.0, float("nan")]}, "rewards include NaN or infinity"),
        (b"<html>502 Bad Gateway</html>", "the answer is not a JSON object with 'rewards'"),
        ([1.0, 2.0], "the answer is not a JSON object with 'rewards'"),
    ],
)
def test_a_wrong_answer_is_a_clear_error_and_not_retried(body, message):
    with ScriptedServer([(200, {}, body)]) as server, pytest.raises(RemoteRewardError) as err:
        client(server.url).get_rewards(["a", "b"])
    assert str(err.value).startswith(f"{server.url}: {message}"), str(err.value)
    assert len(server.requests) == 1


def test_the_key_is_sent_as_a_header_and_never_reaches_an_error_or_the_log(caplog):
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's request lines included
    script = [(429, {}, {}), (503, {}, {}), (401, {}, echo_headers)]
    with ScriptedServer(script) as server, pytest.raises(RemoteRewardError) as refused:
        client(server.url, api_key=KEY).get_rewards(["I feel alone."])
    assert [r["headers"]["Authorization"] for r in server.requests] == [f"Bearer {KEY}"] * 3
    assert "HTTP 401" in str(refused.value) and "<api key>" in str(refused.value)  # the echo, scrubbed

    with ScriptedServer([(500, {}, echo_headers)] * 3) as server, pytest.raises(RemoteRewardError) as gave_up:
        client(server.url, api_key=KEY).get_rewards(["I feel alone."])
    with ScriptedServer([(200, {}, echo_headers)]) as server, pytest.raises(RemoteRewardError) as not_json:
        client(server.url, api_key=KEY).get_rewards(["I feel alone."])

    retries = [r for r in caplog.records if r.name == "rlhf.scoring.remote"]
    assert [r.getMessage().split(": ", 1)[1] for r in retries[:2]] == ["HTTP 429; retrying", "HTTP 503; retrying"]
    seen = [str(e.value) for e in (refused, gave_up, not_json)] + [caplog.text]
    seen += [repr(e.value.__cause__) + repr(e.value.__context__) for e in (refused, gave_up, not_json)]
    pieces = [KEY[i : i + 6] for i in range(len(KEY) - 5)]  # a key cut short leaks too
    assert not [text for text in seen if any(piece in text for piece in pieces)]


def test_retry_after_is_read_in_each_of_its_forms():
    from email.utils import formatdate

    from rlhf.retry import retry_after_s

    assert retry_after_s({"Retry-After": "3"}) == 3.0
    assert retry_after_s({"retry-after-ms": "250", "Retry-After": "9"}) == 0.25  # the finer one first
    assert 25 <= retry_after_s({"Retry-After": formatdate(time.time() + 30, usegmt=True)}) <= 30
    assert retry_after_s({"Retry-After": formatdate(time.time() - 30, usegmt=True)}) == 0.0  # already past
    assert retry_after_s({"Retry-After": "soon"}) is None and retry_after_s({}) is None and retry_after_s(None) is None
