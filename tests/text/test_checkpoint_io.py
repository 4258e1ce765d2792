"""The one HF loading path (text.checkpoint_io): config.json errors name the file, converters plug in."""

import pytest
import torch

import zoo
from shared.errors import WeightsError
from shared.state_dict import read_json
from text.checkpoint_io import build_from_hf, load_converted
from text.convert_gpt2 import config_from_hf, convert_gpt2, gpt2_from_hf
from text.gpt2 import GPT2


def test_config_errors_name_the_file_and_the_model(tmp_path):
    with pytest.raises(WeightsError, match=r"config.json: not found; expected a Hugging Face GPT-2 config"):
        gpt2_from_hf(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(WeightsError, match=r"config.json: not valid JSON"):
        gpt2_from_hf(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(WeightsError, match=r"not a JSON object; expected a Hugging Face T5 config"):
        read_json(tmp_path / "config.json", "Hugging Face T5")


def test_build_and_load_through_a_converter(tmp_path, make_gpt2_pair):
    hf, _ = make_gpt2_pair(seed=0, vocab_size=50, n_positions=16, n_embd=16, n_layer=1, n_head=2, bos_token_id=0,
                           eos_token_id=0)
    hf.save_pretrained(tmp_path)
    built = build_from_hf(tmp_path, "GPT-2", config_from_hf, GPT2, convert_gpt2).eval()
    assert built.config.dim == 16 and built.config.vocab_size == 50
    filled = load_converted(tmp_path, GPT2(built.config).eval(), convert_gpt2)
    tokens = torch.randint(0, 50, (2, 7))
    with torch.no_grad():
        expected = hf(tokens).logits
        torch.testing.assert_close(built(tokens), expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(filled(tokens), expected, atol=1e-5, rtol=0)
    with pytest.raises(WeightsError, match=r"^\S+: h.0.attn.c_attn.weight has shape \(16, 48\)"):  # names the source
        load_converted(tmp_path, zoo.create_model("gpt2_test"), convert_gpt2)
