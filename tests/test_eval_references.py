"""stage=eval against a reference that is not a local model, judged by the pairwise principle judge,
through the stage's own code: `eval=gpt4o` (the paper's set-up: the reference answers and the judge
are one OpenAI-compatible endpoint) pointed at a scripted server on loopback, and a reference of
stored responses (CSV matched by speech text, JSON Lines matched by id).

The policies' answers are scripted (a stand-in for the vLLM generator, which tests/test_eval_run.py
runs for real); everything after them is the run's code: the endpoint reference's requests (the
length instruction and token cap of the length-constrained variant), the stored file's matching,
the pairwise judge asked in both orders, the aggregation (a disagreement is a tie, ties count
half), per-principle and absolute ratings, the report with its figures and what W&B receives."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from rlhf.config import load_config
from rlhf.data.records import Speech
from rlhf.eval.generate import Responses
from rlhf.prefs.judge import PRINCIPLES
from tests.conftest import compose
from tests.test_prefs_support import FakeOpenAI, completion
from tests.test_safety_eval import RecordingRun  # what reaches W&B

SPEECHES = [
    "I keep replaying an argument with my sister and cannot sleep.",
    "Since the move I feel lonely all the time and I do not know anyone here.",
    "My boss criticises everything I do and I dread going to work.",
    "I lost my dog last month and everyone says I should be over it.",
]
VARIANTS = ("unconstrained", "length_constrained")
BETTER = "[better]"  # what the scripted judge looks for; it marks the better answer of a pair
# Which side gives the better answer, per variant and speech: the policy, the reference or neither.
# Neither: the scripted judge has no preference and names position A, in both orders (pure position bias).
PLAN = {"unconstrained": ["policy", "policy", "reference", None], "length_constrained": ["policy", None, "reference", "reference"]}
EXPECTED = {  # wins / ties / losses from PLAN; ties count half
    "unconstrained": {"wins": 2, "ties": 1, "losses": 1, "win_rate": 2.5 / 4},
    "length_constrained": {"wins": 1, "ties": 1, "losses": 2, "win_rate": 1.5 / 4},
}
LENGTH_TOKENS, LENGTH_WORDS = 24, 20
INSTRUCTION = f"Please answer in at most {LENGTH_WORDS} words."


def answer(side: str, variant: str, index: int) -> str:
    marker = f" {BETTER}" if PLAN[variant][index] == side else ""
    return f"The {side}'s {variant} answer to speech {index}: that sounds hard, tell me more.{marker}"


def policy_answers(run, model_dir, jobs):
    """Stand-in for rlhf.eval.answers.local_answers: the policy's scripted answers per job, and a check
    that the job asks for what the variant says (its token cap and instruction)."""
    out = {}
    for name, (speeches, variant) in jobs.items():
        if name == "length_constrained":
            assert variant.max_tokens == LENGTH_TOKENS and variant.instruction == INSTRUCTION
        else:
            assert variant.instruction == ""
        texts = [answer("policy", name, SPEECHES.index(s.text)) for s in speeches]
        out[name] = Responses(texts, [len(t.split()) for t in texts])
    return out


def verdicts(data: dict) -> dict:
    """The scripted pairwise judge: the answer marked better wins overall and on every principle but
    empathy (always a tie); without a marked answer it names position A."""
    a, b = BETTER in data["response_a"], BETTER in data["response_b"]
    winner = "A" if a and not b else "B" if b and not a else "A"
    return {**dict.fromkeys(PRINCIPLES, winner), "overall": winner, "empathy": "tie"}


def scripted(body: dict, number: int):
    """One endpoint for the reference's answers, the pairwise judge and the absolute 1-5 judge."""
    user = body["messages"][-1]["content"]
    try:
        data = json.loads(user)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict) and "response_a" in data:
        return 200, completion(json.dumps(verdicts(data))), {}
    if isinstance(data, dict) and "counsellor_response" in data:
        rating = 4 if BETTER in data["counsellor_response"] else 2
        return 200, completion(json.dumps(dict.fromkeys(PRINCIPLES, rating))), {}
    variant = "length_constrained" if user.endswith(INSTRUCTION) else "unconstrained"
    speech = user.removesuffix(f"\n\n{INSTRUCTION}")
    return 200, completion(answer("reference", variant, SPEECHES.index(speech))), {}


