"""From Hydra's composed config to a checked RunConfig.

`compose` composes conf/ as `python -m rlhf.launch` does (for tools and tests), `load_config` turns
the result into the dataclasses (missing values and wrong types fail here, with the key named), and
`validate` runs every section's own checks plus the run-level ones, before any actor starts."""

from __future__ import annotations

import re
from collections.abc import Iterable

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlhf.choices import Stage, not_one_of
from rlhf.config.schema import RECIPE, RunConfig
from rlhf.config.store import register
from rlhf.errors import ConfigError
from rlhf.eval.checks import validate_eval
from rlhf.layout import layout_errors
from rlhf.models.checks import validate_model
from rlhf.paths import CONF_DIR
from rlhf.prefs.checks import validate_prefs
from rlhf.scoring.sources import validate_reward
from rlhf.sync.checks import validate_sync
from rlhf.training.checks import validate_training

register()


def describe(err: OmegaConfBaseException) -> str:
    """An OmegaConf error as `key='value': what is wrong`."""
    key = getattr(err, "full_key", None) or getattr(err, "key", None)
    message = str(getattr(err, "msg", None) or err).splitlines()[0]
    value = getattr(err, "value", None)
    choices = re.match(r"Invalid value '.*', expected one of \[(.*)\]", message)
    if key and value is not None and choices:  # an enum field: the same words as every other choice check
        return f"{key}={str(value)!r} must be one of {choices.group(1)}"
    if key and value is not None:
        return f"{key}={str(value)!r}: {message}"
    return f"config key {key!r}: {message}" if key else message


def compose(overrides: Iterable[str] = ()) -> DictConfig:
    """conf/config.yaml with `overrides`, composed as the launcher does; ConfigError naming the key
    when an override has the wrong type or names no field."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=list(overrides))
    except HydraException as err:
        cause = err.__cause__
        raise ConfigError(describe(cause) if isinstance(cause, OmegaConfBaseException) else str(err)) from None


def load_config(cfg: DictConfig) -> RunConfig:
    """Composed Hydra config -> checked RunConfig, or ConfigError naming the bad key."""
    body = OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "hydra"]) if "hydra" in cfg else cfg
    missing = sorted(OmegaConf.missing_keys(body))
    if missing:
        raise ConfigError(
            f"missing required value(s): {', '.join(missing)} (set them on the command line, e.g. {missing[0]}=...)"
        )
    try:
        run = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RunConfig), body))
    except OmegaConfBaseException as err:
        raise ConfigError(describe(err)) from None
    validate(run)
    return run


def validate(run: RunConfig) -> None:
    """Every section's checks (each subsystem checks its own) and the run's; one ConfigError
    listing every problem, each saying what to change."""
    errors = run_errors(run)
    errors += validate_model(run)
    errors += layout_errors(run)
    errors += validate_training(run)
    errors += validate_reward(run)
    errors += validate_prefs(run.prefs, run.stage == Stage.build_prefs)
    errors += validate_eval(run)
    errors += validate_sync(run)
    if errors:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(errors))


def run_errors(run: RunConfig) -> list[str]:
    """The top-level fields: the stage, the recipe, and what a single stage needs to start."""
    errors = not_one_of("stage", run.stage, Stage)
    recipe = list(run.recipe)
    if not recipe or any(s not in RECIPE for s in recipe) or recipe != sorted(recipe, key=RECIPE.index):
        errors.append(f"recipe={[str(s) for s in recipe]} must be stages of {[str(s) for s in RECIPE]}, in that order")
    if run.stage == Stage.offline_dpo and not run.data.preference_path:
        errors.append("stage=offline_dpo needs data.preference_path (Parquet in the PsychoCounsel-Preference schema)")
    if run.stage in (Stage.reward, Stage.online_dpo, Stage.offline_dpo) and run.model.path is None:
        errors.append(
            f"stage={run.stage} starts from an existing policy: set model.path "
            "(e.g. a run's sft/ directory), or use stage=recipe"
        )
    return errors
