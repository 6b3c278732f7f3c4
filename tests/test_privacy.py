"""Redaction of personal details in the opt-in sample tables."""

import pytest

from rlhf.privacy import redact

PII = {
    "[EMAIL]": ["jane.doe+work@example.co.uk", "me@mail.org"],
    "[URL]": ["https://example.com/my/profile?id=3", "www.myblog.net/post"],
    "[PHONE]": ["+1 (555) 123-4567", "555-867-5309", "020 7946 0958"],
    "[HANDLE]": ["@sad_panda99", "@jdoe"],
    "[ADDRESS]": ["221 Baker Street", "1600 Pennsylvania Ave", "42 Elm Tree Road"],
}


@pytest.mark.parametrize("placeholder, value", [(k, v) for k, values in PII.items() for v in values])
def test_each_kind_is_replaced(placeholder, value):
    text = f"Hi, I am writing because of {value}. It makes me anxious."
    out = redact(text)
    assert value not in out and placeholder in out
    assert out.startswith("Hi, I am writing because of ") and out.endswith(". It makes me anxious.")


def test_ordinary_counselling_text_is_left_alone():
    text = "I have felt low for 3 years, since I was 19, and sleep 4 hours a night. My therapist says it's ok."
    assert redact(text) == text
