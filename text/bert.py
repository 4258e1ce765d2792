"""BERT (Devlin et al., 2018) and its distilled sentence encoders (MiniLM) on the shared Transformer core.

A post-norm encoder over token + position + token-type embeddings, with one of four heads chosen by
`BertConfig.task`:

    features        last hidden states (B, T, D); `pooled()` gives the tanh pooler of the first token
    masked-lm       vocabulary logits (B, T, V) from the MLM head, tied to the token embedding
    classification  class logits (B, C) from the pooled first token
    embedding       sentence vectors (B, D): the mean over real tokens, L2-normalised (sentence-transformers)

Every task shares one trunk (`BertModel`), so weights load into any of them and
`create_model("bert_base_uncased", task="classification", num_classes=3)` starts a fine-tune.
"""

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from shared.errors import ConfigError, InputError
from shared.heads import ClassifierHead, MLMHead, pool
from shared.init import init_weights
from shared.positions import LearnedPositions
from shared.pretrained import PretrainedMixin
from shared.transformer import TransformerConfig, TransformerStack, build_stack
from text.embedding import TextEmbedding

TASKS = ("features", "masked-lm", "classification", "embedding")


@dataclass(frozen=True)
class BertConfig:
    """Sizes follow the BERT paper's names: L = n_layers, H = dim, A = n_heads, FFN = mlp_hidden."""

    vocab_size: int = 30522
    dim: int = 768
    n_layers: int = 12
    n_heads: int = 12
    mlp_hidden: int = 3072
    max_len: int = 512
    type_vocab_size: int = 2
    activation: str = "gelu"
    norm_eps: float = 1e-12
    dropout: float = 0.1
    attn_dropout: float = 0.1
    pad_id: int = 0
    task: str = "features"
    num_classes: int = 2

    def __post_init__(self):
        if self.task not in TASKS:
            raise ConfigError(f"unknown BERT task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.dim % self.n_heads:
            raise ConfigError(f"dim={self.dim} is not divisible by n_heads={self.n_heads}")


class BertEmbedding(nn.Module):
    """token + learned position + token-type embeddings, then LayerNorm and dropout: (B, T) -> (B, T, D)."""

    def __init__(self, text: TextEmbedding, token_type: nn.Embedding, norm: nn.Module, dropout: float = 0.0):
        super().__init__()
        self.text = text
        self.token_type = token_type
        self.norm = norm
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        x = self.text(tokens)  # token + position, (B, T, D)
        if token_type_ids is None:
            x = x + self.token_type.weight[0]  # every token in segment A
        else:
            x = x + self.token_type(token_type_ids)
        return self.dropout(self.norm(x))


class BertPooler(nn.Module):
    """tanh(W h_0 + b) of the first ([CLS]) token: (B, T, D) -> (B, D). Pre-trained by next-sentence
    prediction; the sequence classifier reads it."""

    def __init__(self, dim: int):
        super().__init__()
        self.dense = nn.Linear(dim, dim)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))


