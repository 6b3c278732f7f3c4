"""What stage=eval evaluates: the policies (each round's checkpoint of eval.run, eval.policies or
model.path), the speeches, and the variants (unconstrained, and length-constrained as the paper)."""

from __future__ import annotations

import re
from pathlib import Path

from rlhf.data.errors import DataError
from rlhf.eval.generate import Variant
from rlhf.paths import resolve_path

ROUND_DIR = re.compile(r"policy_round_(\d+)$")


def bootstrap_args(ev) -> dict:
    return {"samples": ev.bootstrap_samples, "confidence": ev.confidence}


def policy_list(run) -> list[tuple[str, str, int | None]]:
    """(name, checkpoint directory, round or None) of every policy to evaluate, in order."""
    ev, out = run.eval, []
    if ev.run:
        checkpoints = Path(resolve_path(ev.run)) / "checkpoints"
        rounds = sorted(
            (int(m.group(1)), p)
            for p in checkpoints.glob("policy_round_*")
            if (m := ROUND_DIR.search(p.name)) and (p / "config.json").is_file()
        )
        if not rounds and not ev.policies:
            raise DataError(
                str(checkpoints),
                "no policy_round_NNN checkpoints in this run directory",
                hint="eval.run takes the run_dir of a run with online rounds; or set eval.policies",
            )
        out += [(p.name, str(p), number) for number, p in rounds]
    for path in ev.policies:
        p = Path(resolve_path(path))
        if not (p / "config.json").is_file():
            raise DataError(str(p), "not a model directory (no config.json)", hint="check eval.policies")
        out.append((p.name, str(p), None))
    if not out and run.model.path:
        out.append((Path(run.model.path).name, str(resolve_path(run.model.path)), None))
    return out


def tokenizer_model(run) -> str:
    """The model whose tokenizer and chat template stage=eval prompts with (the first policy)."""
    return policy_list(run)[0][1]


def eval_speeches(run, val_questions: list) -> tuple[list, str]:
    """(speeches, description of the source): a speech file, the questions of a preference split, or
    counsel-chat's held-out (val) questions."""
    from rlhf.prefs.speeches import clean, read_speeches

    ev = run.eval
    source = ev.speeches
    if source.path:
        path = resolve_path(source.path)
        kept, filters = clean(read_speeches(path, source.columns, source.format), source.min_chars, source.max_chars)
        if not kept:
            raise filters.removed_all(path, source.min_chars, source.max_chars, "eval.speeches")
        return kept[: source.limit], str(source.path)
    if ev.preference_path:
        from rlhf.pairs.parquet import read_preference_parquet

        seen, speeches = set(), []
        for pair in read_preference_parquet(resolve_path(ev.preference_path)):
            if pair.speech.text not in seen:
                seen.add(pair.speech.text)
                speeches.append(pair.speech)
        return speeches[: source.limit], f"questions of {ev.preference_path}"
    return [q.speech for q in val_questions][: source.limit], f"{run.data.path} (held-out val questions)"


def variants(run) -> list[Variant]:
    ev = run.eval
    out = [Variant("unconstrained", ev.max_tokens or run.model.max_response_len)]
    if ev.length_constrained:
        out.append(
            Variant("length_constrained", ev.length_max_tokens, ev.length_instruction.format(words=ev.length_words))
        )
    return out


def describe_variant(v: Variant) -> str:
    if not v.instruction:
        return f"answers capped at {v.max_tokens} tokens"
    return f'instruction "{v.instruction}" added after the speech, answers capped at {v.max_tokens} tokens'


def words(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]
