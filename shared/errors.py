"""The one error family. Every message is a single line that names the problem and what to do."""


class ZooError(Exception):
    """Base of every error zoo raises on purpose."""


class ConfigError(ZooError, ValueError):
    """An unknown model name, config field or value."""


class WeightsError(ZooError):
    """Weights that cannot be found, read or matched to a model."""


class InputError(ZooError, ValueError):
    """User input (a file, an image, some audio, a prompt) that cannot be used."""
