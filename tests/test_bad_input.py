"""Bad input gives a clear error naming the file and line (or the config key) and what to do,
never a traceback. File readers are checked directly; config and model mistakes through the launch
module's own functions, in this process; one test runs the CLI for its contract: exit status 2 and
the message on stderr."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from rlhf.config import ConfigError
from rlhf.data import counsel_chat
from rlhf.data.errors import DataError
from rlhf.launch import check_overrides, execute
from rlhf.training.batching import Encoder
from tests.conftest import REPO_ROOT, compose

HEADER = "questionID,questionTitle,questionText,topic,answerText,upvotes,views,split\n"


@pytest.mark.parametrize("content, expected", [
    (b"", "cc.csv:1: empty file"),
    (HEADER.replace(",topic", "").encode(), "cc.csv:1: missing column(s) ['topic']"),
    ((HEADER + '1,T,"unterminated,x,a,1,1,train\n2,T,Q,x,a,1,1,train\n').encode(), "cc.csv:2: broken"),
    ((HEADER + "1,T,Q,x,a,1,1,train,extra\n").encode(), "cc.csv:2: broken row"),
    ((HEADER + "1,T,Q,x,a,1,1,train\n2,T,caf\xe9,x,a,1,1,train\n").encode("latin-1"), "cc.csv:3: not UTF-8"),
    ((HEADER + "1,,,x,a,1,1,train\n").encode(), "cc.csv:2: question 1 has an empty speech"),
])
def test_counsel_chat_file_errors(tmp_path, content, expected):
    path = tmp_path / "cc.csv"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        counsel_chat.read_questions(path, "train")
    assert expected in str(err.value)


def test_a_one_megabyte_speech_is_read_and_cut_to_the_token_budget(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    huge = "I feel lost and alone. " * 45_000  # ~1 MB
    path = tmp_path / "cc.csv"
    path.write_text(HEADER + f'1,Title,"{huge}",x,answer,1,1,train\n', encoding="utf-8")
    (question,) = counsel_chat.read_questions(path, "train")
    assert len(question.speech.text) > 1_000_000
    encoder = Encoder(AutoTokenizer.from_pretrained(tiny_model_dir), "Be kind.", 192, 64)
    assert len(encoder.prompt(question.speech.text)) <= 192


def launch_error(args: list[str], capsys) -> str:
    """What `python -m rlhf.launch ARGS` reports, found in this process: the override check the CLI
    runs before Hydra (exit status 2, the message on stderr), then the job's config and data checks
    (ConfigError / DataError, which the CLI turns into exit status 2). Nothing may have started Ray."""
    import ray

    try:
        check_overrides(args)
    except SystemExit as stop:
        assert stop.code == 2
        return capsys.readouterr().err
    with pytest.raises((ConfigError, DataError)) as err:
        execute(compose(args))
    assert not ray.is_initialized(), "the mistake was found only after Ray started"
    return str(err.value)


@pytest.mark.parametrize("args, expected", [
    (["online.rounds=three"], "online.rounds"),
    (["model.path=???", "stage=sft"], "missing required value(s): model.path"),
    (["stage=sft", "model.path=/no/such/model"], "/no/such/model: model directory not found"),
    (["data.path=/no/such.csv"], "/no/such.csv: file not found"),
])
def test_launch_mistakes_are_named(tmp_path, capsys, args, expected):
    assert expected in launch_error([f"run_dir={tmp_path}/r", *args], capsys)


def test_a_tokenizer_without_chat_template_is_refused(tmp_path, tiny_model_dir, capsys):
    model = tmp_path / "no-template"
    shutil.copytree(tiny_model_dir, model)
    (model / "chat_template.jinja").unlink(missing_ok=True)
    config = model / "tokenizer_config.json"
    config.write_text(config.read_text().replace('"chat_template"', '"unused_template"'))
    message = launch_error([f"run_dir={tmp_path}/r", "stage=sft", f"model.path={model}"], capsys)
    assert "the tokenizer has no chat template" in message and str(model) in message


def run_cli(args: list[str]) -> subprocess.CompletedProcess:
    scratch = tempfile.mkdtemp(prefix="rl", dir="/tmp")  # short: Ray's socket paths (should it start)
    try:
        return subprocess.run([sys.executable, "-m", "rlhf.launch", *args], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=600, env=dict(os.environ, TMPDIR=scratch, WANDB_MODE="disabled"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_the_cli_exits_2_with_the_message_on_stderr(tmp_path):
    """The exit-code contract, through the real entry point (Hydra's job logging included): a
    mistake the job finds gives status 2 and `error: <message>` on stderr, no traceback, no run."""
    proc = run_cli([f"run_dir={tmp_path}/r", "data.path=/no/such.csv"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error: /no/such.csv: file not found" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r" / "run_summary.json").exists()
