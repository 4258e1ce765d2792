"""GPT-2 on the shared core against transformers' GPT2LMHeadModel at a tiny random config."""

import pytest
import torch

import zoo
from shared.errors import InputError, WeightsError
from text.convert_gpt2 import convert_gpt2, gpt2_from_hf
from text.gpt2 import GPT2

transformers = pytest.importorskip("transformers")

TINY = dict(vocab_size=99, n_positions=64, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0,
            attn_pdrop=0.0)

# zoo config fields of the same size, for create_model overrides
SMALL = dict(vocab_size=99, max_len=64, dim=32, n_layers=2, n_heads=4, mlp_hidden=128, dropout=0.0)


@pytest.fixture(scope="module")
def pair(make_gpt2_pair):
    """(HF model, zoo model) with the same random weights."""
    return make_gpt2_pair(seed=0, **TINY)


def test_hidden_states_and_logits_match(pair):
    hf, ours = pair
    tokens = torch.randint(0, 99, (2, 12))
    with torch.no_grad():
        expected = hf(tokens, output_hidden_states=True)
        torch.testing.assert_close(ours.hidden_states(tokens), expected.hidden_states[-1], atol=1e-4, rtol=0)
        torch.testing.assert_close(ours(tokens), expected.logits, atol=1e-4, rtol=0)


def test_padding_mask_matches(pair):
    hf, ours = pair
    tokens = torch.randint(0, 99, (3, 9))
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[1, 6:] = False  # right padding: positions of the real tokens stay the same in both models
    mask[2, 3:] = False
    tokens[~mask] = 0
    with torch.no_grad():
        expected = hf(tokens, attention_mask=mask.long()).logits
        got = ours(tokens, mask=mask)
    torch.testing.assert_close(got[mask], expected[mask], atol=1e-4, rtol=0)
    # padding must not change the real tokens' logits: compare with the unpadded second row alone
    torch.testing.assert_close(got[1, :6], ours(tokens[1:2, :6])[0], atol=1e-5, rtol=0)


def test_cached_decoding_equals_uncached(pair):
    _, ours = pair
    tokens = torch.randint(0, 99, (2, 10))
    with torch.no_grad():
        full = ours(tokens)
        cache = ours.init_cache(2, 10)
        steps = [ours.logits(tokens[:, :4], cache)]
        steps += [ours.logits(tokens[:, t:t + 1], cache) for t in range(4, 10)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)


def test_future_tokens_do_not_leak(pair):
    _, ours = pair
    a = torch.randint(0, 99, (1, 8))
    b = a.clone()
    b[0, 5:] = (b[0, 5:] + 1) % 99
    with torch.no_grad():
        torch.testing.assert_close(ours(a)[:, :5], ours(b)[:, :5])
        assert not torch.allclose(ours(a)[:, 5:], ours(b)[:, 5:])


def test_loads_hf_folders_through_create_model(pair, tmp_path):
    hf, ours = pair
    hf.save_pretrained(tmp_path / "st")  # model.safetensors (lm_head left out: tied)
    (tmp_path / "bin").mkdir()
    torch.save(hf.state_dict(), tmp_path / "bin" / "pytorch_model.bin")  # lm_head.weight kept
    tokens = torch.randint(0, 99, (1, 7))
    expected = ours(tokens)
    for folder in ("st", "bin"):
        model = zoo.create_model("openai-community/gpt2", pretrained=tmp_path / folder, **SMALL).eval()
        torch.testing.assert_close(model(tokens), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(gpt2_from_hf(tmp_path / "st").eval()(tokens), expected, atol=1e-6, rtol=0)


def test_bad_checkpoints_name_the_key(pair, tmp_path):
    hf, ours = pair
    state = dict(hf.state_dict())
    state["transformer.h.0.attn.bias"] = torch.ones(1)  # old non-persistent buffers are ignored by name
    state["transformer.h.1.attn.masked_bias"] = torch.ones(1)
    convert_gpt2(state, ours.config)
    with pytest.raises(WeightsError, match="h.1.mlp.c_fc.bias"):
        convert_gpt2({k: v for k, v in state.items() if k != "transformer.h.1.mlp.c_fc.bias"}, ours.config)
    with pytest.raises(WeightsError, match="score.weight"):
        convert_gpt2({**state, "score.weight": torch.zeros(2, 32)}, ours.config)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="model.safetensors"):
        zoo.create_model("gpt2", pretrained=tmp_path, **SMALL)
    with pytest.raises(WeightsError, match="does not exist"):
        zoo.create_model("gpt2", pretrained=tmp_path / "missing", **SMALL)


