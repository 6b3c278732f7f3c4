"""The paper-scale presets (model=llama3_3b, llama3_8b) run what the paper ran, or refuse with a
reason: the reward model needs the preference data, the rounds draw speeches from a source of the
right size (a warning with the numbers when a round repeats speeches), warm-up + cosine schedules,
and the full training state saved every few rounds. Nothing starts: configs and small files only."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from rlhf.config import ConfigError, load_config
from rlhf.data.round_speeches import repeat_warning, report, round_speeches
from rlhf.pairs.parquet import COLUMNS, write_parquet
from rlhf.stages.online_dpo import TrainingStateBehind, recover_trainers, state_due
from rlhf.training.checks import start_errors
from tests.conftest import REPO_ROOT, compose

PAPER = ["device=gpu", "cluster=gpu_2x8"]


def paper(model: str, *overrides: str):
    return load_config(compose([f"model={model}", *PAPER, *overrides]))


@pytest.mark.parametrize("model", ["llama3_3b", "llama3_8b"])
def test_without_preference_data_a_paper_scale_run_refuses_to_start(model):
    errors = start_errors(paper(model))
    assert any(
        "data.preference_path" in e and "counsel-chat upvote pairs" in e and f"model={model}" in e for e in errors
    ), errors
    assert any(e.startswith("online.speech_source=preference_data") for e in errors), errors
    assert start_errors(paper(model, "data.preference_path=prefs.parquet")) == []
    # knowingly on counsel-chat: both settings say so
    assert start_errors(paper(model, "model.require_preference_data=false", "online.speech_source=counsel_chat")) == []
    # a stage that does not train a reward model does not need the pairs
    assert start_errors(paper(model, "stage=sft")) == []


def test_the_refusal_comes_before_anything_is_read_or_started(tmp_path):
    from rlhf.pipeline import Pipeline

    run = paper("llama3_8b", f"run_dir={tmp_path / 'run'}")
    with pytest.raises(ConfigError, match="this run cannot start") as err:
        Pipeline(run, {}).execute()
    assert "data.preference_path" in str(err.value)
    assert not (tmp_path / "run").exists()  # no directory, no model download, no Ray


def test_small_presets_keep_counsel_chat():
    run = load_config(compose([]))
    assert not run.model.require_preference_data and run.online.speech_source == "counsel_chat"
    assert start_errors(run) == []


@pytest.mark.parametrize("model", ["llama3_3b", "llama3_8b"])
def test_paper_presets_schedules_and_state_saving(model):
    run = paper(model, "data.preference_path=prefs.parquet")
    for stage in (run.sft, run.reward_training, run.offline, run.online):
        assert stage.schedule == "cosine" and stage.warmup_steps >= 1
    assert run.online.warmup_steps == 48  # 3% of 16 rounds x 100 steps
    assert run.online.save_state_every == 4 and run.online.speech_source == "preference_data"


def test_state_is_saved_every_n_rounds_and_after_the_last():
    every4 = SimpleNamespace(save_state_every=4, rounds=10)
    assert [r for r in range(1, 11) if state_due(r, every4)] == [4, 8, 10]
    every1 = SimpleNamespace(save_state_every=1, rounds=3)
    assert [r for r in range(1, 4) if state_due(r, every1)] == [1, 2, 3]


def test_a_trainer_group_is_not_rebuilt_from_a_state_older_than_the_last_round():
    killed = []
    ctx = SimpleNamespace(
        state=SimpleNamespace(progress=lambda stage: {"rounds_completed": 4}),
        results={"rounds": [{"round": r} for r in range(1, 7)]},
        run=SimpleNamespace(online=SimpleNamespace(save_state_every=4)),
        trainers=SimpleNamespace(kill=lambda: killed.append(True)),
    )
    with pytest.raises(TrainingStateBehind, match="lost after round 6.*from round 4.*restarts after round 4"):
        recover_trainers(ctx)
    assert not killed


def test_a_round_larger_than_its_source_is_reported_with_numbers(caplog):
    # the paper's 6,400 speeches per round from counsel-chat's 695 training questions
    warning = repeat_warning(6400, 695, "counsel_chat")
    assert "online.speeches_per_round=6400" in warning and "695 distinct speeches" in warning
    assert "each about 9.2 times" in warning
    assert repeat_warning(48, 695, "counsel_chat") is None
    run = paper("llama3_8b", "online.speech_source=counsel_chat", "model.require_preference_data=false")
    with caplog.at_level(logging.WARNING, logger="rlhf.data.round_speeches"):
        record = report(run, 695)
    assert record == {"source": "counsel_chat", "distinct": 695, "per_round": 6400, "repeats": True}
    assert any("each about 9.2 times" in r.message for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rlhf.data.round_speeches"):
        assert report(load_config(compose([])), 695)["repeats"] is False
    assert not caplog.records


def test_speech_sources(tmp_path):
    questions = [
        "I feel anxious at work.",
        "I feel  anxious at work.",
        "My sister will not talk to me.",
        "I cannot sleep.",
    ]
    rows = [
        {c: None for c in COLUMNS} | {"ID": f"q{i % 3}", "question": q, "chosen": "a", "rejected": "b"}
        for i, q in enumerate(questions)
    ]
    path = tmp_path / "prefs.parquet"
    write_parquet(rows, path)
    run = load_config(compose([f"data.preference_path={path}", "online.speech_source=preference_data"]))
    speeches = round_speeches(run, train_questions=[])
    # one per question (whitespace and case aside), ids unique
    assert [s.text for s in speeches] == [
        "I feel anxious at work.",
        "My sister will not talk to me.",
        "I cannot sleep.",
    ]
    assert len({s.id for s in speeches}) == 3

    csv = REPO_ROOT / "data/counsel-chat/counsel_chat.csv"
    run = load_config(compose(["online.speech_source=prefs", f"prefs.speeches.path={csv}", "prefs.speeches.limit=20"]))
    speeches = round_speeches(run, train_questions=[])
    assert len(speeches) == 20 and all(100 <= len(s.text) <= 1000 for s in speeches)

    run = load_config(compose([]))
    train = [SimpleNamespace(speech="s1"), SimpleNamespace(speech="s2")]
    assert round_speeches(run, train) == ["s1", "s2"]
