"""generate(): cached decoding, greedy vs beam, sampling, stop tokens."""

import itertools

import pytest
import torch

from shared.cache import Cache
from shared.generation import BeamSearch, Greedy, Guided, Sample, generate
from shared.heads import LMHead
from shared.positions import LearnedPositions
from shared.transformer import TransformerConfig, build_stack
from text.decoder import TextDecoder
from text.embedding import TextEmbedding
from text.transformer import Seq2SeqConfig, TransformerSeq2Seq

VOCAB = 23


def decoder_only():
    torch.manual_seed(0)
    embed = TextEmbedding(VOCAB, 16, LearnedPositions(64, 16))
    stack = build_stack(TransformerConfig(dim=16, n_layers=2, n_heads=4, mlp_hidden=32, causal=True))
    return TextDecoder(embed, stack, LMHead(16, VOCAB, tied=embed.token)).eval()


def encoder_decoder():
    torch.manual_seed(0)
    return TransformerSeq2Seq(Seq2SeqConfig(vocab_size=VOCAB, dim=16, n_encoder_layers=2, n_decoder_layers=2,
                                            n_heads=4, mlp_hidden=32, dropout=0.0, max_len=64)).eval()


def test_cached_logits_equal_full_forward_decoder_only():
    model = decoder_only()
    out = generate(model, torch.tensor([[3, 4, 5], [6, 7, 8]]), 10)
    tokens = out.tokens
    cache = model.init_cache(2, tokens.shape[1])
    stepwise = [model.logits(tokens[:, :3], cache)] + [model.logits(tokens[:, t:t + 1], cache)
                                                      for t in range(3, tokens.shape[1])]
    torch.testing.assert_close(torch.cat(stepwise, 1), model(tokens), atol=1e-5, rtol=0)
    # and greedy picked the argmax of the full forward at every step
    full = model(tokens)
    assert torch.equal(full[:, 2:-1].argmax(-1), tokens[:, 3:])


def test_cached_logits_equal_full_forward_encoder_decoder():
    model = encoder_decoder()
    src = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 2, 0, 0]])
    out = model.generate(src, max_new_tokens=8)
    tokens = out.tokens
    full = model(src, tokens)
    src_mask = src != 0
    cache = model.init_cache(2, tokens.shape[1], memory=model.encode(src), memory_mask=src_mask)
    stepwise = torch.cat([model.logits(tokens[:, t:t + 1], cache) for t in range(tokens.shape[1])], dim=1)
    finished = torch.cumsum(tokens == 2, dim=1) > 0  # positions after EOS are padding, not compared
    keep = ~torch.cat([torch.zeros(2, 1, dtype=torch.bool), finished[:, :-1]], dim=1)
    torch.testing.assert_close(stepwise[keep], full[keep], atol=1e-5, rtol=0)


@pytest.mark.parametrize("make", [decoder_only, encoder_decoder])
def test_one_beam_equals_greedy(make):
    model = make()
    if isinstance(model, TransformerSeq2Seq):
        src = torch.tensor([[5, 6, 7, 2], [8, 9, 2, 0]])
        greedy = model.generate(src, 12).tokens
        beam = model.generate(src, 12, selector=BeamSearch(num_beams=1)).tokens
    else:
        prompt = torch.tensor([[3, 4], [5, 6]])
        greedy = generate(model, prompt, 12, stop_tokens=[7]).tokens
        beam = generate(model, prompt, 12, selector=BeamSearch(num_beams=1), stop_tokens=[7]).tokens
    assert torch.equal(greedy, beam)


def test_sampling_is_reproducible_with_a_seed():
    model = decoder_only()
    prompt = torch.tensor([[3, 4]])
    first = generate(model, prompt, 15, selector=Sample(temperature=1.5, seed=7)).tokens
    again = generate(model, prompt, 15, selector=Sample(temperature=1.5, seed=7)).tokens
    other = generate(model, prompt, 15, selector=Sample(temperature=1.5, seed=8)).tokens
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_top_k_and_top_p_filters():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(Sample(top_k=2).filter(logits))
    assert kept.tolist() == [[True, True, False, False]]
    kept = torch.isfinite(Sample(top_p=0.7).filter(logits))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 < 0.7, so the token that crosses it stays
    draws = {Sample(top_k=1, seed=s)(logits).item() for s in range(5)}
    assert draws == {0}


