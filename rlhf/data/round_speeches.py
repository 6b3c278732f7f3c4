"""The client speeches the online rounds draw from (online.speech_source), and what to say when a
round asks for more speeches than the source holds (each round would then repeat speeches)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rlhf.choices import RoundSpeeches
from rlhf.data.records import Speech
from rlhf.paths import resolve_path

if TYPE_CHECKING:
    from rlhf.config import RunConfig

log = logging.getLogger(__name__)


def round_speeches(run: RunConfig, train_questions: list) -> list[Speech]:
    """The speeches of online.speech_source, each once, in the source's order."""
    source = run.online.speech_source
    if source == RoundSpeeches.preference_data:
        from rlhf.pairs.parquet import read_preference_parquet

        return distinct([pair.speech for pair in read_preference_parquet(resolve_path(run.data.preference_path))])
    if source == RoundSpeeches.prefs:
        from rlhf.prefs.speeches import clean, read_speeches

        s = run.prefs.speeches
        path = resolve_path(s.path)
        kept, counts = clean(read_speeches(path, s.columns, s.format), s.min_chars, s.max_chars)
        if not kept:
            raise counts.removed_all(path, s.min_chars, s.max_chars, "prefs.speeches")
        return kept[: s.limit] if s.limit else kept
    return [q.speech for q in train_questions]


def distinct(speeches: list[Speech]) -> list[Speech]:
    """First occurrence of each text (whitespace and case aside; a preference set has several pairs
    per question), ids made unique."""
    from rlhf.prefs.speeches import normalise

    seen, ids, out = set(), set(), []
    for speech in speeches:
        key = normalise(speech.text)
        if key in seen:
            continue
        seen.add(key)
        if speech.id in ids:
            speech = Speech(f"{speech.id}-{len(out)}", speech.text, speech.topic)
        ids.add(speech.id)
        out.append(speech)
    return out


def repeat_warning(per_round: int, available: int, source: str) -> str | None:
    """The warning when a round samples more speeches than there are (None when they fit)."""
    if per_round <= available:
        return None
    times = per_round / max(available, 1)
    return (
        f"online.speeches_per_round={per_round} but the rounds draw from {available} distinct speeches "
        f"(online.speech_source={source}): every round repeats speeches, each about {times:.1f} "
        "times. Use a larger source (online.speech_source=preference_data or prefs) or fewer speeches per round"
    )


def report(run: RunConfig, available: int) -> dict:
    """Log the warning if a round repeats speeches; what the run summary records about the source."""
    online = run.online
    warning = repeat_warning(online.speeches_per_round, available, str(online.speech_source))
    if warning:
        log.warning(warning)
    return {
        "source": str(online.speech_source),
        "distinct": available,
        "per_round": online.speeches_per_round,
        "repeats": warning is not None,
    }
