"""The error for a configuration mistake."""


class ConfigError(ValueError):
    """A configuration mistake, with what to change."""
