"""Checks of the preference builder's config section (prefs), before any actor starts."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from rlhf.choices import Aggregate, ChatBackend, not_one_of

if TYPE_CHECKING:
    from rlhf.config import PrefsConfig


def validate_prefs(prefs: PrefsConfig, building: bool) -> list[str]:
    """Checks of the preference-builder section (responders only when stage=build_prefs)."""
    errors = []
    errors += not_one_of("prefs.aggregate", prefs.aggregate, Aggregate)
    if not 0 <= prefs.speeches.min_chars <= prefs.speeches.max_chars:
        errors.append("prefs.speeches.min_chars must be >= 0 and <= prefs.speeches.max_chars")
    if prefs.speeches.limit is not None and prefs.speeches.limit < 1:
        errors.append(f"prefs.speeches.limit={prefs.speeches.limit} must be >= 1 (null = every cleaned speech)")
    if prefs.min_gap < 0 or not 0 <= prefs.test_fraction < 1:
        errors.append("prefs.min_gap must be >= 0 and prefs.test_fraction in [0, 1)")
    if prefs.judge.max_attempts < 1 or prefs.samples_per_responder < 1 or prefs.responders_per_speech < 1:
        errors.append(
            "prefs.judge.max_attempts, prefs.samples_per_responder and prefs.responders_per_speech must be >= 1"
        )
    backends = [(f"prefs.responders[{i}]", r) for i, r in enumerate(prefs.responders)] + [("prefs.judge", prefs.judge)]
    for label, backend in backends:
        errors += not_one_of(f"{label}.backend", backend.backend, ChatBackend)
        if backend.backend == ChatBackend.openai and not (backend.base_url and backend.model):
            errors.append(f"{label}: backend=openai needs base_url and model")
        if backend.concurrency < 1 or backend.max_retries < 0 or backend.max_tokens < 1:
            errors.append(f"{label}: concurrency and max_tokens must be >= 1, max_retries >= 0")
    names = [r.name for r in prefs.responders]
    if any(not n for n in names) or len(set(names)) != len(names):
        errors.append("prefs.responders: every responder needs a unique, non-empty name")
    if building:
        for label, backend in backends:  # the key itself is never read here, only whether it is there
            if (
                backend.backend == ChatBackend.openai
                and backend.api_key_env
                and not os.environ.get(backend.api_key_env)
            ):
                errors.append(f"{label}.api_key_env: environment variable {backend.api_key_env} is not set")
        if not prefs.responders:
            errors.append("stage=build_prefs needs at least one responder in prefs.responders")
        elif min(prefs.responders_per_speech, len(prefs.responders)) * prefs.samples_per_responder < 2:
            errors.append(
                "prefs: responders_per_speech x samples_per_responder must give at least 2 responses "
                "per speech to form a pair"
            )
    return errors
