"""Device-specific calls stay in rlhf/device.py, so CPU runs exercise all other code."""

import re

from tests.conftest import REPO_ROOT

DEVICE_SPECIFIC = re.compile(r"torch\.cuda|\.cuda\(|[\"']cuda[\"']|[\"']nccl[\"']|pynccl|NCCL_")


def test_no_device_specific_call_outside_the_device_module():
    offenders = []
    for path in (REPO_ROOT / "rlhf").rglob("*.py"):
        if path.name == "device.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            code = line.split("#", 1)[0]
            if DEVICE_SPECIFIC.search(code):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert not offenders, "device-specific calls outside rlhf/device.py:\n" + "\n".join(offenders)
