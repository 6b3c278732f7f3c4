"""Redaction of personal details before any text is shown outside the run directory.

By default no client speech or generated response is logged anywhere (metrics only). When a user
asks for sample tables (`tracking.log_samples > 0`), every text goes through `redact` first.
"""

from __future__ import annotations

import re

_STREET = r"(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|terrace|square|sq)"
PATTERNS = [  # order matters: e-mails before @handles, URLs before phone-like digit runs
    ("[EMAIL]", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    ("[URL]", re.compile(r"(?:https?://|www\.)\S*[^\s.,;:!?)\]'\"]", re.IGNORECASE)),
    ("[ADDRESS]", re.compile(rf"\b\d{{1,5}}\s+(?:[A-Za-z][\w'-]*\s+){{1,4}}{_STREET}\b", re.IGNORECASE)),
    ("[PHONE]", re.compile(r"(?<![\w])\+?\d[\d\s().-]{6,}\d(?![\w])")),
    ("[HANDLE]", re.compile(r"(?<![\w@])@[A-Za-z0-9_]{2,}")),
]


def redact(text: str) -> str:
    for placeholder, pattern in PATTERNS:
        text = pattern.sub(placeholder, text)
    return text
