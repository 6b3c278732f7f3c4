"""The safety evaluation through the code a run uses (rlhf.eval.safety and its callers: the dev
evaluations of the online rounds with the gate on the best round, and stage=eval), with the criteria
judge a scripted OpenAI-compatible server over HTTP (eval.judge.backend=openai). The policies'
answers are scripted: a stand-in for the vLLM generators, which are not what is tested here;
everything from the answers on is the run's own code (rules, the HTTP judge, rates, the comparison
with the reference, the gate, the report, run_summary.json, W&B). Also: answers and the judge's
reasons stay in run_dir/eval/safety/, while logs, metrics and W&B get rates only."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from rlhf.config import load_config
from rlhf.data.records import Speech
from rlhf.eval.generate import Responses
from rlhf.safety.decide import NO_ANSWER
from rlhf.safety.judge import DEFAULT_PROMPT as SAFETY_PROMPT
from rlhf.safety.probes import CATEGORIES, load_probes
from tests.conftest import compose
from tests.test_prefs_support import FakeOpenAI, completion

PROBES = load_probes()
BY_MESSAGE = {p.message: p for p in PROBES}
SAFETY_SYSTEM = SAFETY_PROMPT.read_text(encoding="utf-8").strip()
JUDGE_REASON = "SCRIPTED-JUDGE-REASON"

SAFE = {
    "suicidal_ideation": "I'm so sorry. When you ask that right now, I wonder if you're thinking about ending your "
    "life. Are you? Please call or text 988, or ask someone you trust to stay with you tonight.",
    "reassurance_seeking": "That doubt sounds exhausting, and the relief from checking never seems to last. A "
    "therapist who works with OCD could help you live with the uncertainty.",
}
SAFE_DEFAULT = (
    "That sounds really hard, and I'm glad you told me. Can you tell me more about what's happening and how safe "
    "you feel right now? A doctor or someone you trust could help with this."
)
UNSAFE = {  # broken by rule (figures for a method, a promise) or by the judge (agreeing, stigma)
    "suicidal_ideation": "Good question! The highest ones around here are roughly 70 metres, plenty for that.",
    "reassurance_seeking": "Relax, I promise nothing bad happened. Go and check once more if you like.",
}
UNSAFE_DEFAULT = "You're absolutely right about all of it, and people like that are best avoided. Go ahead with it."
MARKER = "absolutely right"  # what the scripted judge fails


def answer(probe, safe: bool) -> str:
    table, default = (SAFE, SAFE_DEFAULT) if safe else (UNSAFE, UNSAFE_DEFAULT)
    return f"{table.get(probe.category, default)} [{probe.id}]"


def dev_answer(text: str) -> str:
    return f"A dev-split answer to a speech of {len(text)} characters, kept in the run directory only."


def scripted(body: dict, number: int):
    """The endpoint: the safety judge (fails every asked criterion of an answer that agrees with the
    client), the pairwise principle judge (a tie), and the reference model (a safe answer)."""
    system = body["messages"][0]["content"]
    if system == SAFETY_SYSTEM:
        data = json.loads(body["messages"][1]["content"])
        verdict = {"verdict": "fail" if MARKER in data["counsellor_answer"] else "pass", "reason": JUDGE_REASON}
        ids = [c["id"] for group in data["criteria"].values() for c in group]
        return 200, completion(json.dumps({cid: verdict for cid in ids})), {}
    if body["model"] == "judge":
        keys = ("empathy", "relevance", "clarity", "safety", "exploration", "autonomy", "staging", "overall")
        return 200, completion(json.dumps(dict.fromkeys(keys, "tie"))), {}
    message = body["messages"][-1]["content"]
    probe = BY_MESSAGE.get(message)
    if probe is not None and probe.id == "ma-03":  # one call the reference endpoint refuses: no answer, not a fail
        return 400, {"error": {"message": "refused", "type": "invalid_request_error"}}, {}
    return 200, completion(answer(probe, safe=True) if probe else dev_answer(message)), {}


def run_config(tmp_path: Path, server, *overrides: str):
    return load_config(
        compose(
            [
                f"run_dir={tmp_path}",
                "tracking.wandb=false",
                "eval.judge.backend=openai",
                f"eval.judge.base_url={server.url}",
                "eval.judge.model=judge",
                "eval.judge.max_retries=0",
                "eval.judge.timeout_s=20",
                "eval.bootstrap_samples=300",
                "eval.outcome=false",
                *overrides,
            ]
        )
    )


class RecordingRun:
    """What reaches W&B: every logged payload and the summary (a stand-in for a wandb run)."""

    offline, url = True, None

    def __init__(self, root: Path):
        self.dir = str(root / "wandb" / "files")
        self.logged: list[dict] = []
        self.summary: dict = {}

    def define_metric(self, *args, **kwargs):
        pass

    def log(self, values: dict):
        self.logged.append(values)

    def text(self) -> str:
        def plain(value):  # a wandb.Table is its rows and columns; an image is a figure of numbers
            if hasattr(value, "data") and hasattr(value, "columns"):
                return {"columns": value.columns, "data": value.data}
            return repr(value)

        return json.dumps({"logged": self.logged, "summary": self.summary}, default=plain)


def context(run, tmp_path: Path, train=(), val=()):
    from rlhf.stages.context import RunContext
    from rlhf.tracking import Tracker

    tracker = Tracker(tmp_path, {}, run.tracking, "test")
    tracker.wandb_run = RecordingRun(tmp_path)
    return RunContext(
        run=run,
        run_dir=tmp_path,
        state=None,
        tracker=tracker,
        tokenizer=None,
        encoder=FakeEncoder(),
        train_questions=list(train),
        val_questions=list(val),
        results={},
        config_record={},
        started=time.time(),
        policy_dir=str(tmp_path / "start"),
    )


class FakeEncoder:
    """A prompt is the index of its text (the stand-in generator reads the text back)."""

    max_response_len = 64

    def __init__(self):
        self.texts: list[str] = []

    def prompt(self, text: str) -> list[int]:
        self.texts.append(text)
        return [len(self.texts) - 1]


class Policy:
    """The policy being trained, as far as the evaluations see it: safe or unsafe answers, and a
    reward level for its dev answers (the reward model's verdict)."""

    def __init__(self, encoder: FakeEncoder):
        self.encoder, self.safe, self.reward = encoder, True, 0.0

    def generate(self, actors, prompts, *, max_tokens, temperature, seed) -> Responses:
        texts = [self.encoder.texts[p[0]] for p in prompts]
        out = [answer(BY_MESSAGE[t], self.safe) if t in BY_MESSAGE else dev_answer(t) for t in texts]
        return Responses(out, [len(a.split()) for a in out])

    def score(self, items) -> list[float]:
        return [self.reward] * len(items)


def questions(count: int) -> list:
    return [
        SimpleNamespace(speech=Speech(f"q{i}", f"Client speech number {i}: I have been feeling low for weeks."))
        for i in range(count)
    ]


def run_rounds(tmp_path: Path, monkeypatch, plan: list[tuple[bool, float]], gate: bool) -> dict:
    """The online rounds' evaluations as stage=online_dpo runs them (rlhf.eval.online_setup before
    round 1, the dev hook after each round, rlhf.eval.online_report after the last), for rounds whose
    policy is safe or not and has a dev reward: `plan` = [(safe, reward), ...]. The starting policy
    is safe with reward 0."""
    from rlhf.eval import online
    from rlhf.eval.online_report import finish_online
    from rlhf.eval.online_setup import evaluations
    from rlhf.summary import summary_lines, write_summary

    with FakeOpenAI(scripted) as server:
        run = run_config(tmp_path, server, f"eval.safety.gate={str(gate).lower()}", f"online.rounds={len(plan)}")
        ctx = context(run, tmp_path, train=questions(40))
        policy = Policy(ctx.encoder)
        monkeypatch.setattr(online, "generate_on", policy.generate)
        generators = SimpleNamespace(actors=["engine"])
        _, dev_eval, _ = evaluations(ctx)
        assert dev_eval is not None and dev_eval.safety is not None and dev_eval.safety.judge is not None
        assert dev_eval.prepare(generators, policy, resuming=False)
        ctx.results["rounds"] = []
        for number, (safe, reward) in enumerate(plan, start=1):
            policy.safe, policy.reward = safe, reward
            record = {
                "round": number,
                "checkpoint": str(tmp_path / f"policy_round_{number:03d}"),
                "reward_mean": reward,
            }
            record.update(dev_eval(SimpleNamespace(generators=generators, scorer=policy), record))
            ctx.tracker.log_round(record)
            ctx.results["rounds"].append(record)
        ctx.results["eval"] = finish_online(ctx, dev_eval)
        write_summary(ctx)
        judge_calls = server.count()
    summary = json.loads((tmp_path / "run_summary.json").read_text())
    return {"ctx": ctx, "summary": summary, "lines": summary_lines(summary), "judge_calls": judge_calls}


def all_rates(entry: dict) -> list[dict]:
    return [entry["pass_rate"], *entry["categories"].values()]


@pytest.mark.parametrize("gate", [True, False])
def test_rounds_flag_an_unsafe_policy_and_the_gate_keeps_it_from_being_the_best(tmp_path, monkeypatch, caplog, gate):
    caplog.set_level(logging.WARNING)
    # round 1: unsafe but the reward model likes it best; round 2: safe, less reward
    out = run_rounds(tmp_path, monkeypatch, [(False, 1.0), (True, 0.5)], gate)
    safety, rounds = out["summary"]["eval"]["safety"], out["ctx"].results["rounds"]
    assert safety["probes"] == len(PROBES) and safety["categories"] == sorted(CATEGORIES)
    assert safety["judge"]["chat"] == {
        "backend": "openai",
        "base_url": safety["judge"]["chat"]["base_url"],
        "model": "judge",
    }
    start = safety["reference"]
    assert start["judged"] == len(PROBES) and start["not_judged"] == 0 and start["pass_rate"]["mean"] == 1.0
    unsafe, safe = safety["policies"]
    assert unsafe["pass_rate"]["mean"] == 0.0 and unsafe["judged"] == len(PROBES)
    assert unsafe["regressed"] and sorted(unsafe["regressed_categories"]) == sorted(CATEGORIES)
    assert all(rate["mean"] == 0.0 and rate["hi"] == 0.0 for rate in unsafe["categories"].values())
    assert safe["pass_rate"]["mean"] == 1.0 and not safe["regressed"] and safe["regressed_categories"] == []
    for entry in (start, unsafe, safe):
        assert set(entry["categories"]) == set(CATEGORIES)
        assert all(0 <= r["lo"] <= r["mean"] <= r["hi"] <= 1 and r["n"] > 0 for r in all_rates(entry))
    # the round records carry the numbers (metrics.jsonl: rates and category names only)
    assert [r["safety_regressed"] for r in rounds] == [True, False]
    assert rounds[0]["safety_pass_rate"] == 0.0 and rounds[1]["safety_pass_rate"] == 1.0
    # the judge was asked over HTTP about every answer no rule failed: 18 unsafe answers fail by rule
    ruled = sum(1 for p in PROBES if p.category in UNSAFE)
    assert out["judge_calls"] == 3 * len(PROBES) - ruled

    dev = out["summary"]["eval"]["dev"]
    warnings = [
        r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "safety gate" in r.getMessage()
    ]
    report = (tmp_path / "eval" / "report.md").read_text()
    if gate:
        assert dev["best"]["round"] == 2 and dev["best"]["checkpoint"].endswith("policy_round_002")
        assert safety["gated_rounds"] == [1] and safety["gate"] is True and not safety["best_round_regressed"]
        assert len(warnings) == 1 and "round 1 (" in warnings[0] and "cannot be the best checkpoint" in warnings[0]
        assert "best: round 2" in warnings[0]
        assert any(line.startswith("safety gate   : round(s) 1 regressed") for line in out["lines"])
        assert "Safety gate: round(s) 1 regressed" in report
    else:
        assert dev["best"]["round"] == 1  # the regression is reported, but counts for nothing without the gate
        assert safety["gated_rounds"] == [] and safety["best_round_regressed"] and not warnings
        assert "Safety gate" not in report
    assert "## Safety probes" in report and "**0% [0, 0] regressed**" in report and "`judge`" in report
    assert f"| judged / probes | {len(PROBES)} / {len(PROBES)} |" in report


def test_with_the_gate_a_run_whose_every_round_regressed_has_no_best_and_says_why(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING)
    out = run_rounds(tmp_path, monkeypatch, [(False, 1.0)], gate=True)
    assert out["summary"]["eval"]["dev"]["best"] is None and out["summary"]["eval"]["safety"]["gated_rounds"] == [1]
    assert any("no evaluated round passed the gate" in r.getMessage() for r in caplog.records)
    assert any("no best round: every evaluated round regressed on the safety probes" in line for line in out["lines"])


def secrets() -> dict[str, str]:
    """What must stay in the run directory's answer files: the probes' messages, every scripted
    answer (the first 40 characters) and the judge's reasons."""
    texts = {f"probe {p.id}": p.message[:40] for p in PROBES}
    texts.update({f"answer {p.id} ({safe})": answer(p, safe)[:40] for p in PROBES for safe in (True, False)})
    texts["judge reason"] = JUDGE_REASON
    return texts


def leaks(blob: str) -> list[str]:
    escaped = json.dumps(blob)  # also found JSON-escaped (quotes, apostrophes as written)
    return sorted({name for name, text in secrets().items() if text in blob or json.dumps(text)[1:-1] in escaped})


def test_answers_stay_in_the_run_directory_and_logs_metrics_and_wandb_get_rates_only(tmp_path, monkeypatch, caplog):
    from rlhf.logs import quiet_third_party

    quiet_third_party(verbose=True)  # the most a run logs: third-party loggers (httpx, openai) at INFO too
    caplog.set_level(logging.INFO)
    try:
        out = run_rounds(tmp_path, monkeypatch, [(False, 1.0), (True, 0.5)], gate=True)
    finally:
        quiet_third_party()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "safety" in logged  # the module did log (counts and rates)
    assert leaks(logged) == []
    wandb_run = out["ctx"].tracker.wandb_run
    assert wandb_run.summary["safety/start/pass_rate"] == 1.0 and wandb_run.summary["safety/round 1/regressed"] == 1
    assert wandb_run.summary["safety/round 1/suicidal_ideation"] == 0.0
    assert any("online/safety_pass_rate" in values for values in wandb_run.logged)
    assert leaks(wandb_run.text()) == []
    # every file of the run but the answer files: run_summary.json, metrics.jsonl, the dev reference, the report
    kept = {tmp_path / "eval" / "safety" / f"{name}.jsonl" for name in ("start", "round_001", "round_002")}
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p not in kept]
    assert {p.name for p in files} >= {"run_summary.json", "metrics.jsonl", "dev_reference.json", "report.md"}
    assert {str(p.relative_to(tmp_path)): leaks(p.read_text(errors="replace")) for p in files} == {
        str(p.relative_to(tmp_path)): [] for p in files
    }
    # ... and the answer files hold the answers, each with its checks and the judge's reasons
    found = leaks("".join(p.read_text() for p in kept))
    assert (
        "judge reason" in found and f"answer {PROBES[0].id} (False)" in found and f"probe {PROBES[0].id}" not in found
    )
    records = [json.loads(line) for line in (tmp_path / "eval" / "safety" / "round_001.jsonl").read_text().splitlines()]
    assert [r["answer"] for r in records] == [answer(p, safe=False) for p in PROBES]
    judged = [r for r in records if any(c["by"] == "judge" for c in r["checks"].values())]
    assert judged and all(
        c["reason"] == JUDGE_REASON for r in judged for c in r["checks"].values() if c["by"] == "judge"
    )


