"""Finding client speech and generated text where a run must keep only numbers: its console, its
logs, Ray's session directory, W&B's files. A run's own data files (pairs, evaluation answers,
checkpoints, training state) are where that text belongs and are not searched."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

SNIPPET = 40  # characters: long enough to be one text's own, short enough to catch a cut-off log line
# Where a run keeps text on purpose: top-level directories of the run directory, and evaluation
# files of answers (eval/*.jsonl, eval/safety/*.jsonl) and the report with its sample answers.
LOCAL_DATA_DIRS = {"checkpoints", "state", "pairs", "reward_data"}


def snippet(text: str) -> str | None:
    """The first SNIPPET characters of a text, or None when it is too short to be its own."""
    text = text.strip()
    return text[:SNIPPET] if len(text) >= SNIPPET else None


def snippets(texts: Iterable[str]) -> set[str]:
    return {s for s in map(snippet, texts) if s}


def generated_texts(run_dir: Path) -> list[str]:
    """The responses a run generated and kept locally: its rounds' pairs and its evaluation answers."""
    texts = []
    for path in sorted((run_dir / "pairs").glob("*.jsonl")):
        for record in map(json.loads, path.read_text().splitlines()):
            texts += [record["chosen"], record["rejected"]]
    for path in sorted((run_dir / "eval").rglob("*.jsonl")):
        for record in map(json.loads, path.read_text().splitlines()):
            texts += [record[key] for key in ("text", "answer") if isinstance(record.get(key), str)]
    return texts


def is_local_data(path: Path, run_dir: Path) -> bool:
    parts = path.relative_to(run_dir).parts
    if parts[0] in LOCAL_DATA_DIRS:
        return True
    return parts[0] == "eval" and (path.suffix == ".jsonl" or path.name == "report.md")


def forms(secret: str) -> list[bytes]:
    """The secret as it would be written raw, or inside JSON (escaped quotes, newlines, non-ASCII)."""
    out = {secret.encode(), json.dumps(secret)[1:-1].encode(), json.dumps(secret, ensure_ascii=False)[1:-1].encode()}
    return sorted(out)


def find(secrets: Iterable[str], places: Iterable[tuple[str, bytes]]) -> list[tuple[str, str]]:
    """(place, secret) for every secret found in any place's content."""
    encoded = [(secret, forms(secret)) for secret in secrets]
    return [
        (name, secret) for name, data in places for secret, variants in encoded if any(v in data for v in variants)
    ]


def files(root: Path, skip=lambda path: False) -> Iterable[tuple[str, bytes]]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and not skip(path):
            yield str(path), path.read_bytes()


def compile_cache(path: Path) -> bool:
    """torch's compiled kernels and headers under TMPDIR (one is 150 MB): code, never a run's text."""
    return any(part.startswith("torchinductor_") for part in path.parts)