class MarkovModel:
    """A decodable toy whose next-token distribution depends only on the last token (a fixed table)."""

    def __init__(self, table: torch.Tensor):
        self.log_table = table.log()

    def init_cache(self, batch, max_len):
        return Cache(1, max_len)

    def logits(self, tokens, cache):
        cache.layers[0].self_attn.update(*(torch.zeros(tokens.shape[0], 1, tokens.shape[1], 1),) * 2)
        return self.log_table[tokens]


def test_beam_search_finds_the_most_likely_sequence():
    # greedy takes 1 (p=.6) but then faces a flat distribution; 2 (p=.4) leads to a sure EOS (token 0)
    table = torch.full((4, 4), 0.25)
    table[3] = torch.tensor([0.0, 0.6, 0.4, 0.0]) + 1e-9
    table[1] = torch.tensor([0.3, 0.35, 0.35, 0.0]) + 1e-9
    table[2] = torch.tensor([1.0, 0.0, 0.0, 0.0]) + 1e-9
    model = MarkovModel(table / table.sum(-1, keepdim=True))
    prompt = torch.tensor([[3]])
    greedy = generate(model, prompt, 2, stop_tokens=[0], pad_token_id=0).tokens[0].tolist()
    beam = generate(model, prompt, 2, selector=BeamSearch(num_beams=2, length_penalty=0.0), stop_tokens=[0],
                    pad_token_id=0).tokens[0].tolist()
    assert greedy[:2] == [3, 1]
    assert beam == [3, 2, 0]
    # exhaustive check: beam's sequence has the highest probability of all length-2 continuations
    best = max(itertools.product(range(4), repeat=2),
               key=lambda seq: table[3, seq[0]].log() + table[seq[0], seq[1]].log())
    assert list(best) == beam[1:]


def test_stop_tokens_end_rows_and_pad_after():
    model = decoder_only()
    prompt = torch.tensor([[3, 4], [5, 6]])
    free = generate(model, prompt, 8).tokens
    stop = free[0, 4].item()  # the third generated token of row 0
    out = generate(model, prompt, 8, stop_tokens=[stop], pad_token_id=0)
    row = out.tokens[0].tolist()
    first_stop = row.index(stop, 2)
    assert all(t == 0 for t in row[first_stop + 1:])
    assert out.lengths[0].item() == first_stop - 1


def test_greedy_sum_logprobs_match_the_model():
    model = decoder_only()
    prompt = torch.tensor([[3, 4]])
    out = generate(model, prompt, 5, selector=Greedy())
    logprobs = torch.log_softmax(model(out.tokens), -1)[0, 1:-1]
    expected = logprobs.gather(-1, out.tokens[0, 2:, None]).sum()
    torch.testing.assert_close(out.sum_logprobs[0], expected, atol=1e-5, rtol=0)


class TwoConditions:
    """A decodable toy whose rows 0..B-1 see the condition and rows B..2B-1 the null one (fixed logits)."""

    def __init__(self, cond: torch.Tensor, uncond: torch.Tensor):
        self.cond, self.uncond = cond, uncond

    def logits(self, tokens, cache):  # (2B, T) -> (2B, T, V)
        B = tokens.shape[0] // 2
        rows = torch.cat([self.cond.expand(B, -1), self.uncond.expand(B, -1)])
        return rows[:, None].expand(-1, tokens.shape[1], -1)


def test_guided_mixes_the_conditioned_and_null_rows():
    cond, uncond = torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[0.0, 2.0, 0.5]])
    model = TwoConditions(cond, uncond)
    tokens = torch.zeros(2, 1, dtype=torch.long)
    assert torch.allclose(Guided(model, 3.0).logits(tokens, None), (uncond + 3.0 * (cond - uncond)).expand(2, 1, 3))
    assert torch.equal(Guided(model, 1.0).logits(tokens, None), cond.expand(2, 1, 3))
    # scale 0 is the null rows alone: their favourite token, 1, where the condition prefers 2
    out = generate(Guided(model, 0.0), tokens, 1, cache=Cache(1, 2))
    assert out.tokens[:, -1].tolist() == [1, 1]