def test_stage_eval_flags_the_unsafe_policy_against_the_reference(tmp_path, monkeypatch):
    """stage=eval end to end after the answers: two policies (scripted) and a reference endpoint (the
    scripted server, which refuses one probe), judged by the criteria judge over HTTP."""
    from rlhf.eval import run as eval_run
    from rlhf.eval.answers import SAFETY
    from rlhf.eval.summary import summary_lines
    from rlhf.stages import eval as eval_stage
    from rlhf.summary import write_summary

    policies = {}
    for name in ("unsafe_policy", "safe_policy"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
        policies[name] = str(tmp_path / name)

    def local_answers(run, model_dir, jobs):
        safe = Path(model_dir).name == "safe_policy"
        out = {}
        for job, (speeches, _) in jobs.items():
            texts = [answer(BY_MESSAGE[s.text], safe) if job == SAFETY else dev_answer(s.text) for s in speeches]
            out[job] = Responses(texts, [len(t.split()) for t in texts])
        return out

    monkeypatch.setattr(eval_run, "local_answers", local_answers)
    with FakeOpenAI(scripted) as server:
        run = run_config(
            tmp_path / "ev",
            server,
            "stage=eval",
            f"eval.policies=[{policies['unsafe_policy']},{policies['safe_policy']}]",
            "eval.reference.source=endpoint",
            f"eval.reference.base_url={server.url}",
            "eval.reference.model=reference",
            "eval.reference.max_retries=0",
            "eval.judge.absolute=false",
            "eval.length_constrained=false",
            "eval.speeches.limit=2",
        )
        ctx = context(run, tmp_path / "ev", val=questions(2))
        eval_stage.run(ctx)
        write_summary(ctx)
    safety = json.loads((tmp_path / "ev" / "run_summary.json").read_text())["eval"]["safety"]
    assert safety["probes"] == len(PROBES) and safety["categories"] == sorted(CATEGORIES)
    reference = safety["reference"]
    # the refused call is not judged for the reference (never a fail): counted, with its reason
    assert reference["not_judged"] == 1 and reference["not_judged_reasons"] == {NO_ANSWER: 1}
    assert reference["judged"] == len(PROBES) - 1 and reference["pass_rate"]["mean"] == 1.0
    unsafe, safe = safety["policies"]
    assert unsafe["name"] == "unsafe_policy" and safe["name"] == "safe_policy"
    assert unsafe["pass_rate"]["mean"] == 0.0 and unsafe["regressed"]
    assert sorted(unsafe["regressed_categories"]) == sorted(CATEGORIES)
    assert unsafe["difference"]["mean"] == -1.0 and unsafe["difference"]["n"] == len(PROBES) - 1
    assert safe["pass_rate"]["mean"] == 1.0 and not safe["regressed"] and safe["difference"]["mean"] == 0.0
    for entry in (reference, unsafe, safe):
        assert set(entry["categories"]) == set(CATEGORIES)
        assert all(0 <= r["lo"] <= r["mean"] <= r["hi"] <= 1 for r in all_rates(entry))
    assert sorted(p.name for p in (tmp_path / "ev" / "eval" / "safety").iterdir()) == [
        "reference.jsonl",
        "safe_policy.jsonl",
        "unsafe_policy.jsonl",
    ]
    report = (tmp_path / "ev" / "eval" / "report.md").read_text()
    assert "rules, then the LLM judge `judge` per criterion" in report
    assert f"| judged / probes | {len(PROBES) - 1} / {len(PROBES)} | {len(PROBES)} / {len(PROBES)} |" in report
    lines = summary_lines(ctx.results["eval"])
    n = len(PROBES)
    assert (
        f"safety        : unsafe_policy: pass rate 0% ({n} of {n} judged) vs reference 100% ({n - 1} judged)"
        in lines[0]
    )
    assert "REGRESSED in suicidal_ideation, self_harm" in lines[0]
    assert lines[1].startswith("safety        : safe_policy: pass rate 100%") and lines[1].endswith("no regression")
    assert leaks(ctx.tracker.wandb_run.text()) == []


def test_the_closing_summary_counts_rule_failures_without_a_judge_and_needs_no_reference():
    from rlhf.eval.summary import summary_lines

    nothing = {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    entry = {"name": "p", "judged": 3, "not_judged": 73, "passed": 0, "failed": 3, "pass_rate": {**nothing, "n": 3}}
    rules = {"probes": 76, "judge": "rules only", "reference": {**entry, "name": "reference", "failed": 2}}
    (line,) = summary_lines({"safety": {**rules, "policies": [{**entry, "regressed": False}]}})
    assert line == (
        "safety        : p: 3 of 76 probes failed a rule (reference: 2), 73 not judged (rules only; an LLM "
        "eval.judge decides the rest); no regression"
    )
    judged = {"probes": 76, "judge": {"chat": {"model": "judge"}}, "reference": None}
    (line,) = summary_lines({"safety": {**judged, "policies": [{**entry, "judged": 0, "pass_rate": nothing}]}})
    assert (
        line
        == "safety        : p: pass rate n/a (0 of 76 judged); rules + LLM judge; no reference answers, no comparison"
    )


def test_the_report_shows_nothing_decided_by_rules_alone_as_a_dash_and_says_how_to_get_rates():
    from rlhf.eval.report_sections import safety_section

    nothing = {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    entry = {"judged": 0, "probes": 76, "pass_rate": nothing, "categories": {"self_harm": nothing}}
    section = "\n".join(
        safety_section(
            {
                "probes": 76,
                "categories": ["self_harm"],
                "judge": "rules only",
                "reference": {**entry, "name": "start", "not_judged": 76},
                "policies": [{**entry, "name": "round 1"}],
            }
        )
    )
    assert "nan" not in section
    assert "| self harm | - | - |" in section and "| **all** | - | - |" in section
    assert "No probe was decided" in section and "`eval.judge`" in section


@pytest.mark.parametrize(
    "overrides",
    [["eval.safety.gate=true"], ["eval.safety.gate=true", "eval=gpt4o", "eval.safety.judge=rules"]],
)
def test_a_gate_the_rules_alone_could_never_close_is_refused(overrides):
    from rlhf.errors import ConfigError

    with pytest.raises(ConfigError, match=r"eval.safety.gate=true needs an LLM judge"):
        load_config(compose(overrides))
    load_config(compose(["eval.safety.gate=true", "eval=gpt4o"]))  # an LLM judge: the gate can close
