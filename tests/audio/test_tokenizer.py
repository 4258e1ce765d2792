"""WhisperTokenizer on the real tiny.en tokenizer.json, checked against openai-whisper's tokenizer."""

import json

import pytest

from audio.tokenizer import WhisperTokenizer

SENTENCES = [
    "Hello world",
    " The weather today is sunny with a light breeze from the west.",
    "It's a test, isn't it?  Yes -- 42 times!\n",
    " naïve café, 日本語, emoji 🙂 and ♪ music ♪",
    "",
]


@pytest.fixture(scope="module")
def tok(ct2_dir):
    return WhisperTokenizer(ct2_dir / "tokenizer.json")


@pytest.fixture(scope="module")
def ref():
    tokenizer = pytest.importorskip("whisper.tokenizer")
    return tokenizer.get_tokenizer(multilingual=False)


def test_special_ids_match_openai_whisper(tok, ref):
    assert not tok.multilingual and tok.vocab_size == len(tok) == 51864
    for name in ("eot", "sot", "transcribe", "translate", "sot_lm", "sot_prev", "no_speech", "no_timestamps",
                 "timestamp_begin"):  # fmt: skip
        assert getattr(tok, name) == getattr(ref, name), name
    assert (tok.eot, tok.sot, tok.no_timestamps, tok.timestamp_begin) == (50256, 50257, 50362, 50363)
    assert tok.timestamp_end == 51863
    # openai-whisper lists them in its dict's order; ours are in id order
    ours = {code: token_id for code, token_id in tok.language_tokens.items()}
    assert ours == dict(zip(ref.all_language_codes, ref.all_language_tokens)) and len(ours) == 99
    assert list(ours.values()) == sorted(ours.values()) and next(iter(ours)) == "en"
    # the file spells Hebrew <|iw|>; both codes reach the same id as openai-whisper's <|he|>
    assert "<|iw|>" in tok.special_tokens and "<|he|>" not in tok.special_tokens
    assert tok.to_language_token("iw") == tok.to_language_token("he") == 50278
    assert tok.sot_sequence() == tok.sot_sequence("en", "transcribe") == ref.sot_sequence == (50257,)


def test_english_only_refuses_other_tasks(tok):
    with pytest.raises(ValueError, match="English-only"):
        tok.sot_sequence("de")
    with pytest.raises(ValueError, match="translate"):
        tok.sot_sequence("en", "translate")
    with pytest.raises(ValueError, match="task"):
        tok.sot_sequence(None, "summarise")


@pytest.mark.parametrize("text", SENTENCES)
def test_encode_decode_match_openai_whisper(tok, ref, text):
    ids = tok.encode(text)
    assert ids == ref.encode(text)
    assert tok.decode(ids) == ref.decode(ids) == text


def test_decode_drops_specials_and_renders_timestamps(tok, ref):
    hello, bye = ref.encode(" Hello there."), ref.encode(" Bye.")
    ids = [tok.sot, tok.timestamp_begin, *hello, tok.timestamp_begin + 50, tok.timestamp_begin + 50, *bye,
           tok.timestamp_begin + 117, tok.eot]  # fmt: skip
    assert tok.decode(ids) == " Hello there. Bye."
    expected = "<|0.00|> Hello there.<|1.00|><|1.00|> Bye.<|2.34|>"
    assert tok.decode_with_timestamps(ids) == expected
    assert (
        ref.decode_with_timestamps(ids[1:-1]) == expected
    )  # openai-whisper keeps the non-timestamp specials


def test_suppress_sets_match_openai_whisper_and_config(tok, ref, ct2_dir):
    config = json.loads((ct2_dir / "config.json").read_text())
    assert tok.non_speech_tokens() == ref.non_speech_tokens
    specials = {ref.transcribe, ref.translate, ref.sot, ref.sot_prev, ref.sot_lm, ref.no_speech}
    assert tok.suppress_tokens() == tuple(sorted(set(ref.non_speech_tokens) | specials))
    assert list(tok.suppress_tokens()) == sorted(config["suppress_ids"]) and len(config["suppress_ids"]) == 90
    assert list(tok.begin_suppress_tokens()) == config["suppress_ids_begin"] == [220, 50256]


def _multilingual_file(ct2_dir, tmp_path):
    """The English-only file remapped to the multilingual layout: one more ordinary token before
    <|endoftext|>, so every special id moves up by one, as in Whisper's multilingual vocabulary."""
    spec = json.loads((ct2_dir / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    del vocab["<|endoftext|>"]
    vocab["ĠzzzzExtra"] = 50256
    for token in spec["added_tokens"]:
        token["id"] += 1
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec))
    return path


def test_multilingual_ids_come_from_the_file(ct2_dir, tmp_path):
    whisper_tokenizer = pytest.importorskip("whisper.tokenizer")
    ref = whisper_tokenizer.get_tokenizer(multilingual=True, language="de", task="translate")
    tok = WhisperTokenizer(_multilingual_file(ct2_dir, tmp_path))
    assert tok.multilingual and tok.vocab_size == 51865
    for name in ("eot", "sot", "transcribe", "translate", "sot_prev", "no_speech", "no_timestamps",
                 "timestamp_begin"):  # fmt: skip
        assert getattr(tok, name) == getattr(ref, name), name
    assert tok.sot_sequence("de", "translate") == ref.sot_sequence
    assert tok.sot_sequence() == (ref.sot, ref.to_language_token("en"), ref.transcribe)
    with pytest.raises(ValueError, match="unknown language code 'xx'"):
        tok.sot_sequence("xx")


def test_not_a_whisper_tokenizer(ct2_dir, tmp_path):
    spec = json.loads((ct2_dir / "tokenizer.json").read_text())
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["content"] != "<|notimestamps|>"]
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="notimestamps"):
        WhisperTokenizer(tmp_path)
    with pytest.raises(ValueError, match="cannot read"):
        WhisperTokenizer(tmp_path / "missing.json")
