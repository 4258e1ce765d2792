"""`zoo generate` and text.generate end to end, on tiny random models saved with save_pretrained() next to a
tokenizer.json trained here (byte-level BPE for GPT-2, Unigram for T5), so nothing is downloaded."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer as Backend
from tokenizers import decoders, models, pre_tokenizers, processors, trainers

import zoo
from shared.generation import BeamSearch, Greedy, Sample
from text.generate import generate_text, reduce_precision
from text.tokenizer import Tokenizer
from zoo.cli import main

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ["The quick brown fox jumps over the lazy dog.", "A man is eating food.",
          "Attention is all you need.", "Transformers translate text, caption images and transcribe audio.",
          "Zoo models share one core: attention, feed-forward layers and norms.",
          "Hello world! Olá, café."] * 4


def byte_level_bpe() -> Backend:
    tok = Backend(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tok


def unigram() -> Backend:
    tok = Backend(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=150, special_tokens=["<pad>", "</s>", "<unk>"],
                                      unk_token="<unk>")
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return tok


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    """A gpt2_test model with sharpened random weights (so it does not just repeat one token) + tokenizer."""
    directory = tmp_path_factory.mktemp("gpt2")
    torch.manual_seed(0)
    model = zoo.create_model("gpt2_test").eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0) if p.dim() == 2 else None
    model.save_pretrained(directory)
    byte_level_bpe().save(str(directory / "tokenizer.json"))
    return directory


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("t5")
    torch.manual_seed(0)
    zoo.create_model("t5_test").eval().save_pretrained(directory)
    unigram().save(str(directory / "tokenizer.json"))
    return directory


def load(directory: Path):
    return zoo.load_pretrained(directory).eval(), Tokenizer.from_dir(directory)


def test_tokenizers_fit_the_test_models(gpt2_dir, t5_dir):
    gpt2_tok, t5_tok = Tokenizer.from_dir(gpt2_dir), Tokenizer.from_dir(t5_dir)
    assert gpt2_tok.eos_id == 0 and gpt2_tok.vocab_size <= zoo.create_model("gpt2_test").config.vocab_size
    assert (t5_tok.pad_id, t5_tok.eos_id) == (0, 1) and t5_tok.vocab_size <= 256
    assert t5_tok.encode("Hello world")[-1] == 1  # T5 inputs end with </s>
    assert gpt2_tok.decode(gpt2_tok.encode("Olá, café.")) == "Olá, café."


def test_cli_streams_what_generate_text_returns(gpt2_dir):
    model, tok = load(gpt2_dir)
    expected = generate_text(model, tok, "The quick brown", 12)
    pieces = []
    streamed = generate_text(model, tok, "The quick brown", 12, on_text=pieces.append)
    assert len(pieces) > 1 and "".join(pieces) == streamed.text == expected.text
    assert len(expected.token_ids) == 12 and expected.finish_reason == "length"
    proc = subprocess.run([sys.executable, "-m", "zoo", "generate", "--model", "gpt2_test", "--checkpoint",
                           str(gpt2_dir), "--prompt", "The quick brown", "--max-new-tokens", "12"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected.text + "\n"


def test_stop_strings_end_the_text(gpt2_dir):
    model, tok = load(gpt2_dir)
    full = generate_text(model, tok, "Attention", 16).text
    stop = full[len(full) // 2:len(full) // 2 + 2]
    assert stop and stop in full
    pieces = []
    cut = generate_text(model, tok, "Attention", 16, stop=[stop, "never appears"], on_text=pieces.append)
    assert cut.text == full[:full.index(stop)] and cut.finish_reason == "stop"
    assert "".join(pieces) == cut.text
    beams = generate_text(model, tok, "Attention", 16, stop=[stop], selector=BeamSearch(3))
    assert stop not in beams.text


def test_sampling_is_seeded_and_flags_reach_the_selector(gpt2_dir, capsys):
    argv = ["generate", "--model", "gpt2_test", "--checkpoint", str(gpt2_dir), "--prompt", "Hello",
            "--max-new-tokens", "10", "--temperature", "1.3", "--top-k", "50", "--top-p", "0.95"]
    outputs = []
    for seed in ("1", "1", "2"):
        assert main(argv + ["--seed", seed]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] != outputs[2]
    model, tok = load(gpt2_dir)
    expected = generate_text(model, tok, "Hello", 10, selector=Sample(1.3, 50, 0.95, seed=1)).text
    assert outputs[0] == expected + "\n"


def test_beam_search_and_int8_from_the_cli(gpt2_dir, capsys):
    model, tok = load(gpt2_dir)
    base = ["generate", "--model", "gpt2_test", "--checkpoint", str(gpt2_dir), "--prompt", "A man",
            "--max-new-tokens", "8"]
    assert main(base + ["--num-beams", "3", "--length-penalty", "0.5"]) == 0
    expected = generate_text(model, tok, "A man", 8, selector=BeamSearch(3, 0.5)).text
    assert capsys.readouterr().out == expected + "\n"
    assert main(base + ["--dtype", "int8"]) == 0
    expected = generate_text(reduce_precision(model, "int8"), tok, "A man", 8).text
    assert capsys.readouterr().out == expected + "\n"


def test_t5_generates_from_its_encoder_input(t5_dir, capsys):
    model, tok = load(t5_dir)
    result = generate_text(model, tok, "translate: Hello world", 10, selector=Greedy())
    ids = torch.tensor([tok.encode("translate: Hello world")])
    assert tok.vocab_size < model.config.vocab_size  # ids past the tokenizer's vocabulary are never generated

    def known_only(logits, tokens):
        return torch.cat([logits[:, :tok.vocab_size], torch.full_like(logits[:, tok.vocab_size:], -1e9)], -1)

    direct = model.generate(ids, 10, processors=[known_only])
    n = int(direct.lengths[0])
    expected = direct.tokens[0, 1:1 + n].tolist()  # after the decoder start token
    assert result.token_ids == (expected[:-1] if expected[-1] == 1 else expected)
    assert main(["generate", "--model", "t5_test", "--checkpoint", str(t5_dir), "--prompt",
                 "translate: Hello world", "--max-new-tokens", "10"]) == 0
    assert capsys.readouterr().out == result.text + "\n"


def test_cli_errors_are_one_line(gpt2_dir, tmp_path, capsys):
    cases = [
        (["--model", "gpt2_tset", "--prompt", "x"], "unknown model 'gpt2_tset'; did you mean"),
        (["--model", "transformer_test", "--prompt", "x"], "not a text generator"),
        (["--model", "gpt2_test", "--checkpoint", str(tmp_path), "--prompt", "x"], "no published weights"),
        (["--model", "t5_test", "--checkpoint", str(gpt2_dir), "--prompt", "x"], "holds a GPT2, not a T5"),
        (["--model", "gpt2_test", "--checkpoint", str(gpt2_dir), "--prompt", "x", "--num-beams", "2",
          "--temperature", "0.7"], "beam search does not sample"),
        (["--model", "gpt2_test", "--checkpoint", str(gpt2_dir), "--prompt", "x", "--max-new-tokens", "500"],
         "exceed GPT-2's context"),
    ]
    for args, message in cases:
        assert main(["generate", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err
    (tmp_path / "config.json").write_text((gpt2_dir / "config.json").read_text())
    (tmp_path / "model.safetensors").write_bytes((gpt2_dir / "model.safetensors").read_bytes())
    assert main(["generate", "--model", "gpt2_test", "--checkpoint", str(tmp_path), "--prompt", "x"]) == 2
    assert "tokenizer.json" in capsys.readouterr().err
