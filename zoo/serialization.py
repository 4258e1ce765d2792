"""Loading a folder written by any model's save_pretrained() without knowing its class."""

import json
from pathlib import Path

from shared.errors import WeightsError
from zoo import registry


def load_pretrained(directory: str | Path, map_location="cpu"):
    """Rebuild whatever model `directory` holds (config.json names its architecture)."""
    config_path = Path(directory) / "config.json"
    if not config_path.is_file():
        raise WeightsError(f"{config_path}: not found; expected a folder written by save_pretrained()")
    try:
        architecture = json.loads(config_path.read_text()).get("architecture")
    except json.JSONDecodeError as err:
        raise WeightsError(f"{config_path}: not valid JSON ({err})") from None
    classes = registry.architectures()
    if architecture not in classes:
        raise WeightsError(f"{config_path}: unknown architecture {architecture!r}")
    return classes[architecture].from_pretrained(directory, map_location=map_location)
