"""PsychoCounsel-Preference Parquet as the reward and offline DPO stages read it (data.preference_path):
a file in the released schema is read whole; a file that is not one is refused with an error naming
the file and the column or row at fault, before any actor starts."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlhf.data import counsel_chat
from rlhf.data.errors import DataError
from rlhf.pairs.parquet import COLUMNS, read_preference_parquet, write_parquet
from tests.conftest import REPO_ROOT

__all__ = ["write_preference_file"]  # the stage tests build their input with it


def write_preference_file(path: Path, count: int) -> list:
    """`count` counsel-chat upvote pairs (more upvotes = chosen) as PsychoCounsel-Preference Parquet,
    every released column filled as the preference builder fills it; returns the pairs."""
    questions = counsel_chat.read_questions(REPO_ROOT / "data/counsel-chat/counsel_chat.csv", "train")
    pairs = counsel_chat.upvote_pairs(questions)[0][:count]
    assert len(pairs) == count
    rows = []
    for number, pair in enumerate(pairs):
        row = {"ID": f"{pair.speech.id}", "prefID": number, "question": pair.speech.text, "chosen": pair.chosen,
               "rejected": pair.rejected, "chosen_model": "therapist-upvoted", "rejected_model": "therapist"}
        row.update({c: 5 if c.startswith("chosen_") else 3 for c in COLUMNS if c.endswith("_rating")})
        rows.append(row)
    write_parquet(rows, path)
    return pairs


def write_table(path: Path, columns: dict) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


GOOD = {"ID": ["a", "b", "c"], "question": ["I feel alone.", "I can't sleep.", "We argue."],
        "chosen": ["Tell me more.", "What keeps you up?", "What about?"], "rejected": ["ok", "sleep more", "leave"]}


def test_the_released_schema_is_read_whole(tmp_path):
    path = tmp_path / "train.parquet"
    pairs = write_preference_file(path, 12)
    assert pq.read_table(path).column_names == COLUMNS
    read = read_preference_parquet(path)
    assert [(p.speech.text, p.chosen, p.rejected) for p in read] == [(p.speech.text, p.chosen, p.rejected)
                                                                      for p in pairs]


def test_optional_columns_may_be_absent(tmp_path):
    path = write_table(tmp_path / "p.parquet", {k: v for k, v in GOOD.items() if k != "ID"})
    assert [p.speech.id for p in read_preference_parquet(path)] == ["row-0", "row-1", "row-2"]


@pytest.mark.parametrize("columns, problem", [
    ({k: v for k, v in GOOD.items() if k != "rejected"}, "missing column(s) ['rejected']"),
    ({k: v for k, v in GOOD.items() if k not in ("chosen", "question")}, "missing column(s) ['question', 'chosen']"),
    ({**GOOD, "question": [1, 2, 3]}, "column 'question' holds int64, not text"),
    ({**GOOD, "chosen": [[1.0], [2.0], [3.0]]}, "column 'chosen' holds list<"),
    ({k: pa.array([], pa.string()) for k in GOOD}, "no rows"),
    ({**GOOD, "chosen": ["Tell me more.", None, "What about?"]}, "row 1 (ID 'b'): column 'chosen' is empty"),
    ({**GOOD, "rejected": ["ok", "sleep more", "  \n"]}, "row 2 (ID 'c'): column 'rejected' is empty"),
    ({**GOOD, "ID": [None, None, None], "question": ["", "x", "y"]}, "row 0: column 'question' is empty"),
])
def test_a_bad_table_names_the_file_and_the_column_or_row(tmp_path, columns, problem):
    path = write_table(tmp_path / "prefs.parquet", columns)
    with pytest.raises(DataError) as err:
        read_preference_parquet(path)
    assert str(err.value).startswith(f"{path}: {problem}"), str(err.value)


@pytest.mark.parametrize("content, problem", [
    (b"", "empty file"),
    (b"ID,question,chosen,rejected\na,q,c,r\n", "not a readable Parquet file"),  # a CSV under the wrong name
    (b"PAR1\x00\x00", "not a readable Parquet file"),  # cut short
])
def test_a_file_that_is_not_parquet_names_the_file(tmp_path, content, problem):
    path = tmp_path / "prefs.parquet"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        read_preference_parquet(path)
    assert str(err.value).startswith(f"{path}: {problem}"), str(err.value)


@pytest.mark.parametrize("stage", ["reward", "offline_dpo"])
def test_the_run_refuses_a_bad_file_before_any_actor_starts(tmp_path, tiny_model_dir, stage):
    import ray

    from rlhf.config import load_config
    from rlhf.pipeline import Pipeline
    from tests.conftest import compose

    path = write_table(tmp_path / "prefs.parquet", {**GOOD, "question": [1, 2, 3]})
    run = load_config(compose([f"run_dir={tmp_path}/run", f"stage={stage}", f"model.path={tiny_model_dir}",
                               f"data.preference_path={path}", "tracking.wandb=false"]))
    assert not ray.is_initialized()
    with pytest.raises(DataError, match=f"{path}: column 'question' holds int64, not text"):
        Pipeline(run, {}).start()
    assert not ray.is_initialized()
