"""zoo: a multimodal Transformer model zoo built on one Transformer core.

    import zoo
    zoo.list_models("transformer*")
    model = zoo.create_model("transformer_test")
"""

from zoo.compose import compose
from zoo.embedding import embed
from zoo.errors import ConfigError, InputError, WeightsError, ZooError
from zoo.imagine import imagine
from zoo.registry import create_model, list_models, model_info
from zoo.serialization import load_pretrained

# A function, not the submodule: the audio stack behind it is imported on first call.
from zoo.transcribe import transcribe

__all__ = ["create_model", "list_models", "model_info", "load_pretrained", "embed", "transcribe", "imagine", "compose",
           "ZooError", "ConfigError", "InputError", "WeightsError"]

