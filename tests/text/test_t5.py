"""T5 (v1.0 ReLU / tied head, v1.1 gated-GELU / own head) against transformers at tiny random configs."""

import pytest
import torch

import zoo
from shared.errors import WeightsError
from text.convert_t5 import convert_t5, t5_from_hf

transformers = pytest.importorskip("transformers")

TINY = dict(vocab_size=99, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=3, num_heads=4,
            relative_attention_num_buckets=8, relative_attention_max_distance=16, dropout_rate=0.0,
            pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
VARIANTS = {
    "v1_0": dict(feed_forward_proj="relu", tie_word_embeddings=True),
    "v1_1": dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False),
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def pair(request, make_t5_pair):
    # v1.1: the head has weights of its own, as the released v1.1 checkpoints have
    return make_t5_pair(seed=0, own_head=request.param == "v1_1", **TINY, **VARIANTS[request.param])


def test_config_translation(pair):
    hf, ours = pair
    gated = hf.config.is_gated_act
    assert ours.config.gated_mlp == gated and ours.config.tie_embeddings == (not gated)
    assert (ours.config.n_encoder_layers, ours.config.n_decoder_layers) == (2, 3)


def test_encoder_states_and_logits_match(pair):
    hf, ours = pair
    src = torch.randint(2, 99, (2, 11))
    tgt = torch.cat([torch.zeros(2, 1, dtype=torch.long), torch.randint(2, 99, (2, 6))], dim=1)
    with torch.no_grad():
        expected = hf(input_ids=src, decoder_input_ids=tgt)
        torch.testing.assert_close(ours.encode(src), expected.encoder_last_hidden_state, atol=1e-4, rtol=0)
        torch.testing.assert_close(ours(src, tgt), expected.logits, atol=1e-4, rtol=0)


def test_source_padding_matches(pair):
    hf, ours = pair
    src = torch.randint(2, 99, (3, 10))
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[1, 7:] = False
    mask[2, 2:] = False
    src[~mask] = 0
    tgt = torch.cat([torch.zeros(3, 1, dtype=torch.long), torch.randint(2, 99, (3, 5))], dim=1)
    with torch.no_grad():
        expected = hf(input_ids=src, attention_mask=mask.long(), decoder_input_ids=tgt)
        memory = ours.encode(src, mask)
        logits = ours(src, tgt, src_mask=mask)
        alone = ours(src[2:, :2], tgt[2:])  # the padded row equals that row without its padding
    torch.testing.assert_close(memory[mask], expected.encoder_last_hidden_state[mask], atol=1e-4, rtol=0)
    torch.testing.assert_close(logits, expected.logits, atol=1e-4, rtol=0)
    torch.testing.assert_close(logits[2], alone[0], atol=1e-5, rtol=0)


def test_cached_decoding_equals_uncached(pair):
    _, ours = pair
    src = torch.randint(2, 99, (2, 8))
    tgt = torch.cat([torch.zeros(2, 1, dtype=torch.long), torch.randint(2, 99, (2, 7))], dim=1)
    with torch.no_grad():
        full = ours(src, tgt)
        prompt, cache = ours.start_generation(src, max_new_tokens=7)
        assert torch.equal(prompt, tgt[:, :1])
        steps = [ours.logits(tgt[:, :3], cache)] + [ours.logits(tgt[:, t:t + 1], cache) for t in range(3, 8)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)


def test_loads_hf_folders_through_create_model(pair, tmp_path):
    hf, ours = pair
    hf.save_pretrained(tmp_path)
    fields = ("vocab_size", "dim", "n_encoder_layers", "n_decoder_layers", "n_heads", "head_dim",
              "mlp_hidden", "num_buckets", "max_distance", "dropout")
    overrides = {f: getattr(ours.config, f) for f in fields}
    name = "t5_v1_1_small" if ours.config.gated_mlp else "t5-small"
    src, tgt = torch.randint(2, 99, (1, 6)), torch.tensor([[0, 5, 7]])
    expected = ours(src, tgt)
    model = zoo.create_model(name, pretrained=tmp_path, **overrides).eval()
    torch.testing.assert_close(model(src, tgt), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(t5_from_hf(tmp_path).eval()(src, tgt), expected, atol=1e-6, rtol=0)


def test_bad_checkpoints_name_the_key(make_t5_pair):
    hf, ours = make_t5_pair(seed=0, **TINY, **VARIANTS["v1_0"])
    state = dict(hf.state_dict())
    key = "decoder.block.1.layer.1.EncDecAttention.k.weight"
    with pytest.raises(WeightsError, match=key):
        convert_t5({k: v for k, v in state.items() if k != key}, ours.config)
    with pytest.raises(WeightsError, match="encoder.block.9"):
        convert_t5({**state, "encoder.block.9.layer.0.layer_norm.weight": torch.ones(32)}, ours.config)
    with pytest.raises(WeightsError, match="lm_head.weight differs"):
        convert_t5({**state, "lm_head.weight": torch.zeros(99, 32)}, ours.config)
    # the unused cross-attention bias table of older checkpoints is ignored by name
    convert_t5({**state, "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight":
                torch.zeros(8, 4)}, ours.config)


@pytest.mark.parametrize("name,hf_kwargs", [
    ("t5_small", {}),
    ("t5_v1_1_base", dict(d_model=768, d_ff=2048, num_heads=12, num_layers=12, feed_forward_proj="gated-gelu",
                          tie_word_embeddings=False)),
])
def test_recipes_match_the_released_sizes(name, hf_kwargs):
    with torch.device("meta"):
        hf = transformers.T5ForConditionalGeneration(transformers.T5Config(**hf_kwargs))
    expected = sum(p.numel() for p in hf.parameters())
    if hf_kwargs:  # released v1.1 checkpoints carry their own head; transformers 5 ties it to the embedding
        expected += hf.config.vocab_size * hf.config.d_model
    assert zoo.model_info(name)["parameters"] == expected
