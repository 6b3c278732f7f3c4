"""reward=remote inside the online rounds, for real: `python -m rlhf.scoring.server` serves an
OpenRLHF-format reward checkpoint in a process of its own, a proxy in front of it answers the first
request 429 (Retry-After) and the second 503, and `python -m rlhf.launch` runs one online round
through it (vLLM, DeepSpeed, Ray). The round completes, its rewards are the server's, and the API
key reaches the server as a header but nothing the run writes or prints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO_ROOT
from tests.test_reward_openrlhf import write_openrlhf_checkpoint

KEY_ENV, KEY = "RLHF_TEST_REWARD_TOKEN", "rk-Hq4mT8zW2nV6cY1p"
SPEECHES, SAMPLES = 4, 2


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def reward_server(tiny_model_dir, tmp_path_factory):
    """The reward server CLI on a checkpoint in OpenRLHF's format; yields its base URL once /health
    answers (or fails with the server's output if it exits first)."""
    model = write_openrlhf_checkpoint(tiny_model_dir, tmp_path_factory.mktemp("served-rm"))
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "rlhf.scoring.server", "--model", str(model), "--port",
                                 str(port), "--batch-size", "4"], cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            assert proc.poll() is None, f"the reward server exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"the reward server never answered: {log.read_text()[-3000:]}"
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)  # not listening yet: poll again
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class FaultyProxy:
    """Forwards POST /get_reward to the server, except that it answers the first request 429 with
    Retry-After and the second 503. Records each request: what it answered, the Authorization
    header, how many texts it carried and the rewards it returned."""

    def __init__(self, upstream: str):
        self.records: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                number = len(outer.records) + 1
                record = {"auth": self.headers.get("Authorization"), "texts": len(json.loads(body)["query"])}
                if number == 1:
                    status, headers, raw = 429, {"Retry-After": "1"}, b'{"detail": "rate limited"}'
                elif number == 2:
                    status, headers, raw = 503, {}, b'{"detail": "overloaded"}'
                else:
                    answer = requests.post(f"{upstream}/get_reward", data=body, timeout=120,
                                           headers={"Content-Type": "application/json"})
                    status, headers, raw = answer.status_code, {}, answer.content
                    record["rewards"] = answer.json().get("rewards")
                outer.records.append({**record, "status": status})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/get_reward"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def remote_run(reward_server, tiny_model_dir, tmp_path_factory) -> dict:
    proxy = FaultyProxy(reward_server)
    run_dir = tmp_path_factory.mktemp("remote") / "run"
    env = dict(os.environ, TMPDIR=tempfile.mkdtemp(prefix="rl", dir="/tmp"), WANDB_MODE="offline")
    env[KEY_ENV] = KEY
    env.pop("WANDB_API_KEY", None)
    args = [f"run_dir={run_dir}", "stage=online_dpo", f"model.path={tiny_model_dir}", "reward=remote",
            f"reward.url={proxy.url}", f"reward.api_key_env={KEY_ENV}", "reward.batch_size=4", "online.rounds=1",
            f"online.speeches_per_round={SPEECHES}", f"online.samples_per_speech={SAMPLES}",
            "online.min_reward_gap=0.0", "eval.every_rounds=0", "eval.outcome=false", "tracking.wandb=true"]
    try:
        proc = subprocess.run([sys.executable, "-m", "rlhf.launch", *args], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=900)
    finally:
        proxy.close()
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return {"run_dir": run_dir, "proc": proc, "records": proxy.records}


def test_the_round_completes_through_429_and_503(remote_run):
    records = remote_run["records"]
    assert [r["status"] for r in records[:2]] == [429, 503]
    assert all(r["status"] == 200 for r in records[2:])
    console = remote_run["proc"].stdout + remote_run["proc"].stderr
    assert "HTTP 429; retrying" in console and "HTTP 503; retrying" in console
    summary = json.loads((remote_run["run_dir"] / "run_summary.json").read_text())
    assert summary["rounds_completed"] == 1


def test_the_rounds_rewards_are_the_servers(remote_run):
    served = [r for r in remote_run["records"] if r["status"] == 200]
    # the refused batch was sent again: every text of the round was scored once by the server
    assert sum(r["texts"] for r in served) == SPEECHES * SAMPLES
    rewards = [value for r in served for value in r["rewards"]]
    (record,) = [json.loads(line) for line in (remote_run["run_dir"] / "metrics.jsonl").read_text().splitlines()]
    assert record["samples"] == SPEECHES * SAMPLES
    assert record["reward_mean"] == pytest.approx(sum(rewards) / len(rewards), abs=1e-9)
    assert len(set(rewards)) > 1  # a real model's scores, not a constant


def test_the_key_is_sent_and_never_written_or_printed(remote_run):
    assert {r["auth"] for r in remote_run["records"]} == {f"Bearer {KEY}"}
    proc, run_dir = remote_run["proc"], remote_run["run_dir"]
    written = [p for p in Path(run_dir).rglob("*") if p.is_file()]
    assert any(p.name == "launch.log" for p in written) and any("wandb" in p.parts for p in written)
    assert any(p.parent.name == ".hydra" for p in written)
    leaks = [str(p) for p in written if KEY.encode() in p.read_bytes()]
    leaks += [name for name, text in (("stdout", proc.stdout), ("stderr", proc.stderr)) if KEY in text]
    assert not leaks
    config = json.loads((run_dir / "run_summary.json").read_text())["config"]["reward"]
    assert config["api_key_env"] == KEY_ENV  # the variable's name is recorded, its value is not
