"""The one error planning raises: the workflow config names something it does not define."""


class ConfigError(ValueError):
    """The workflow config names something it does not define, or uses it inconsistently."""
