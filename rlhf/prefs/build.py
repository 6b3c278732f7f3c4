"""Orchestration of the preference build (stage=build_prefs):

  speeches (read, clean) -> draw R responders per speech -> responses -> judgements -> pairs.

Every response and judgement is appended to a durable store in the output directory as soon as it
arrives (responses.jsonl keyed by speech/responder/sample, judgements.jsonl keyed by
response/judge), so a killed build resumes where it stopped and a finished build reruns with no
calls. Calls that fail on the transport (after retries) are not stored and are retried by the
next run; answers the judge gets wrong N times are stored as unscored, with the reason.

Logs and the summary hold counts only, never client or response text."""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rlhf.atomic import write_json
from rlhf.chat.api import ChatResult
from rlhf.chat.backends import chat_backend
from rlhf.logs import progress, setup
from rlhf.pairs import judged, parquet
from rlhf.prefs.judge import Judge, JudgePrompt
from rlhf.prefs.report import check_judge, summary_lines
from rlhf.prefs.responders import build_pool, draw
from rlhf.prefs.speeches import clean, read_speeches
from rlhf.prefs.store import Store

log = logging.getLogger(__name__)


def speech_key(speech) -> str:
    """The speech's id plus a hash of its text: an edited speech is a new speech."""
    return f"{speech.id}#{hashlib.sha256(speech.text.encode()).hexdigest()[:10]}"


def response_id(key: str, responder: str, sample: int) -> str:
    return f"{key}|{responder}|{sample}"


@dataclass
class Job:
    speech: object
    key: str
    responder: str
    sample: int


@dataclass
class Counts:
    responses_planned: int = 0
    responses_stored_before: int = 0
    responses_new: int = 0
    responses_failed: int = 0  # transport failures: retried by the next run
    responses_unanswerable: int = 0  # permanent errors (e.g. HTTP 400), stored
    judgements_planned: int = 0
    judgements_stored_before: int = 0
    judgements_new: int = 0
    judgements_failed: int = 0  # transport failures: retried by the next run
    scored: int = 0
    unscored: int = 0
    unscored_reasons: dict = field(default_factory=dict)


def _progress(total: int, desc: str):
    return progress(
        total, desc, "call", bar_format="{desc}: {n_fmt}/{total_fmt} {bar} [{elapsed}<{remaining}, {rate_fmt}]{postfix}"
    )


def run_backends(tasks: list[tuple[object, list, bool]]):
    """Runs each backend's requests in its own thread (each bounds its own concurrency) and yields
    (task index, request index, ChatResult) in arrival order. Stops the others on an error."""
    results: queue.Queue = queue.Queue()
    stop = threading.Event()

    def work(number, backend, requests, truncate):
        try:
            stream = backend.complete_many(requests, truncate=truncate)
            for index, result in stream:
                results.put((number, index, result))
                if stop.is_set():
                    stream.close()
                    break
        except BaseException as err:  # handed to the main thread
            results.put((number, None, err))
        finally:
            results.put((number, None, None))

    threads = [threading.Thread(target=work, args=(n, *task), daemon=True) for n, task in enumerate(tasks)]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            number, index, item = results.get()
            if index is not None:
                yield number, index, item
            elif item is None:
                running -= 1
            else:
                raise item
    finally:
        stop.set()


