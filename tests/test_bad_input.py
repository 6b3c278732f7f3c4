"""Bad input gives a clear error naming the file and line (or the config key) and what to do,
never a traceback. File readers are checked directly; config and model mistakes through the CLI."""

from __future__ import annotations

import shutil

import pytest

from rlhf.data import counsel_chat
from rlhf.data.errors import DataError
from rlhf.training.batching import Encoder
from tests.test_end_to_end import run_launch

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


def cli_error(args: list[str]) -> str:
    proc = run_launch(args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return proc.stderr


@pytest.mark.parametrize("args, expected", [
    (["online.rounds=three"], "online.rounds"),
    (["model.path=???", "stage=sft"], "missing required value(s): model.path"),
    (["stage=sft", "model.path=/no/such/model"], "/no/such/model: model directory not found"),
    (["data.path=/no/such.csv"], "/no/such.csv: file not found"),
])
def test_cli_mistakes_are_reported_without_traceback(tmp_path, args, expected):
    assert expected in cli_error([f"run_dir={tmp_path}/r", *args])


def test_a_tokenizer_without_chat_template_is_refused(tmp_path, tiny_model_dir):
    model = tmp_path / "no-template"
    shutil.copytree(tiny_model_dir, model)
    (model / "chat_template.jinja").unlink(missing_ok=True)
    config = model / "tokenizer_config.json"
    config.write_text(config.read_text().replace('"chat_template"', '"unused_template"'))
    message = cli_error([f"run_dir={tmp_path}/r", "stage=sft", f"model.path={model}"])
    assert "the tokenizer has no chat template" in message and str(model) in message
