"""The preference build against vLLM's own OpenAI-compatible server (the CPU build) on loopback,
serving the project's tiny model: real transport, concurrency, over-long requests (HTTP 400) and a
judge whose answers are garbage (a random tiny model cannot rate) recorded as unscored."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from rlhf.config import TinyModelConfig, validate
from rlhf.data.counsel_chat import read_questions
from rlhf.prefs.build import build_preferences
from rlhf.prefs.judge import PRINCIPLES, parse
from tests.test_prefs_support import run_config

REPO = Path(__file__).resolve().parent.parent
CONTEXT = 2048  # the tiny model is built with this many positions so the judge prompt fits


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    """(base_url, model name); the server and its temp files go away afterwards."""
    from rlhf.models.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("vllm-server")
    questions = read_questions(REPO / "data/counsel-chat/counsel_chat.csv", "train")
    texts = [q.speech.text for q in questions] + [a.text for q in questions for a in q.answers]
    model_dir = build_tiny_model(root / "tiny", texts, TinyModelConfig(max_position_embeddings=CONTEXT), seed=0)
    port = free_port()
    env = {**os.environ, "TMPDIR": str(root), "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1",
           "VLLM_CPU_OMP_THREADS_BIND": "nobind", "VLLM_LOGGING_LEVEL": "WARNING"}
    log = open(root / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
                             "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
                             "--max-model-len", str(CONTEXT), "--enforce-eager"],
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 240
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM server exited with {proc.returncode}: {(root / 'server.log').read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/models", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.time() > deadline:
                pytest.fail("vLLM server did not start within 240 s")
            time.sleep(1)
        yield url, str(model_dir)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def speeches_csv(path: Path, n: int) -> None:
    import csv

    questions = [q for q in read_questions(REPO / "data/counsel-chat/counsel_chat.csv", "val")
                 if 100 <= len(q.speech.text) <= 600][:n]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sid", "body", "theme"])
        for q in questions:
            writer.writerow([q.speech.id, q.speech.text, q.speech.topic])


def test_build_against_vllm_openai_server(vllm_server, tmp_path):
    url, model = vllm_server
    speeches_csv(tmp_path / "s.csv", 6)
    run = run_config(tmp_path / "s.csv", url, responders=3, per_speech=3, concurrency=3, max_attempts=2)
    for i, responder in enumerate(run.prefs.responders):
        responder.model, responder.temperature, responder.max_tokens = model, 0.7 + 0.3 * i, 48
    run.prefs.responders[2].max_tokens = 4 * CONTEXT  # longer than the context: vLLM answers 400
    run.prefs.judge.model, run.prefs.judge.max_tokens, run.prefs.judge.json_mode = model, 64, True
    validate(run)
    summary = build_preferences(run, tmp_path / "out", None, Path, None)
    counts, calls = summary["counts"], summary["calls"]
    assert counts["responses_planned"] == 18 and counts["responses_failed"] == 0
    assert counts["responses_new"] == 12 and counts["responses_unanswerable"] == 6  # r2's requests: HTTP 400
    assert calls["responders"]["r2"]["failed"] == 6 and calls["responders"]["r0"]["succeeded"] == 6
    responses = [json.loads(line) for line in (tmp_path / "out" / "responses.jsonl").read_text().splitlines()]
    assert all((r["text"] is None) == (r["responder"] == "r2") for r in responses)
    assert {r["error"] for r in responses if r["text"] is None} == {"HTTP 400 from the endpoint"}
    # every answered response was judged; each judgement either passed the strict check or is unscored
    judgements = [json.loads(line) for line in (tmp_path / "out" / "judgements.jsonl").read_text().splitlines()]
    assert len(judgements) == 12 and counts["judgements_failed"] == 0
    for record in judgements:
        if record["ratings"] is None:
            assert record["reason"] and record["attempts"] == 2
        else:  # not expected from a random model, but a valid answer must be exactly what parse accepts
            assert parse(record["raw"])[0] == record["ratings"] and set(record["ratings"]) == set(PRINCIPLES)
    assert counts["scored"] + counts["unscored"] == 12
    assert calls["judge"]["calls"] == 12 + counts["unscored"]  # a repair attempt for every unusable first answer
    # a rerun of the finished build asks the server nothing
    rerun = build_preferences(run, tmp_path / "out", None, Path, None)
    assert rerun["calls"]["judge"]["calls"] == 0 and sum(c["calls"] for c in rerun["calls"]["responders"].values()) == 0