def evaluate(tmp_path: Path, monkeypatch, overrides: list[str]) -> tuple[dict, RecordingRun]:
    """stage=eval with scripted policy answers on SPEECHES (as counsel-chat's held-out questions)."""
    from rlhf.eval import run as eval_run
    from rlhf.stages import eval as eval_stage
    from rlhf.stages.context import RunContext
    from rlhf.tracking import Tracker

    policy = tmp_path / "policy"
    policy.mkdir(exist_ok=True)
    (policy / "config.json").write_text("{}")
    monkeypatch.setattr(eval_run, "local_answers", policy_answers)
    run_dir = tmp_path / "ev"
    run = load_config(compose([
        f"run_dir={run_dir}", "stage=eval", f"eval.policies=[{policy}]", "tracking.wandb=false",
        "eval.safety.enabled=false", "eval.bootstrap_samples=200", f"eval.length_max_tokens={LENGTH_TOKENS}",
        f"eval.length_words={LENGTH_WORDS}", *overrides]))
    tracker = Tracker(run_dir, {}, run.tracking, "test")
    tracker.wandb_run = recorded = RecordingRun(run_dir)
    val = [SimpleNamespace(speech=Speech(f"q{i}", text)) for i, text in enumerate(SPEECHES)]
    ctx = RunContext(run=run, run_dir=run_dir, state=None, tracker=tracker, tokenizer=None, encoder=None,
                     train_questions=[], val_questions=val, results={}, config_record={}, started=time.time(),
                     policy_dir=str(policy))
    eval_stage.run(ctx)
    return ctx.results["eval"], recorded


def pairwise_requests(server: FakeOpenAI) -> list[tuple[str, str, str]]:
    found = []
    for body in server.requests:
        try:
            data = json.loads(body["messages"][-1]["content"])
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and "response_a" in data:
            found.append((data["client_speech"], data["response_a"], data["response_b"]))
    return found


def assert_judged_in_both_orders(server: FakeOpenAI, reference: dict[str, list[str]]) -> None:
    """Every (speech, policy answer, reference answer) was put to the judge exactly twice: the
    policy as A, then as B; nothing else was."""
    asked = pairwise_requests(server)
    expected = []
    for variant in VARIANTS:
        for i, speech in enumerate(SPEECHES):
            if reference[variant][i] is None:
                continue
            mine, theirs = answer("policy", variant, i), reference[variant][i]
            expected += [(speech, mine, theirs), (speech, theirs, mine)]
    assert sorted(asked) == sorted(expected)


def assert_aggregated(result: dict, variant: str, scored: int) -> None:
    r = result["policies"][0]["results"][variant]
    want = EXPECTED[variant]
    assert (r["wins"], r["ties"], r["losses"]) == (want["wins"], want["ties"], want["losses"])
    assert r["win_rate"]["mean"] == pytest.approx(want["win_rate"]) and r["win_rate"]["n"] == scored
    assert r["win_rate"]["lo"] <= r["win_rate"]["mean"] <= r["win_rate"]["hi"]
    # the orders agree on every pair with a marked answer; the position-biased verdicts disagree
    assert r["position_consistent"] == want["wins"] + want["losses"]
    assert r["per_principle"]["empathy"]["mean"] == 0.5  # a tie in both orders
    assert r["per_principle"]["safety"]["mean"] == pytest.approx(want["win_rate"])


