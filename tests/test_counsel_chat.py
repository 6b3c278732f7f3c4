"""The counsel-chat derivation: speeches, SFT examples and upvote pairs, with their counts."""

import pytest

from rlhf.data import counsel_chat
from rlhf.data.errors import DataError
from tests.conftest import REPO_ROOT

CSV = REPO_ROOT / "data/counsel-chat/counsel_chat.csv"
HEADER = "questionID,questionTitle,questionText,topic,answerText,upvotes,views,split\n"


def write(tmp_path, rows: str, name="cc.csv"):
    path = tmp_path / name
    path.write_text(HEADER + rows, encoding="utf-8")
    return path


def test_pairs_order_by_upvotes_and_drop_ties(tmp_path):
    path = write(tmp_path, "1,T,Q one,x,low,0,5,train\n1,T,Q one,x,high,3,5,train\n1,T,Q one,x,mid,1,5,train\n"
                           "1,T,Q one,x,tie,1,5,train\n2,T2,Q two,y,only,4,1,train\n3,T3,Q3,z,v,1,1,val\n")
    questions = counsel_chat.read_questions(path, "train")
    assert [q.speech.id for q in questions] == ["cc-1", "cc-2"]
    pairs, counts = counsel_chat.upvote_pairs(questions)
    got = {(p.chosen, p.rejected) for p in pairs}
    assert got == {("high", "low"), ("high", "mid"), ("high", "tie"), ("mid", "low"), ("tie", "low")}
    assert counts.pairs == 5 and counts.tied_pairs_dropped == 1 and counts.single_answer_questions == 1
    assert len(counsel_chat.sft_examples(questions)) == 5


def test_shipped_data_counts_match_the_documentation():
    train = counsel_chat.read_questions(CSV, "train")
    val = counsel_chat.read_questions(CSV, "val")
    assert (len(train), len(val)) == (695, 81)
    assert len(counsel_chat.sft_examples(train)) == 1839
    pairs, counts = counsel_chat.upvote_pairs(train)
    assert (counts.pairs, counts.tied_pairs_dropped) == (2229, 6126)
    assert all(p.chosen_score > p.rejected_score for p in pairs)
    readme = (REPO_ROOT / "data/counsel-chat/README.md").read_text()
    assert "2,229 train" in readme and "6,126" in readme


def test_speech_joins_title_and_text():
    assert counsel_chat.speech_text("Title", "Body  text\nmore") == "Title\n\nBody text more"


@pytest.mark.parametrize("content, problem, line", [
    (HEADER.replace(",upvotes", ""), "missing column", 1),
    (HEADER + "1,T,Q,x,a,notanumber,1,train\n", "upvotes is not a whole number", 2),
])
def test_bad_files_name_file_and_line(tmp_path, content, problem, line):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as err:
        counsel_chat.read_questions(path, "train")
    assert problem in str(err.value) and f"bad.csv:{line}" in str(err.value)


def test_not_utf8_and_missing_file(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(HEADER.encode() + "1,T,caf\xe9,x,a,1,1,train\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.csv:2: not UTF-8"):
        counsel_chat.read_questions(path, "train")
    with pytest.raises(DataError, match="file not found"):
        counsel_chat.read_questions(tmp_path / "nope.csv", "train")
