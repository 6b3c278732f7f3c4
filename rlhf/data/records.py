"""The records that flow between stages. Plain dataclasses so Ray can ship them cheaply."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Speech:
    """One client speech (what a client says to a counsellor)."""

    id: str
    text: str
    topic: str = ""


@dataclass(frozen=True)
class SFTExample:
    """A client speech with a therapist's answer, for the supervised warm start."""

    speech: Speech
    answer: str


@dataclass(frozen=True)
class PreferencePair:
    """Two responses to one speech; `chosen` is preferred over `rejected`."""

    speech: Speech
    chosen: str
    rejected: str
    chosen_score: float = 0.0
    rejected_score: float = 0.0
    chosen_index: int = -1  # online rounds: position among all the round's samples (-1 elsewhere)
    rejected_index: int = -1
