"""zoo's error family (defined in the core so every package can raise it)."""

from shared.errors import ConfigError, InputError, WeightsError, ZooError

__all__ = ["ZooError", "ConfigError", "WeightsError", "InputError"]
