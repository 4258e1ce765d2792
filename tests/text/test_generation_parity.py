"""Greedy and beam-search outputs of zoo's GPT-2 and T5 equal transformers' generate() token for token.

Both sides run the same converted tiny random weights. The end-of-sequence id is chosen as a token the model
actually produces a few steps in, so hypotheses do finish early and the ranking, the length penalty and the
stopping rules of beam search all matter.
"""

import pytest
import torch

from shared.generation import BeamSearch, Greedy, Sample

transformers = pytest.importorskip("transformers")

MAX_NEW = 10
BEAMS = [(3, 1.0, False), (4, 2.0, True), (4, 0.0, False), (3, -0.5, True)]


# scale=3: peaked next-token distributions, so decoding paths differ by beam
@pytest.fixture(scope="module")
def gpt2_pair(make_gpt2_pair):
    return make_gpt2_pair(seed=1, scale=3.0, vocab_size=61, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                          bos_token_id=0, eos_token_id=0)


@pytest.fixture(scope="module")
def t5_pair(make_t5_pair):
    return make_t5_pair(seed=2, scale=3.0, vocab_size=61, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                        relative_attention_num_buckets=8, relative_attention_max_distance=16, dropout_rate=0.0,
                        feed_forward_proj="gated-gelu", tie_word_embeddings=False, pad_token_id=0, eos_token_id=1,
                        decoder_start_token_id=0)


def _hf_generate(hf, inputs: dict, eos: int, pad: int, num_beams: int = 1, length_penalty: float = 1.0,
                 early_stopping: bool = False) -> torch.Tensor:
    with torch.no_grad():
        return hf.generate(**inputs, max_new_tokens=MAX_NEW, do_sample=False, num_beams=num_beams,
                           length_penalty=length_penalty, early_stopping=early_stopping, eos_token_id=eos,
                           pad_token_id=pad, min_length=0, use_cache=True)


def _eos_seen_early(tokens: torch.Tensor, start: int) -> int:
    """A token that greedy decoding emits at step 3 of the first row: EOS then ends hypotheses early."""
    return int(tokens[0, start + 3])


def _assert_same(ours: torch.Tensor, theirs: torch.Tensor, pad: int) -> None:
    width = max(ours.shape[1], theirs.shape[1])  # both pad after EOS; only the padding width may differ

    def padded(t):
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=pad)

    assert padded(ours).tolist() == padded(theirs).tolist()


def test_gpt2_greedy_and_beams_equal_transformers(gpt2_pair):
    hf, ours = gpt2_pair
    pad = ours.config.pad_id
    torch.manual_seed(3)
    prompt = torch.randint(2, 61, (2, 5))
    inputs = {"input_ids": prompt, "attention_mask": torch.ones_like(prompt)}
    free = _hf_generate(hf, inputs, eos=60, pad=pad)
    eos = _eos_seen_early(free, 5)
    greedy = ours.generate(prompt, MAX_NEW, selector=Greedy(), stop_tokens=[eos])
    _assert_same(greedy.tokens, _hf_generate(hf, inputs, eos=eos, pad=pad), pad)
    finished_early = 0
    for row in range(2):  # transformers pads finished rows of a batch differently; compare row by row
        one = {k: v[row:row + 1] for k, v in inputs.items()}
        eos = _eos_seen_early(free[row:row + 1], 5)
        for num_beams, length_penalty, early_stopping in BEAMS:
            expected = _hf_generate(hf, one, eos, pad, num_beams, length_penalty, early_stopping)
            got = ours.generate(prompt[row:row + 1], MAX_NEW, stop_tokens=[eos],
                                selector=BeamSearch(num_beams, length_penalty, early_stopping))
            _assert_same(got.tokens, expected, pad)
            finished_early += int(got.lengths[0] < MAX_NEW)
    assert finished_early >= 2  # EOS really ended the best hypothesis before max_new_tokens


@pytest.mark.slow  # transformers' T5 beam search is slow per step; about 20 s on 2 cores
def test_t5_greedy_and_beams_equal_transformers(t5_pair):
    hf, ours = t5_pair
    torch.manual_seed(4)
    src = torch.randint(2, 61, (2, 7))
    mask = torch.ones_like(src, dtype=torch.bool)
    mask[1, 4:] = False
    src[~mask] = 0
    inputs = {"input_ids": src, "attention_mask": mask.long()}
    free = _hf_generate(hf, inputs, eos=60, pad=0)
    eos = _eos_seen_early(free, 1)
    greedy = ours.generate(src, MAX_NEW, mask=mask, selector=Greedy(), stop_tokens=[eos])
    _assert_same(greedy.tokens, _hf_generate(hf, inputs, eos=eos, pad=0), 0)
    finished_early = 0
    for row in range(2):
        one = {"input_ids": src[row:row + 1, :int(mask[row].sum())]}
        eos = _eos_seen_early(free[row:row + 1], 1)
        for num_beams, length_penalty, early_stopping in BEAMS:
            expected = _hf_generate(hf, one, eos, 0, num_beams, length_penalty, early_stopping)
            got = ours.generate(one["input_ids"], MAX_NEW, stop_tokens=[eos],
                                selector=BeamSearch(num_beams, length_penalty, early_stopping))
            _assert_same(got.tokens, expected, 0)
            finished_early += int(got.lengths[0] < MAX_NEW)
    assert finished_early >= 2