def test_mismatched_size_is_a_weights_error(pair, tmp_path):
    hf, _ = pair
    hf.save_pretrained(tmp_path)
    with pytest.raises(WeightsError, match="shape"):
        zoo.create_model("gpt2", pretrained=tmp_path, **{**SMALL, "dim": 64})


def test_input_errors():
    model = zoo.create_model("gpt2_test").eval()
    with pytest.raises(InputError, match="context"):
        model(torch.zeros(1, model.config.max_len + 1, dtype=torch.long))
    with pytest.raises(InputError, match="shape"):
        model(torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("name,hf_kwargs", [
    ("gpt2", {}), ("gpt2_medium", dict(n_embd=1024, n_layer=24, n_head=16)),
    ("gpt2_xl", dict(n_embd=1600, n_layer=48, n_head=25)),
])
def test_recipes_match_the_released_sizes(name, hf_kwargs):
    with torch.device("meta"):
        hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(**hf_kwargs))
    expected = sum(p.numel() for p in hf.parameters())  # parameters() counts the tied head once
    assert zoo.model_info(name)["parameters"] == expected


def test_a_pickle_that_is_not_plain_tensors_is_a_one_line_error(tmp_path):
    """weights_only refuses arbitrary objects; the loader turns that into a WeightsError, not a traceback."""
    import pickle

    import zoo

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps({"wte.weight": Payload()}))
    from text.convert_gpt2 import load_hf_gpt2

    with pytest.raises(zoo.WeightsError, match="not a plain state dict of tensors"):
        load_hf_gpt2(tmp_path, zoo.create_model("gpt2_test"))


def test_token_ids_are_checked_once_per_generation_not_per_step(monkeypatch):
    import text.embedding

    model = zoo.create_model("gpt2_test", dropout=0.0).eval()
    calls = []
    check = text.embedding.check_token_ids
    monkeypatch.setattr(text.embedding, "check_token_ids", lambda *a: calls.append(1) or check(*a))
    model.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=6, stop_tokens=[])
    assert len(calls) == 1  # the prompt; the decode steps feed ids the model chose itself
    with pytest.raises(InputError, match=r"token ids must lie in \[0, 512\); got 3..600"):
        model.generate(torch.tensor([[3, 600]]), max_new_tokens=2)
    with pytest.raises(InputError, match=r"token ids must lie in \[0, 512\)"):
        model(torch.tensor([[-1, 4]]))


def test_the_head_and_widening_layers_are_column_major_and_save_as_usual(tmp_path):
    """shared.layout: the tied head and the MLP input layers are stored transposed for fast decoding; the
    saved weights and a reload are those of the ordinary layout."""
    model = zoo.create_model("gpt2_test").eval()
    head, fc1 = model.decoder.embed.token.weight, model.decoder.stack.blocks[0].mlp.fc1.weight
    for weight in (head, fc1):
        assert weight.t().is_contiguous() and not weight.is_contiguous()
    model.save_pretrained(tmp_path)
    again = GPT2.from_pretrained(tmp_path).eval()
    tokens = torch.randint(0, model.config.vocab_size, (2, 7))
    assert torch.equal(again(tokens), model(tokens))
    assert again.decoder.head._tied[0] is again.decoder.embed.token
