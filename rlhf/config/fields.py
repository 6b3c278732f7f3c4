"""A dataclass field with its help text, which `python -m rlhf.launch --help` shows."""

from __future__ import annotations

from dataclasses import MISSING, field
from typing import Any

import omegaconf

REQUIRED = omegaconf.MISSING  # "???": a value that the chosen preset or the command line must give


def opt(default: Any = MISSING, help: str = "", *, factory=None):  # noqa: A002 - the metadata key --help reads
    """A field with its help text (shown by --help)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})
