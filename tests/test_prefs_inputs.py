"""Reading and cleaning client speeches; bad input files give an error naming the file and line;
pair construction and the Parquet schema the reward stage reads."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlhf.config import SpeechColumns
from rlhf.data.errors import DataError
from rlhf.data.records import Speech
from rlhf.pairs.judged import Scored, make_pairs
from rlhf.pairs.parquet import COLUMNS, read_preference_parquet, write_parquet
from rlhf.prefs.judge import PRINCIPLES
from rlhf.prefs.speeches import clean, read_speeches

COLS = SpeechColumns(text="body", title=None, id="sid", topic="theme")
LONG = "I keep worrying about my family and my job, and at night my thoughts race so I cannot rest. "


def csv_file(tmp_path, text: str, name="s.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_cleaning_counts_each_filter_and_keeps_topics(tmp_path):
    rows = [("a", LONG * 2, "anxiety"), ("b", "too short", "grief"), ("c", LONG * 20, "work"),
            ("d", "  " + (LONG * 2).upper().replace(" ", "   ") + " ", "anxiety"),  # duplicate of a: case/space
            ("e", LONG * 3, "sleep"), ("f", "", "x")]
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(json.dumps({"sid": i, "body": t, "theme": topic}) for i, t, topic in rows) + "\n")
    kept, counts = clean(read_speeches(path, COLS), 100, 1000)
    assert [s.id for s in kept] == ["a", "e"]
    assert [s.topic for s in kept] == ["anxiety", "sleep"]
    assert counts.as_dict() == {"rows_read": 6, "empty": 1, "too_short": 1, "too_long": 1, "duplicates": 1, "kept": 2}


def test_a_cleaning_that_keeps_nothing_names_the_filter(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps({"sid": str(i), "body": "too short to count", "theme": "t"}) + "\n"
                            for i in range(5)) + json.dumps({"sid": "x", "body": "", "theme": "t"}) + "\n")
    kept, counts = clean(read_speeches(path, COLS), 100, 1000)
    assert kept == []
    err = counts.removed_all(path, 100, 1000, "prefs.speeches")
    assert str(err).startswith(f"{path}: cleaning kept none of the 6 speeches (1 empty")
    assert "5 under 100 characters" in str(err) and "check prefs.speeches.min_chars" in str(err)


def test_a_build_whose_cleaning_keeps_nothing_stops_before_any_call(tmp_path):
    from pathlib import Path

    from rlhf.prefs.build import build_preferences
    from tests.test_prefs_support import run_config

    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"sid": "a", "body": LONG * 20, "theme": "t"}) + "\n")
    run = run_config(path, "http://127.0.0.1:9/v1")
    with pytest.raises(DataError, match=r"kept none of the 1 speeches \(1 over 1000 characters\).*max_chars"):
        build_preferences(run, tmp_path / "out", None, Path, None)
    assert not (tmp_path / "out" / "train.parquet").exists()


def test_csv_parquet_and_jsonl_read_alike_through_the_mapping(tmp_path):
    speeches = [{"sid": f"q{i}", "body": LONG * (2 + i), "theme": "t"} for i in range(3)]
    csv_path = csv_file(tmp_path, "sid,body,theme\n" + "".join(f'{r["sid"]},"{r["body"]}",t\n' for r in speeches))
    jsonl_path = tmp_path / "s.jsonl"
    jsonl_path.write_text("".join(json.dumps(r) + "\n" for r in speeches))
    parquet_path = tmp_path / "s.parquet"
    pq.write_table(pa.Table.from_pylist(speeches), parquet_path)
    results = [[s for _, s in read_speeches(p, COLS)] for p in (csv_path, jsonl_path, parquet_path)]
    assert results[0] == results[1] == results[2]
    assert results[0][0] == Speech("q0", " ".join((LONG * 2).split()), "t")


def test_missing_id_column_mapping_falls_back_to_line_numbers(tmp_path):
    path = csv_file(tmp_path, f'body\n"{LONG * 2}"\n"{LONG * 3}"\n')
    rows = read_speeches(path, SpeechColumns(text="body", title=None, id=None, topic=None))
    assert [s.id for _, s in rows] == ["row-2", "row-3"]


@pytest.mark.parametrize("name, content, line, problem", [
    ("missing.csv", "sid,text,theme\n1,hello,x\n", 1, "missing column(s) ['body']"),
    ("empty.csv", "", 1, "empty file"),
    ("header_only.csv", "sid,body,theme\n", None, "no rows"),
    ("broken.csv", f'sid,body,theme\n1,"{LONG}",x\n2,"{LONG}",x,extra\n', 3, "broken row"),
    ("quote.csv", f'sid,body,theme\n1,"{LONG}",x\n2,"{LONG}"oops,x\n', 3, "broken CSV"),
    ("broken.jsonl", json.dumps({"sid": 1, "body": LONG, "theme": "x"}) + "\n{\"sid\": 2, \"body\": \n", 2,
     "broken JSON line"),
    ("missing.jsonl", json.dumps({"sid": 1, "body": LONG, "theme": "x"}) + "\n" + json.dumps({"sid": 2}) + "\n", 2,
     "missing column(s)"),
    ("array.jsonl", "[1, 2]\n", 1, "not a JSON object"),
    ("empty.jsonl", "", 1, "empty file"),
])
def test_bad_files_name_the_file_and_line(tmp_path, name, content, line, problem):
    path = csv_file(tmp_path, content, name)
    with pytest.raises(DataError) as err:
        read_speeches(path, COLS)
    message = str(err.value)
    assert problem in message
    assert message.startswith(f"{path}:{line}:" if line else f"{path}:")
    assert err.value.line == line


def test_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(f"sid,body,theme\n1,{LONG},x\n2,caf\xe9 {LONG},x\n".encode("latin-1"))
    with pytest.raises(DataError, match=rf"^{path}:3: not UTF-8 text"):
        read_speeches(path, COLS)


def test_bad_parquet_files(tmp_path):
    path = tmp_path / "wrong.parquet"
    pq.write_table(pa.Table.from_pylist([{"sid": "1", "text": LONG}]), path)
    with pytest.raises(DataError, match=r"missing column\(s\) \['body', 'theme'\]"):
        read_speeches(path, COLS)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(DataError, match=rf"^{broken}: not a readable Parquet file"):
        read_speeches(broken, COLS)
    with pytest.raises(DataError, match="file not found"):
        read_speeches(tmp_path / "nope.csv", COLS)


def scored(speech, responder, values) -> Scored:
    return Scored(speech, responder, 0, f"answer of {responder}", dict(zip(PRINCIPLES, values)))


def test_pairs_mean_total_gap_and_test_split(tmp_path):
    s = Speech("s1", LONG * 2, "t")
    responses = [scored(s, "a", [5] * 7), scored(s, "b", [4] * 7), scored(s, "c", [4, 4, 4, 4, 4, 4, 3]),
                 scored(s, "d", [2] * 7), scored(s, "e", [2] * 7)]
    groups = [("s1#k", responses)]
    train = make_pairs(groups, aggregate="mean", min_gap=1.0, test_fraction=0.0, seed=0)["train"]
    got = {(r["chosen_model"], r["rejected_model"]) for r in train}
    # gaps >= 1 on the mean: a-b (1), a-c (1.14), a-d, a-e, b-d, b-e, c-d (1.86), c-e; d-e tie and b-c (0.14) dropped
    assert got == {("a", "b"), ("a", "c"), ("a", "d"), ("a", "e"), ("b", "d"), ("b", "e"), ("c", "d"), ("c", "e")}
    total = make_pairs(groups, aggregate="total", min_gap=1.0, test_fraction=0.0, seed=0)["train"]
    assert ("b", "c") in {(r["chosen_model"], r["rejected_model"]) for r in total}  # 28 vs 27
    assert len(total) == 9
    test = make_pairs(groups, aggregate="mean", min_gap=1.0, test_fraction=0.999999, seed=0)
    assert test["train"] == [] and len(test["test"]) == 1
    assert (test["test"][0]["chosen_model"], test["test"][0]["rejected_model"]) == ("a", "d")
    assert test["test"][0]["chosen_empathy_rating"] == 5 and test["test"][0]["rejected_staging_rating"] == 2
    ties = make_pairs([("t#k", [scored(s, "a", [3] * 7), scored(s, "b", [3] * 7)])], aggregate="mean", min_gap=0.0,
                      test_fraction=0.999999, seed=0)
    assert ties == {"train": [], "test": []}


def test_parquet_has_the_released_schema_and_the_reward_reader_takes_it(tmp_path):
    s = Speech("s1", LONG * 2, "t")
    rows = make_pairs([("s1#k", [scored(s, "a", [5] * 7), scored(s, "b", [3] * 7)])], aggregate="mean",
                      min_gap=1.0, test_fraction=0.0, seed=0)["train"]
    path = tmp_path / "train.parquet"
    write_parquet(rows, path)
    table = pq.read_table(path)
    assert table.column_names == ["ID", "prefID", "question", "chosen", "rejected", "chosen_model", "rejected_model",
                                  *[f"chosen_{p}_rating" for p in PRINCIPLES], *[f"rejected_{p}_rating" for p in PRINCIPLES]]
    assert table.column_names == COLUMNS
    assert table.schema.field("prefID").type == pa.int64() and table.schema.field("ID").type == pa.string()
    assert all(table.schema.field(c).type == pa.int64() for c in COLUMNS if c.endswith("_rating"))
    pairs = read_preference_parquet(path)
    assert [(p.speech.id, p.speech.text, p.chosen, p.rejected) for p in pairs] == [("s1", s.text, "answer of a",
                                                                                    "answer of b")]


def test_prefs_configs_compose_and_every_field_is_commented(monkeypatch):
    import re

    from rlhf.config import ConfigError, load_config
    from tests.conftest import REPO_ROOT, compose

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="prefs.judge.api_key_env: environment variable OPENAI_API_KEY is not set"):
        load_config(compose(["stage=build_prefs", "prefs=endpoints"]))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-placeholder")
    monkeypatch.setenv("MY_KEY", "sk-test-placeholder")

    for option in ("local", "endpoints"):
        path = REPO_ROOT / "conf" / "prefs" / f"{option}.yaml"
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if re.match(r"^\s*[a-z_]+:", line):
                assert "#" in line, f"{path}:{number} has no comment"
        run = load_config(compose(["stage=build_prefs", f"prefs={option}"]))
        assert run.prefs.responders and run.prefs.judge.max_attempts >= 1
    run = load_config(compose(["stage=build_prefs", "prefs.judge.backend=openai", "prefs.judge.base_url=http://127.0.0.1:1/v1",
                               "prefs.judge.model=j", "prefs.judge.api_key_env=MY_KEY", "prefs.aggregate=total"]))
    assert run.prefs.judge.api_key_env == "MY_KEY" and run.prefs.aggregate == "total"


def test_byte_order_mark_from_spreadsheet_exports_is_tolerated(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(f'\ufeffsid,body,theme\n7,"{LONG * 2}",grief\n'.encode())
    ((line, speech),) = read_speeches(path, COLS)
    assert (line, speech.id, speech.topic) == (2, "7", "grief")
