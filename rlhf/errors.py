"""The error for a configuration mistake (rlhf.data.errors.DataError is the one for bad input files).
A leaf module, so that anything may raise it without importing the config package."""


class ConfigError(ValueError):
    """A configuration mistake, with what to change."""
