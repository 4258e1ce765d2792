"""Positional encodings against their definitions."""

import math

import pytest
import torch

from shared.positions import LearnedPositions, RelativePositionBias, RotaryEmbedding, SinusoidalPositions, sinusoids


def test_sinusoids_equal_the_paper_formula():
    length, d = 50, 16
    table = sinusoids(length, d)
    for pos in range(length):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_sinusoidal_module_offsets_and_persistence():
    positions = SinusoidalPositions(20, 8)
    torch.testing.assert_close(positions(3, offset=5), sinusoids(20, 8)[5:8])
    assert "weight" not in positions.state_dict()
    stored = SinusoidalPositions(20, 8, table=torch.randn(20, 8), persistent=True)
    assert "weight" in stored.state_dict()


def test_position_tables_refuse_overlong_inputs():
    with pytest.raises(ValueError, match="longer than this model's maximum of 4"):
        LearnedPositions(4, 8)(5)


def test_relative_bias_buckets():
    bidirectional = RelativePositionBias(2, num_buckets=32, max_distance=128, bidirectional=True)
    rel = torch.tensor([-200, -10, -1, 0, 1, 10, 200])
    buckets = bidirectional.bucket(rel)
    assert buckets[3] == 0 and buckets[4] == 17  # positive offsets use the upper half
    assert buckets[0] == 15 and buckets[-1] == 31  # far offsets share the last bucket
    causal = RelativePositionBias(2, num_buckets=32, bidirectional=False)
    assert (causal.bucket(torch.tensor([1, 5])) == 0).all()  # the future is one bucket
    assert causal.bucket(torch.tensor([-3]))[0] == 3
    bias = bidirectional(4, 6)
    assert bias.shape == (1, 2, 4, 6)
    # the bias depends only on key - query
    torch.testing.assert_close(bias[0, :, 1, 2], bias[0, :, 2, 3])


def test_rotary_scores_depend_only_on_relative_position():
    rotary = RotaryEmbedding(8)
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    score = (rotary(q, offset=3) * rotary(k, offset=1)).sum()
    shifted = (rotary(q, offset=10) * rotary(k, offset=8)).sum()
    torch.testing.assert_close(score, shifted, atol=1e-5, rtol=0)
    torch.testing.assert_close(rotary(q, offset=0), q)  # position 0 is the identity