class PreferenceBuild:
    def __init__(self, run, out_dir: Path, default_model: str, resolve, local_models):
        self.run, self.cfg = run, run.prefs
        self.out_dir = Path(out_dir)
        self.default_model, self.resolve, self.local_models = default_model, resolve, local_models
        self.counts = Counts()

    # -- inputs -------------------------------------------------------------------------------------
    def speeches(self):
        source = self.cfg.speeches
        path = self.resolve(source.path)
        kept, filters = clean(read_speeches(path, source.columns, source.format), source.min_chars, source.max_chars)
        if not kept:
            raise filters.removed_all(path, source.min_chars, source.max_chars, "prefs.speeches")
        self.filters = filters.as_dict()
        log.info(
            f"speeches: {filters.rows_read} rows read; removed {filters.empty} empty, {filters.too_short} under "
            f"{source.min_chars} chars, {filters.too_long} over {source.max_chars} chars, {filters.duplicates} "
            f"duplicates; {filters.kept} kept" + (f", first {source.limit} used" if source.limit is not None else "")
        )
        return kept[: source.limit]

    # -- the build ----------------------------------------------------------------------------------
    def execute(self) -> dict:
        setup()
        started = time.time()
        cfg = self.cfg
        speeches = self.speeches()
        prompt = JudgePrompt.load(self.resolve(cfg.judge.prompt) if cfg.judge.prompt else None)
        system_prompt = cfg.system_prompt if cfg.system_prompt is not None else self.run.system_prompt
        self.out_dir.mkdir(parents=True, exist_ok=True)
        responses = Store(self.out_dir / "responses.jsonl", ("speech", "responder", "sample"))
        judgements = Store(self.out_dir / "judgements.jsonl", ("response", "judge"))
        try:
            for store in (responses, judgements):
                if store.torn_lines:
                    log.warning("%s: dropped a torn last line left by an interrupted build", store.path.name)
            pool = build_pool(cfg.responders, self.local_models, self.default_model, system_prompt)
            judge_cfg = cfg.judge
            judge_backend = chat_backend(judge_cfg, "judge", self.local_models, self.default_model)
            judge = Judge(
                judge_backend,
                prompt,
                max_attempts=judge_cfg.max_attempts,
                temperature=judge_cfg.temperature,
                max_tokens=judge_cfg.max_tokens,
                json_mode=judge_cfg.json_mode,
            )
            judge_desc = {**judge_backend.describe(), "prompt": prompt.version, "prompt_sha256": prompt.sha256}
            # The judge's identity: what it is and how it is asked (not where it is served from).
            # (keyed "kind" as in stores written before the field was called backend: same judge, same id)
            identity = {
                "kind": judge_desc["backend"],
                "model": judge_desc.get("model"),
                "prompt_sha256": judge_desc["prompt_sha256"],
            }
            identity.update(
                temperature=judge_cfg.temperature, max_tokens=judge_cfg.max_tokens, json_mode=judge_cfg.json_mode
            )
            judge_id = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

            plan = [
                Job(s, speech_key(s), name, k)
                for s in speeches
                for name in draw(list(pool), cfg.responders_per_speech, self.run.seed, speech_key(s))
                for k in range(cfg.samples_per_responder)
            ]
            self.respond(plan, pool, responses)
            self.judge(plan, responses, judge, judge_id, judgements)
            scored = self.collect(plan, responses, judgements, judge_id)
            summary = self.write_outputs(speeches, scored, pool, judge_desc, judge_id, system_prompt, started)
            summary["judge_check"] = check_judge(
                judge, [s for _, items in scored for s in items][: cfg.judge_check], cfg.aggregate
            )
        finally:
            responses.close()
            judgements.close()
        # per endpoint responder; local responders sharing a model share one actor and one count
        stats = {
            name
            if r.backend.describe()["backend"] == "openai"
            else f"local:{r.backend.describe()['model']}": r.backend.stats.as_dict()
            for name, r in pool.items()
        }
        summary["calls"] = {"responders": stats, "judge": judge_backend.stats.as_dict()}
        write_json(self.out_dir / "provenance.json", summary)
        for line in summary_lines(summary):
            log.info(line)
        return summary

    def respond(self, plan: list[Job], pool: dict, store: Store) -> None:
        counts = self.counts
        counts.responses_planned = len(plan)
        todo = [j for j in plan if (j.key, j.responder, j.sample) not in store]
        counts.responses_stored_before = len(plan) - len(todo)
        by_backend: dict[int, tuple[object, list[Job]]] = {}
        for job in todo:
            by_backend.setdefault(id(pool[job.responder].backend), (pool[job.responder].backend, []))[1].append(job)
        groups = list(by_backend.values())
        tasks = [(backend, [pool[j.responder].request(j.speech.text) for j in jobs], True) for backend, jobs in groups]
        with _progress(len(todo), "responses") as bar:
            for number, index, result in run_backends(tasks):
                job = groups[number][1][index]
                if result.text is None and not result.permanent:
                    counts.responses_failed += 1
                else:
                    store.append(
                        {
                            "speech": job.key,
                            "responder": job.responder,
                            "sample": job.sample,
                            "text": result.text,
                            "error": result.error,
                            "time": round(time.time(), 3),
                        }
                    )
                    counts.responses_new += result.text is not None
                    counts.responses_unanswerable += result.text is None
                bar.update(1)
                bar.set_postfix(failed=counts.responses_failed, refresh=False)

    def judge(self, plan: list[Job], responses: Store, judge: Judge, judge_id: str, store: Store) -> None:
        counts = self.counts
        answered = [(j, responses.get((j.key, j.responder, j.sample))) for j in plan]
        answered = [(j, r) for j, r in answered if r is not None and r.get("text") is not None]
        counts.judgements_planned = len(answered)
        todo = [(j, r) for j, r in answered if (response_id(j.key, j.responder, j.sample), judge_id) not in store]
        counts.judgements_stored_before = len(answered) - len(todo)
        with _progress(len(todo), "judgements") as bar:
            for index, verdict in judge.judge_many([(j.speech.text, r["text"]) for j, r in todo]):
                job = todo[index][0]
                if isinstance(verdict, ChatResult):
                    counts.judgements_failed += 1
                else:
                    store.append(
                        {
                            "response": response_id(job.key, job.responder, job.sample),
                            "judge": judge_id,
                            "ratings": verdict.ratings,
                            "reason": verdict.reason,
                            "attempts": verdict.attempts,
                            "raw": verdict.raw,
                            "time": round(time.time(), 3),
                        }
                    )
                    counts.judgements_new += 1
                bar.update(1)
                bar.set_postfix(failed=counts.judgements_failed, refresh=False)

    def collect(self, plan: list[Job], responses: Store, judgements: Store, judge_id: str):
        counts, reasons = self.counts, Counter()
        groups: dict[str, list] = {}
        for job in plan:
            groups.setdefault(job.key, [])
            response = responses.get((job.key, job.responder, job.sample))
            verdict = judgements.get((response_id(job.key, job.responder, job.sample), judge_id))
            if response is None or verdict is None:
                continue
            if verdict["ratings"] is None:
                counts.unscored += 1
                reasons[verdict["reason"].split(" (after")[0]] += 1
                continue
            counts.scored += 1
            groups[job.key].append(
                judged.Scored(job.speech, job.responder, job.sample, response["text"], verdict["ratings"])
            )
        counts.unscored_reasons = dict(reasons.most_common())
        return list(groups.items())

    def write_outputs(self, speeches, groups, pool, judge_desc, judge_id, system_prompt, started) -> dict:
        cfg = self.cfg
        split = judged.make_pairs(
            groups, aggregate=cfg.aggregate, min_gap=cfg.min_gap, test_fraction=cfg.test_fraction, seed=self.run.seed
        )
        files = {}
        for name, rows in split.items():
            path = self.out_dir / f"{name}.parquet"
            parquet.write_parquet(rows, path)
            files[name] = str(path)
        scored = [s for _, items in groups for s in items]
        counts = vars(self.counts)
        incomplete = self.counts.responses_failed + self.counts.judgements_failed
        return {
            "complete": incomplete == 0,
            "files": files,
            "pairs": {name: len(rows) for name, rows in split.items()},
            "speeches": {"source": cfg.speeches.path, "filters": self.filters, "used": len(speeches)},
            "judge": {**judge_desc, "id": judge_id, "max_attempts": cfg.judge.max_attempts},
            "responders": [r.describe() for r in pool.values()],
            "responders_per_speech": cfg.responders_per_speech,
            "samples_per_responder": cfg.samples_per_responder,
            "system_prompt_sha256": hashlib.sha256(system_prompt.encode()).hexdigest(),
            "aggregate": cfg.aggregate,
            "min_gap": cfg.min_gap,
            "test_fraction": cfg.test_fraction,
            "seed": self.run.seed,
            "counts": counts,
            "mean_ratings": judged.mean_ratings(scored, cfg.aggregate),
            "wall_seconds": round(time.time() - started, 1),
        }


def build_preferences(run, out_dir: Path, default_model: str, resolve, local_models) -> dict:
    return PreferenceBuild(run, out_dir, default_model, resolve, local_models).execute()
