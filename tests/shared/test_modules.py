"""Norms, FFNs, heads and init schemes against their definitions."""

import pytest
import torch
from torch import nn

from shared.heads import ClassifierHead, LMHead, MLMHead, pool
from shared.init import init_weights
from shared.mlp import MLP, GatedMLP
from shared.norms import RMSNorm


def test_rmsnorm_formula():
    torch.manual_seed(0)
    norm = RMSNorm(8, eps=1e-6)
    norm.weight.data = torch.randn(8)
    x = torch.randn(2, 3, 8)
    expected = norm.weight * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(norm(x), expected)


def test_mlp_is_the_papers_ffn():
    torch.manual_seed(0)
    mlp = MLP(8, 16, act="relu")
    x = torch.randn(4, 8)
    expected = torch.relu(x @ mlp.fc1.weight.T + mlp.fc1.bias) @ mlp.fc2.weight.T + mlp.fc2.bias
    torch.testing.assert_close(mlp(x), expected)
    gated = GatedMLP(8, 16, act="silu")
    expected = (nn.functional.silu(gated.gate(x)) * gated.up(x)) @ gated.fc2.weight.T
    torch.testing.assert_close(gated(x), expected)
    with pytest.raises(ValueError, match="unknown activation"):
        MLP(8, 16, act="swish2")


def test_tied_lm_head_shares_the_embedding_and_stores_it_once():
    embedding = nn.Embedding(10, 4)
    model = nn.Module()
    model.embedding, model.head = embedding, LMHead(4, 10, tied=embedding)
    x = torch.randn(1, 2, 4)
    torch.testing.assert_close(model.head(x), x @ embedding.weight.T)
    assert list(model.state_dict()) == ["embedding.weight"]
    untied = LMHead(4, 10, bias=True)
    assert set(untied.state_dict()) == {"weight", "bias"}


def test_classifier_head_pools_and_starts_at_zero():
    head = ClassifierHead(4, 3, pool="mean")
    x = torch.randn(2, 5, 4)
    assert torch.equal(head(x), torch.zeros(2, 3))
    mask = torch.tensor([[True, True, False, False, False], [True] * 5])
    torch.testing.assert_close(pool(x, "mean", mask)[0], x[0, :2].mean(0))
    torch.testing.assert_close(head(x, mask=mask, pre_logits=True), pool(x, "mean", mask))
    torch.testing.assert_close(pool(x, "cls"), x[:, 0])
    assert ClassifierHead(4, 0)(x).shape == (2, 4)  # num_classes=0: features only


def test_mlm_head_ties_its_decoder():
    embedding = nn.Embedding(12, 8)
    head = MLMHead(8, 12, tied=embedding)
    assert head(torch.randn(1, 3, 8)).shape == (1, 3, 12)
    assert "decoder.bias" in head.state_dict() and "decoder.weight" not in head.state_dict()


@pytest.mark.parametrize("scheme", ["normal", "xavier", "trunc_normal"])
def test_init_schemes_keep_zero_initialised_heads(scheme):
    model = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), ClassifierHead(8, 3))
    init_weights(model, scheme)
    assert torch.equal(model[2].fc.weight, torch.zeros(3, 8))
    assert model[0].weight.std() > 0 and torch.equal(model[0].bias, torch.zeros(8))
    with pytest.raises(ValueError, match="unknown init scheme"):
        init_weights(model, "kaiming2")
