"""Turn a client speech into chat messages for the policy, the reward model and the tokenizer."""

from __future__ import annotations


def chat_messages(system_prompt: str, speech: str, response: str | None = None) -> list[dict]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": speech})
    if response is not None:
        messages.append({"role": "assistant", "content": response})
    return messages
