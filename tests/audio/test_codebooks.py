import pytest
import torch

from audio.codebooks import CodebookPattern, ForcePad
from shared.errors import InputError


@pytest.mark.parametrize("make", [CodebookPattern.delay, CodebookPattern.parallel])
@pytest.mark.parametrize("frames", [1, 2, 7])
def test_pattern_round_trips_any_grid(make, frames):
    pattern = make(4, pad=64)
    codes = torch.randint(0, 64, (3, 4, frames))
    steps = pattern.apply(codes)
    assert steps.shape == (3, 4, pattern.steps(frames))
    assert torch.equal(pattern.revert(steps), codes)
    assert torch.equal(steps == 64, ~pattern.valid(frames).expand_as(steps))


def test_delay_shifts_codebook_k_by_k_steps():
    codes = torch.arange(1, 25).view(1, 4, 6)  # rows [1..6], [7..12], ...
    steps = CodebookPattern.delay(4, pad=0).apply(codes)[0]
    assert steps[0].tolist() == [1, 2, 3, 4, 5, 6, 0, 0, 0]
    assert steps[1].tolist() == [0, 7, 8, 9, 10, 11, 12, 0, 0]
    assert steps[3].tolist() == [0, 0, 0, 19, 20, 21, 22, 23, 24]


def test_pattern_refuses_a_grid_of_other_codebooks():
    with pytest.raises(InputError, match="4 codebooks"):
        CodebookPattern.delay(4, pad=0).apply(torch.zeros(1, 3, 5, dtype=torch.long))


def test_force_pad_forces_the_pad_outside_the_grid_only():
    pattern = CodebookPattern.delay(2, pad=3)
    force = ForcePad(pattern, frames=2)
    logits = torch.zeros(2 * 2, 4)  # B=2 rows of K=2 codebooks, vocabulary of 3 codes + pad
    logits[:, 3] = float("-inf")
    first = force(logits, torch.zeros(4, 1))  # step 0: codebook 1 has no code yet
    assert first[[1, 3]].argmax(-1).tolist() == [3, 3] and torch.isinf(first[[0, 2], 3]).all()
    assert torch.equal(force(logits, torch.zeros(4, 2)), logits)  # step 1: both codebooks hold codes
    last = force(logits, torch.zeros(4, 3))  # step 2: codebook 0 is past its last frame
    assert last[[0, 2]].argmax(-1).tolist() == [3, 3] and torch.isinf(last[[1, 3], 3]).all()
