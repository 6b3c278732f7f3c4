"""The schema in Hydra's ConfigStore, and `--help` generated from it.

conf/config.yaml names `rlhf_schema` first in its defaults list, so every composed config is typed
by RunConfig: a wrong type or an unknown key fails while composing, with the key named. `--help`
lists every field with its type, default and help text (from the dataclasses' metadata).
"""

from __future__ import annotations

import dataclasses
import typing
from enum import Enum

from rlhf.config.schema import RunConfig

SCHEMA = "rlhf_schema"
HEADER = (
    "python -m rlhf.launch (or rlhf-launch): PsychoCounsel-style RLHF on Ray.\n"
    "Usage: rlhf-launch [group=option ...] [key=value ...]    e.g. rlhf-launch model=smollm2 online.rounds=2\n"
    "--cfg job prints the composed config; README.md and docs/ explain the stages."
)


def type_name(annotation) -> str:
    """`int`, `float or null`, `cpu | gpu` (an enum's values), `list`, ..."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return f"{type_name(inner[0])} or null" if len(inner) == 1 else "any"
    if origin in (list, typing.List):  # noqa: UP006
        return f"list of {type_name(args[0])}" if args else "list"
    if origin in (dict, typing.Dict):  # noqa: UP006
        return "dict"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " | ".join(m.value for m in annotation)
    return getattr(annotation, "__name__", str(annotation))


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    if isinstance(value, Enum):
        value = value.value
    elif isinstance(value, list):
        value = [v.value if isinstance(v, Enum) else v for v in value]
        if value and dataclasses.is_dataclass(value[0]):
            return f"{len(value)} entries"
    text = "null" if value is None else "required" if value == "???" else str(value)
    text = text.replace("${now:%Y%m%d-%H%M%S}", "<date-time>")
    return text if len(text) <= 40 else text[:37] + "..."


def field_lines(cls=RunConfig, prefix: str = "") -> list[str]:
    """One line per leaf field (`key (type) = default: help`), a heading per section."""
    hints = typing.get_type_hints(cls)
    lines = []
    for f in dataclasses.fields(cls):
        annotation = hints[f.name]
        key = f"{prefix}{f.name}"
        help_text = f.metadata.get("help", "")
        if dataclasses.is_dataclass(annotation):
            lines.append(f"\n{key}: {help_text}")
            lines += field_lines(annotation, key + ".")
        else:
            lines.append(f"  {key} ({type_name(annotation)}) = {_default(f)}: {help_text}")
    return lines


def help_template() -> str:
    fields = "\n".join(field_lines()).replace("$", "$$")  # string.Template would read a lone $
    return (
        "${hydra.help.header}\n\n== Config groups (group=option) ==\n$APP_CONFIG_GROUPS\n\n"
        f"== Fields: key (type) = default: help ==\n{fields}\n\n${{hydra.help.footer}}\n"
    )


def register() -> None:
    """The schema and the help page in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name=SCHEMA, node=RunConfig)
    store.store(
        group="hydra/help",
        name="rlhf",
        node={
            "app_name": "rlhf-launch",
            "header": HEADER,
            "template": help_template(),
            "footer": "Hydra's own flags: --hydra-help. Every field is checked before any actor starts.",
        },
    )