def test_gpt4o_preset_reference_endpoint_and_pairwise_judge_in_both_orders(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-eval-key")
    with FakeOpenAI(scripted) as server:
        result, recorded = evaluate(tmp_path, monkeypatch, [
            "eval=gpt4o", f"eval.reference.base_url={server.url}", f"eval.judge.base_url={server.url}",
            "eval.reference.max_retries=0", "eval.judge.max_retries=0"])
    assert result["reference"]["source"] == "endpoint" and "`gpt-4o`" in result["reference"]["description"]
    assert result["judge"]["backend"] == "openai" and result["judge"]["model"] == "gpt-4o"
    assert set(server.auth) == {"Bearer sk-test-eval-key"}

    # the reference: each speech once per variant, the constrained one with the instruction and cap
    answers = [b for b in server.requests if not b["messages"][-1]["content"].startswith("{")]
    assert len(answers) == 2 * len(SPEECHES)
    unconstrained = sorted(b["messages"][-1]["content"] for b in answers if b["max_tokens"] == 256)
    constrained = sorted(b["messages"][-1]["content"] for b in answers if b["max_tokens"] == LENGTH_TOKENS)
    assert unconstrained == sorted(SPEECHES)
    assert constrained == sorted(f"{s}\n\n{INSTRUCTION}" for s in SPEECHES)
    assert all(b["model"] == "gpt-4o" and b["temperature"] == 0.0 for b in answers)

    reference = {v: [answer("reference", v, i) for i in range(len(SPEECHES))] for v in VARIANTS}
    assert_judged_in_both_orders(server, reference)
    for variant in VARIANTS:  # both variants reported, each judged on its own answers
        assert_aggregated(result, variant, len(SPEECHES))
    assert result["variants"]["length_constrained"]["instruction"] == INSTRUCTION
    # absolute 1-5 ratings of the unconstrained answers: 4 for a marked answer, 2 otherwise
    assert result["absolute"]["reference"]["empathy"]["mean"] == pytest.approx((4 + 2 + 2 + 2) / 4)
    assert result["absolute"]["policy"]["clarity"]["mean"] == pytest.approx((4 + 4 + 2 + 2) / 4)

    out = tmp_path / "ev" / "eval"
    report = (out / "report.md").read_text()
    assert "**Judge: `gpt-4o`**" in report and "twice: once with the policy shown as A and once as B" in report
    assert "| policy | 62.5% [" in report and "| 2 / 1 / 1 | 0 |" in report  # unconstrained W / T / L, unscored
    for figure in ("winrate_per_policy", "principles", "absolute"):
        assert (out / f"{figure}.png").stat().st_size > 1000, figure
        assert f"![{figure}]({figure}.png)" in report
    (payload,) = recorded.logged
    assert {"eval/winrate_per_policy", "eval/principles", "eval/absolute", "eval/win_rates"} <= set(payload)
    assert sorted(row[1] for row in payload["eval/win_rates"].data) == sorted(VARIANTS)
    for text in SPEECHES + reference["unconstrained"]:  # numbers only in W&B and the report
        assert text not in report and text not in json.dumps(payload["eval/win_rates"].data)


def write_stored(path: Path, by_id: bool) -> None:
    """Reference answers for the first three speeches (the last has none), one per speech, the same
    for both variants: as CSV keyed by the speech text (spacing and case changed), or as JSON Lines
    keyed by id (with texts that match nothing)."""
    rows = [(f"q{i}", text, answer("reference", "unconstrained", i)) for i, text in enumerate(SPEECHES[:3])]
    if by_id:
        path.write_text("".join(json.dumps({"speech_id": sid, "question": f"(paraphrased {sid})", "response": resp})
                                + "\n" for sid, _, resp in rows))
    else:
        import csv

        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["question", "response"])
            writer.writerows(["  " + text.upper().replace(" ", "  "), resp] for _, text, resp in rows)


@pytest.mark.parametrize("by_id", [False, True], ids=["csv-by-text", "jsonl-by-id"])
def test_stored_reference_responses_are_what_the_judge_compares(tmp_path, monkeypatch, by_id):
    stored = tmp_path / ("reference.jsonl" if by_id else "reference.csv")
    write_stored(stored, by_id)
    with FakeOpenAI(scripted) as server:
        result, _ = evaluate(tmp_path, monkeypatch, [
            "eval.reference.source=stored", f"eval.reference.path={stored}",
            *(["eval.reference.columns.id=speech_id"] if by_id else []),
            "eval.judge.backend=openai", f"eval.judge.base_url={server.url}", "eval.judge.model=judge",
            "eval.judge.max_retries=0", "eval.judge.absolute=false"])
    assert result["reference"]["source"] == "stored" and "the same for both variants" in result["reference"]["description"]
    # only the judge was called: the stored answers stand for both variants, the unmatched speech has none
    stored_answers = [answer("reference", "unconstrained", i) for i in range(3)] + [None]
    assert len(server.requests) == len(pairwise_requests(server))
    assert_judged_in_both_orders(server, {v: stored_answers for v in VARIANTS})
    r = result["policies"][0]["results"]["unconstrained"]
    assert r["unscored"] == 1 and r["unscored_reasons"] == {"no reference response": 1}
    # speeches 0-2 of the unconstrained plan: policy, policy, reference -> 2 wins, 1 loss
    assert (r["wins"], r["ties"], r["losses"]) == (2, 0, 1) and r["win_rate"]["n"] == 3
    c = result["policies"][0]["results"]["length_constrained"]
    # the constrained policy answers against the same stored ones: the policy's marker on speech 0 only
    assert (c["wins"], c["ties"], c["losses"]) == (1, 1, 1) and c["unscored"] == 1


def test_a_stored_file_that_matches_no_speech_is_refused_naming_it(tmp_path, monkeypatch):
    from rlhf.data.errors import DataError

    stored = tmp_path / "other.csv"
    stored.write_text("question,response\nSomething nobody asked here,An answer\n")
    with pytest.raises(DataError, match="no stored reference response matches any evaluated speech") as err:
        evaluate(tmp_path, monkeypatch, ["eval.reference.source=stored", f"eval.reference.path={stored}",
                                         "reward=python"])
    assert str(stored) in str(err.value)
