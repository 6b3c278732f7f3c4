"""One config source: the dataclasses hold every default and its help text, Hydra composes against
them, conf/config.yaml only picks options, and --help shows every field with its type."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing

from omegaconf import OmegaConf

from rlhf.config import RunConfig
from tests.conftest import REPO_ROOT


def fields(cls, prefix=""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        yield f"{prefix}{f.name}", f, hints[f.name]
        if dataclasses.is_dataclass(hints[f.name]):
            yield from fields(hints[f.name], f"{prefix}{f.name}.")


def test_every_field_has_help():
    missing = [key for key, f, _ in fields(RunConfig) if not f.metadata.get("help")]
    assert missing == []


def test_config_yaml_only_picks_options():
    top = OmegaConf.load(REPO_ROOT / "conf" / "config.yaml")
    assert set(top) == {"defaults", "hydra"}
    assert top.defaults[0] == "rlhf_schema"


def test_help_lists_fields_with_types_and_defaults():
    out = subprocess.run([sys.executable, "-m", "rlhf.launch", "--help"], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    for line in ("online.lr (float) = 5e-07: AdamW learning rate", "device.type (cpu | gpu) = cpu",
                 "online.loss (str) = dpo", "reward.source (str) = local", "model.path (str or null) = required"):
        assert line in out, line
    assert "model: hf, llama3_3b, llama3_8b, small, smollm2, tiny" in out  # the config groups
