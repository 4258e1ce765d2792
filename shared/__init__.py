"""The Transformer core that every zoo model is composed from. Imports torch only."""

from shared.attention import Attention
from shared.block import PostNormBlock, PreNormBlock, TransformerBlock
from shared.cache import Cache, CrossKV, KVCache
from shared.generation import BeamSearch, Decodable, GenerationOutput, Generative, Greedy, Sample, generate
from shared.heads import ClassifierHead, LMHead, MLMHead
from shared.inference import prepare_for_inference
from shared.mlp import MLP, GatedMLP
from shared.norms import LayerNorm, RMSNorm
from shared.positions import LearnedPositions, RelativePositionBias, RotaryEmbedding, SinusoidalPositions, sinusoids
from shared.transformer import TransformerConfig, TransformerStack, build_stack

__all__ = [
    "Attention", "TransformerBlock", "PreNormBlock", "PostNormBlock", "Cache", "CrossKV", "KVCache", "BeamSearch",
    "Decodable", "GenerationOutput", "Generative", "Greedy", "Sample", "generate", "prepare_for_inference",
    "ClassifierHead", "LMHead", "MLMHead", "MLP", "GatedMLP", "LayerNorm", "RMSNorm", "LearnedPositions",
    "RelativePositionBias", "RotaryEmbedding", "SinusoidalPositions", "sinusoids", "TransformerConfig",
    "TransformerStack", "build_stack",
]