class BertModel(nn.Module):
    """The BERT trunk: embeddings, post-norm encoder and an optional pooler."""

    def __init__(self, embed: BertEmbedding, encoder: TransformerStack, pooler: BertPooler | None = None):
        super().__init__()
        self.embed = embed
        self.encoder = encoder
        self.pooler = pooler

    @classmethod
    def build(cls, config: BertConfig, pooler: bool = True) -> "BertModel":
        stack = TransformerConfig(
            dim=config.dim, n_layers=config.n_layers, n_heads=config.n_heads, mlp_hidden=config.mlp_hidden,
            activation=config.activation, norm_eps=config.norm_eps, norm_first=False, final_norm=False,
            dropout=config.dropout, attn_dropout=config.attn_dropout)
        text = TextEmbedding(config.vocab_size, config.dim, LearnedPositions(config.max_len, config.dim))
        embed = BertEmbedding(text, nn.Embedding(config.type_vocab_size, config.dim),
                              nn.LayerNorm(config.dim, eps=config.norm_eps), config.dropout)
        return cls(embed, build_stack(stack), BertPooler(config.dim) if pooler else None)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T), attention_mask (B, T) with True/1 for real tokens, token_type_ids (B, T)
        -> last hidden states (B, T, D)."""
        _check_inputs(self, input_ids, attention_mask, token_type_ids)
        mask = None
        if attention_mask is not None:
            mask = attention_mask.bool()
            if bool(mask.all()):  # no padding: let attention take its unmasked fast path
                mask = None
        return self.encoder(self.embed(input_ids, token_type_ids), mask=mask)

    def pooled(self, hidden: torch.Tensor) -> torch.Tensor:
        """The pooler output of last hidden states (B, T, D) -> (B, D)."""
        if self.pooler is None:
            raise ConfigError("this BERT has no pooler (masked-lm and embedding models drop it); "
                              "use task='features' or 'classification'")
        return self.pooler(hidden)


def _check_inputs(model: BertModel, input_ids, attention_mask, token_type_ids) -> None:
    """One-line errors for inputs that would otherwise fail deep inside an embedding lookup."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.is_floating_point():
        shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
        raise InputError(f"input_ids must be an integer tensor of shape (batch, length), got {shape}")
    vocab = model.embed.text.token.num_embeddings
    max_len = model.embed.text.positions.weight.shape[0]
    if input_ids.shape[1] > max_len:
        raise InputError(f"sequence of {input_ids.shape[1]} tokens is longer than this model's {max_len}; "
                         "truncate it (e.g. encode_batch(..., max_length=...))")
    if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= vocab):
        raise InputError(f"token ids must lie in [0, {vocab}), got {input_ids.min().item()}.."
                         f"{input_ids.max().item()}; was the text encoded with this model's tokenizer?")
    for name, extra in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
        if extra is not None and tuple(extra.shape) != tuple(input_ids.shape):
            raise InputError(f"{name} has shape {tuple(extra.shape)}, input_ids {tuple(input_ids.shape)}; "
                             "they must match")
    types = model.embed.token_type.num_embeddings
    if token_type_ids is not None and token_type_ids.numel() and (
            token_type_ids.min() < 0 or token_type_ids.max() >= types):
        raise InputError(f"token_type_ids must lie in [0, {types})")


class SentenceEmbeddingHead(nn.Module):
    """Mean of the hidden states over real tokens, L2-normalised: (B, T, D) -> (B, D) unit vectors."""

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.normalize(pool(hidden, "mean", None if mask is None else mask.bool()), dim=-1)


class Bert(PretrainedMixin, nn.Module):
    """BERT with the head its config's task names (see the module docstring).

    forward(input_ids (B, T), attention_mask (B, T) | None, token_type_ids (B, T) | None) returns
    (B, T, D) features, (B, T, V) masked-LM logits, (B, C) class logits or (B, D) sentence embeddings.
    """

    config_class = BertConfig

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel.build(config, pooler=config.task in ("features", "classification"))
        if config.task == "masked-lm":
            self.head = MLMHead(config.dim, config.vocab_size, act=config.activation, eps=config.norm_eps,
                                tied=self.bert.embed.text.token)
        elif config.task == "classification":
            self.head = ClassifierHead(config.dim, config.num_classes, pool="none", dropout=config.dropout)
        elif config.task == "embedding":
            self.head = SentenceEmbeddingHead()
        else:
            self.head = None
        init_weights(self, "normal")

    def forward_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                         token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Last hidden states (B, T, D), whatever the task."""
        return self.bert(input_ids, attention_mask, token_type_ids)

    def forward_head(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None,
                     pre_logits: bool = False) -> torch.Tensor:
        """The task's output from hidden states; pre_logits gives the classifier's pooled input (B, D)."""
        task = self.config.task
        if task == "features":
            return hidden
        if task == "masked-lm":
            return self.head(hidden)
        if task == "embedding":
            return self.head(hidden, attention_mask)
        return self.head(self.bert.pooled(hidden), pre_logits=pre_logits)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.forward_features(input_ids, attention_mask, token_type_ids)  # (B, T, D)
        return self.forward_head(hidden, attention_mask)

    def pooled(self, hidden: torch.Tensor) -> torch.Tensor:
        """The pooler output (B, D) of hidden states (B, T, D) (features and classification tasks)."""
        return self.bert.pooled(hidden)

    def get_classifier(self) -> nn.Module:
        if self.config.task != "classification":
            raise ConfigError(f"a BERT with task={self.config.task!r} has no classifier; "
                              "use task='classification'")
        return self.head.fc

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh zero-initialised classifier with num_classes outputs (0 gives pooled features)."""
        self.get_classifier()
        self.head = ClassifierHead(self.config.dim, num_classes, pool="none", dropout=self.config.dropout)
        self.head.to(self.bert.pooler.dense.weight.device)
        self.config = dataclasses.replace(self.config, num_classes=num_classes)