def test_t5_batched_beams_equal_one_by_one(t5_pair):
    _, ours = t5_pair
    src = torch.randint(2, 61, (2, 6))
    mask = torch.ones_like(src, dtype=torch.bool)
    mask[0, 3:] = False
    src[~mask] = 0
    beam = BeamSearch(3, 1.0, False)
    batched = ours.generate(src, MAX_NEW, mask=mask, selector=beam, stop_tokens=[5])
    for row in range(2):
        real = src[row:row + 1, :int(mask[row].sum())]
        alone = ours.generate(real, MAX_NEW, selector=beam, stop_tokens=[5])
        n = int(alone.lengths[0]) + 1
        assert batched.tokens[row, :n].tolist() == alone.tokens[0, :n].tolist()


def test_sampling_with_a_seed_is_reproducible(gpt2_pair):
    _, ours = gpt2_pair
    prompt = torch.randint(2, 61, (2, 4))

    def sample(seed):
        return ours.generate(prompt, MAX_NEW, selector=Sample(1.5, top_k=20, top_p=0.9, seed=seed),
                             stop_tokens=[]).tokens

    assert torch.equal(sample(7), sample(7))
    assert not torch.equal(sample(7), sample(8))


class _ScriptedLM:
    """A decodable stand-in whose next-token distribution depends only on the last token."""

    EOS, A, B, C, P = range(5)
    TABLE = {P: {A: 0.5, EOS: 0.3, C: 0.15, B: 0.05}, A: {B: 0.5, EOS: 0.45, C: 0.03, A: 0.02},
             C: {EOS: 0.25, A: 0.25, B: 0.25, C: 0.25}, B: {EOS: 0.25, A: 0.25, B: 0.25, C: 0.25}}

    class Cache:
        def reorder(self, index):
            pass

    def init_cache(self, batch_size, max_len):
        return self.Cache()

    def logits(self, tokens, cache):
        rows = [[self.TABLE[t].get(v, 1e-9) for v in range(5)] for t in tokens[:, -1].tolist()]
        return torch.tensor(rows).log()[:, None, :]  # (B, 1, V)


def test_live_beams_compete_at_the_last_step_with_early_stopping():
    # Step 1 is the last: "A EOS" fills the second finished slot, but the live "A B" (score -1.386 / 2)
    # beats it (-1.492 / 2); transformers finalises every beam at max_length, so "A B" must win.
    from shared.generation import generate

    lm = _ScriptedLM()
    out = generate(lm, torch.tensor([[lm.P]]), 2, selector=BeamSearch(2, 1.0, early_stopping=True),
                   stop_tokens=[lm.EOS])
    assert out.tokens[0].tolist() == [lm.P, lm.A, lm.B]
    # with a third step available, early stopping ends the search with "A EOS" as transformers does
    out = generate(lm, torch.tensor([[lm.P]]), 3, selector=BeamSearch(2, 1.0, early_stopping=True),
                   stop_tokens=[lm.EOS])
    assert out.tokens[0].tolist() == [lm.P, lm.A, lm.EOS]


def test_draft_and_verify_gives_the_full_precision_greedy_output(gpt2_pair):
    from text.generate import draft_and_verify, reduce_precision
    from text.quantize import Int8Linear

    _, ours = gpt2_pair
    draft = reduce_precision(ours, "int8")
    assert isinstance(draft.decoder.stack.blocks[0].mlp.fc1, Int8Linear)
    assert isinstance(draft.decoder.stack.blocks[0].attn.qkv, Int8Linear)
    assert isinstance(ours.decoder.stack.blocks[0].mlp.fc1, torch.nn.Linear)  # the original is untouched
    accepted = drafted = 0
    for seed in range(3):
        prompt = torch.randint(2, 61, (1, 5), generator=torch.Generator().manual_seed(seed))
        free = ours.generate(prompt, MAX_NEW, stop_tokens=[])
        for k, stops in ((1, []), (3, []), (8, []), (4, [int(free.tokens[0, 8])])):
            expected = ours.generate(prompt, MAX_NEW, stop_tokens=stops)
            out = draft_and_verify(ours, draft, prompt, MAX_NEW, draft_tokens=k, stop_tokens=stops)
            assert out.tokens[0].tolist() == expected.tokens[0, :5 + int(expected.lengths[0])].tolist()
            accepted, drafted = accepted + out.accepted, drafted + out.drafted
    assert 0 < accepted <= drafted
