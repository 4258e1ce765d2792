"""Batched generation with left padding (text.generate.generate_batch): each row generates what its prompt
alone would, and the batch equals transformers' left-padded batched generate() on the same weights."""

import pytest
import torch

from shared.errors import InputError
from shared.generation import BeamSearch
from text.generate import generate_batch

transformers = pytest.importorskip("transformers")

PAD, MAX_NEW = 0, 8
PROMPTS = [[5, 17, 23, 9, 41, 7, 3], [12, 30], [8, 8, 51, 2], [44]]


@pytest.fixture(scope="module")
def pair(make_gpt2_pair):
    # scale=3: peaked distributions, so greedy choices are not near-ties
    return make_gpt2_pair(seed=3, scale=3.0, vocab_size=61, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                          bos_token_id=1, eos_token_id=1, pad_token_id=PAD)


def _alone(model, prompt, stops, **kwargs):
    out = model.generate(torch.tensor([prompt]), MAX_NEW, stop_tokens=stops, **kwargs)
    return out.tokens[0, len(prompt):len(prompt) + int(out.lengths[0])].tolist()


@pytest.mark.parametrize("stops", [[], "produced"])
def test_each_row_generates_what_its_prompt_alone_would(pair, stops):
    _, ours = pair
    if stops == "produced":  # a token that the first row produces mid-way, so rows finish at different steps
        stops = [_alone(ours, PROMPTS[0], [])[3]]
    out = generate_batch(ours, PROMPTS, MAX_NEW, stop_tokens=stops, pad_token_id=PAD)
    width = max(map(len, PROMPTS))
    assert out.tokens.shape[1] <= width + MAX_NEW
    for row, prompt in enumerate(PROMPTS):
        assert out.tokens[row, :width].tolist() == [PAD] * (width - len(prompt)) + prompt
        new = out.tokens[row, width:width + int(out.lengths[row])].tolist()
        assert new == _alone(ours, prompt, stops), f"row {row}"
    if stops:
        assert len(set(out.lengths.tolist())) > 1  # the rows did stop at different steps


def test_batch_equals_transformers_left_padded_generate(pair):
    hf, ours = pair
    width = max(map(len, PROMPTS))
    ids = torch.tensor([[PAD] * (width - len(p)) + p for p in PROMPTS])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in PROMPTS])
    expected = hf.generate(ids, attention_mask=mask, max_new_tokens=MAX_NEW, min_new_tokens=0, do_sample=False,
                           num_beams=1, eos_token_id=None, pad_token_id=PAD)
    out = generate_batch(ours, PROMPTS, MAX_NEW, pad_token_id=PAD)
    assert out.tokens.tolist() == expected.tolist()
    # and the logits of the padded batch equal transformers' at every real position
    with torch.no_grad():
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        theirs = hf(ids, attention_mask=mask, position_ids=positions).logits
        cache = ours.init_cache(len(PROMPTS), width)
        logits = ours.logits(ids, cache, mask=mask.bool(), position_ids=positions)
    torch.testing.assert_close(logits[mask.bool()], theirs[mask.bool()], atol=1e-4, rtol=0)


def test_beam_search_rows_follow_their_padding(pair):
    _, ours = pair
    beam = BeamSearch(num_beams=3)
    out = generate_batch(ours, PROMPTS[:2], MAX_NEW, selector=beam, stop_tokens=[], pad_token_id=PAD)
    width = max(map(len, PROMPTS[:2]))
    for row, prompt in enumerate(PROMPTS[:2]):
        assert out.tokens[row, width:].tolist() == _alone(ours, prompt, [], selector=beam)


def test_equal_lengths_and_bad_prompts(pair):
    _, ours = pair
    same = [[4, 5, 6], [7, 8, 9]]
    out = generate_batch(ours, same, 3, pad_token_id=PAD)
    assert [out.tokens[i, 3:].tolist() for i in range(2)] == [_alone(ours, p, [])[:3] for p in same]
    with pytest.raises(InputError, match="no empty prompt"):
        generate_batch(ours, [[4], []], 3)
    with pytest.raises(InputError, match=r"token ids must lie in \[0, 61\)"):
        generate_batch(ours, [[4, 99]], 3)
