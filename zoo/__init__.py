"""zoo: a multimodal Transformer model zoo built on one Transformer core.

    import zoo
    zoo.list_models("transformer*")
    model = zoo.create_model("transformer_test")
"""

from zoo.errors import ConfigError, InputError, WeightsError, ZooError
from zoo.registry import create_model, list_models, model_info
from zoo.serialization import load_pretrained

__all__ = ["create_model", "list_models", "model_info", "load_pretrained", "ZooError", "ConfigError",
           "InputError", "WeightsError"]
