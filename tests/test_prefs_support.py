"""Shared pieces of the preference-builder tests (no tests here): a small OpenAI-compatible chat
server on loopback whose answers each test scripts, a deterministic stand-in for responders and
the judge, and config helpers."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from rlhf.config import JudgeConfig, PrefsConfig, ResponderConfig, RunConfig, SpeechColumns, SpeechSourceConfig
from rlhf.prefs.judge import DEFAULT_PROMPT, PRINCIPLES

JUDGE_SYSTEM = DEFAULT_PROMPT.read_text(encoding="utf-8").strip()


def completion(text: str, model: str = "fake") -> dict:
    return {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


def is_judge(body: dict) -> bool:
    return body["messages"][0]["role"] == "system" and body["messages"][0]["content"] == JUDGE_SYSTEM


def honest_answer(body: dict, number: int = 0) -> tuple[int, dict, dict]:
    """A deterministic responder (text from model + speech) and judge (ratings from the response)."""
    if is_judge(body):
        data = json.loads(body["messages"][1]["content"])
        h = digest(data["counsellor_response"])
        ratings = {p: 1 + (h >> (3 * i)) % 5 for i, p in enumerate(PRINCIPLES)}
        return 200, completion(json.dumps(ratings)), {}
    speech = body["messages"][-1]["content"]
    return 200, completion(f"{body['model']} hears you ({digest(speech) % 10 ** 6}). What feels hardest right now?"), {}


class FakeOpenAI:
    """POST /v1/chat/completions answered by `script(body, number)` -> (status, json, headers),
    run in a worker thread (a script may sleep); every request body is kept (in order) for
    assertions. Runs uvicorn in a thread."""

    def __init__(self, script=honest_answer, delay_s: float = 0.0):
        self.script, self.delay_s = script, delay_s
        self.requests: list[dict] = []
        self.auth: list[str | None] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            body = await request.json()
            with self.lock:
                self.requests.append(body)
                self.auth.append(request.headers.get("authorization"))
                number = len(self.requests)
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                if self.delay_s:
                    import asyncio

                    await asyncio.sleep(self.delay_s)
                status, payload, headers = await run_in_threadpool(self.script, body, number)
            finally:
                with self.lock:
                    self.in_flight -= 1
            return JSONResponse(payload, status_code=status, headers=headers)

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("fake server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()

    def count(self, judge: bool | None = None) -> int:
        with self.lock:
            return sum(1 for b in self.requests if judge is None or is_judge(b) == judge)


class Gate:
    """A script that answers the first `answer` requests of one kind (judge or responder; the other
    kind always) and holds every later one until `release()`: a build run against it cannot finish
    that phase, so a test can kill it mid-phase however slowly the machine runs."""

    def __init__(self, answer: int, judge: bool):
        self.left, self.judge = answer, judge
        self.lock = threading.Lock()
        self.released = threading.Event()

    def __call__(self, body: dict, number: int):
        if is_judge(body) == self.judge:
            with self.lock:
                self.left -= 1
                hold = self.left < 0
            if hold:
                self.released.wait(timeout=300)  # bounded: a forgotten release cannot hang the server
        return honest_answer(body, number)

    def release(self) -> None:
        self.released.set()


class Overlap:
    """A script that holds requests until `widths[kind]` of that kind (True: judge, False: responder)
    are in flight at once, then answers every one: a client that sends that many concurrently gets
    through, whatever the load, and `most` records how many were in flight together. When the first
    `width` are in, they stay held up to `grace_s` longer, so a client sending more than `width` at
    once shows it (a correct one just waits that once). A client that never sends `width` at once
    waits `deadline_s` once (then the gate opens) and `most` shows it."""

    def __init__(self, widths: dict[bool, int], deadline_s: float = 60, grace_s: float = 0.5):
        self.widths, self.deadline_s, self.grace_s = widths, deadline_s, grace_s
        self.lock = threading.Lock()
        self.now = dict.fromkeys(widths, 0)
        self.most = dict.fromkeys(widths, 0)
        self.full = {kind: threading.Event() for kind in widths}
        self.over = {kind: threading.Event() for kind in widths}
        self.filling: set[bool] = set()
        self.deadline: dict[bool, float] = {}

    def __call__(self, body: dict, number: int):
        kind = is_judge(body)
        with self.lock:
            self.now[kind] += 1
            self.most[kind] = max(self.most[kind], self.now[kind])
            if self.now[kind] > self.widths[kind]:
                self.over[kind].set()
            fills = self.now[kind] >= self.widths[kind] and kind not in self.filling
            if fills:
                self.filling.add(kind)
            wait = self.deadline.setdefault(kind, time.monotonic() + self.deadline_s) - time.monotonic()
        try:
            if fills:
                self.over[kind].wait(timeout=self.grace_s)  # one more arriving now: the bound was exceeded
                self.full[kind].set()
            if not self.full[kind].wait(timeout=max(wait, 0)):
                self.full[kind].set()  # never reached: stop holding, the test fails on `most`
            return honest_answer(body, number)
        finally:
            with self.lock:
                self.now[kind] -= 1


def write_speeches_csv(path, n: int, extra: list[str] = ()) -> list[str]:
    """n distinct speeches of 150-400 characters (plus `extra` ones) as a CSV with id/topic."""
    import csv

    texts = [f"Speech {i}: " + " ".join(["I have been feeling anxious and tired at work, and I cannot sleep."] * (2 + i % 4))
             for i in range(n)] + list(extra)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sid", "body", "theme"])
        for i, text in enumerate(texts):
            writer.writerow([f"s{i}", text, "anxiety"])
    return texts


def run_config(speeches_path, url: str, *, responders: int = 3, per_speech: int = 3, max_retries: int = 2,
               concurrency: int = 4, judge_url: str | None = None, max_attempts: int = 2, **prefs) -> RunConfig:
    run = RunConfig(stage="build_prefs")
    run.prefs = PrefsConfig(
        speeches=SpeechSourceConfig(path=str(speeches_path), columns=SpeechColumns(text="body", title=None, id="sid",
                                                                                   topic="theme")),
        responders=[ResponderConfig(name=f"r{i}", backend="openai", base_url=url, model=f"model-{i}", temperature=0.7,
                                    max_retries=max_retries, concurrency=concurrency, timeout_s=10)
                    for i in range(responders)],
        responders_per_speech=per_speech,
        judge=JudgeConfig(backend="openai", base_url=judge_url or url, model="judge", max_attempts=max_attempts,
                          max_retries=max_retries, concurrency=concurrency, timeout_s=10),
        **{"judge_check": 0, **prefs})  # the judge check's extra calls only where a test asks for them
    return run
