"""Whisper's decoding rules, and greedy decoding and beam search of the real tiny.en weights against openai-whisper."""

import types

import pytest
import torch

import audio.decoding
from audio.decoding import (
    DecodingOptions,
    SuppressAtBegin,
    TimestampRules,
    compression_ratio,
    decode,
    decode_features,
    suppress_set,
)
from audio.features import N_FRAMES, N_SAMPLES, log_mel_spectrogram, pad_or_trim
from audio.io import load_audio
from audio.weights import load_tokenizer, load_whisper
from shared.errors import ConfigError

CLIPS = ["weather.wav", "kitchen.wav", "numbers.wav", "library.wav", "long.wav"]  # long.wav: its first window


@pytest.fixture(scope="module")
def models(ct2_dir, openai_tiny_en):
    """(zoo model, openai-whisper model with the same converted weights, tokenizer)."""
    return load_whisper(ct2_dir), openai_tiny_en, load_tokenizer(ct2_dir)


def first_window(path):
    """The first 30 s window exactly as openai-whisper's transcribe() builds it (mel, then 0.0 frames)."""
    mel = log_mel_spectrogram(load_audio(path), 80, padding=N_SAMPLES)
    return pad_or_trim(mel[:, : min(N_FRAMES, mel.shape[-1] - N_FRAMES)], N_FRAMES)


def _openai_decode(whisper, reference, mel, **options):
    options = whisper.DecodingOptions(language="en", fp16=False, temperature=0.0, **options)
    return whisper.decode(reference, mel, options)


@pytest.mark.parametrize("clip", [*CLIPS[:-1], pytest.param(CLIPS[-1], marks=pytest.mark.slow)])
@pytest.mark.parametrize("beam_size", [None, 5])  # greedy, and beam search with openai-whisper's own rules
def test_tokens_match_openai_whisper(models, examples_dir, clip, beam_size):
    whisper = pytest.importorskip("whisper")
    model, reference, tokenizer = models
    mel = first_window(examples_dir / clip)
    memory = model.embed_audio(mel)
    for without_timestamps in (False, True):
        options = dict(beam_size=beam_size, without_timestamps=without_timestamps)
        ours = decode_features(model, memory, tokenizer, DecodingOptions(**options))
        theirs = _openai_decode(whisper, reference, mel, **options)
        assert ours.tokens == theirs.tokens, (clip, without_timestamps)
        assert ours.text == theirs.text
        assert ours.avg_logprob == pytest.approx(theirs.avg_logprob, abs=1e-4)
        assert ours.no_speech_prob == pytest.approx(theirs.no_speech_prob, abs=1e-4)
        assert ours.compression_ratio == pytest.approx(theirs.compression_ratio)
    assert any(
        t >= tokenizer.timestamp_begin
        for t in decode_features(model, memory, tokenizer, DecodingOptions(beam_size=beam_size)).tokens
    )


def test_beam_search_patience_keeps_openai_whispers_candidates(models, examples_dir, monkeypatch):
    """With patience 2 the search runs on until 10 candidates have finished: the same 10, in the same order."""
    whisper = pytest.importorskip("whisper")
    model, reference, tokenizer = models
    mel = first_window(examples_dir / "weather.wav")
    seen = {}

    def record(name, function):
        def recorded(*args, **kwargs):
            seen[name] = function(*args, **kwargs)
            return seen[name]

        return recorded

    monkeypatch.setattr(audio.decoding, "_beam_search", record("ours", audio.decoding._beam_search))
    finalize = whisper.decoding.BeamSearchDecoder.finalize
    monkeypatch.setattr(whisper.decoding.BeamSearchDecoder, "finalize", record("theirs", finalize))
    ours = decode_features(model, model.embed_audio(mel), tokenizer, DecodingOptions(beam_size=5, patience=2.0))
    theirs = _openai_decode(whisper, reference, mel, beam_size=5, patience=2.0)
    assert ours.tokens == theirs.tokens and ours.text == theirs.text
    assert ours.avg_logprob == pytest.approx(theirs.avg_logprob, abs=1e-4)

    our_tokens, our_logprobs = seen["ours"]
    (their_sequences,), (their_logprobs,) = seen["theirs"]
    begin = len(audio.decoding.initial_tokens(tokenizer, DecodingOptions(), model.config.n_text_ctx, "en"))
    assert len(our_tokens) == 10
    assert our_tokens == [sequence[begin:-1].tolist() for sequence in their_sequences]
    assert our_logprobs == pytest.approx(their_logprobs, abs=1e-4)


def test_beam_search_and_sampling(models, examples_dir, transcripts):
    model, _, tokenizer = models
    mel = first_window(examples_dir / "kitchen.wav")
    beam = decode(model, mel, tokenizer, DecodingOptions(beam_size=3, without_timestamps=True))
    words = set(beam.text.lower().strip(".").split())
    assert len(words & set(transcripts["kitchen.wav"].lower().strip(".").split())) >= 8
    assert tokenizer.eot not in beam.tokens and beam.avg_logprob < 0

    torch.manual_seed(0)
    sampled = decode(model, mel, tokenizer, DecodingOptions(temperature=0.4, best_of=3))
    assert sampled.temperature == 0.4 and "kitchen" in sampled.text.lower()
    assert all(0 <= t < model.config.n_vocab for t in sampled.tokens)


def test_prompt_and_prefix(models, examples_dir):
    model, _, tokenizer = models
    mel = first_window(examples_dir / "weather.wav")
    result = decode(
        model,
        mel,
        tokenizer,
        DecodingOptions(prefix="The weather", prompt="Forecast for today.", without_timestamps=True),
    )
    # as in openai-whisper, the forced prefix belongs to the prompt: the result holds what follows it
    assert result.text.startswith("today") and "weather" not in result.text


def _openai_tokenizer():
    whisper_tokenizer = pytest.importorskip("whisper.tokenizer")
    return whisper_tokenizer.get_tokenizer(multilingual=False)


def test_suppress_sets_match_openai(ct2_dir):
    theirs = _openai_tokenizer()
    tokenizer = load_tokenizer(ct2_dir)
    expected = sorted(
        set(theirs.non_speech_tokens)
        | {theirs.transcribe, theirs.translate, theirs.sot, theirs.sot_prev, theirs.sot_lm, theirs.no_speech}
    )
    assert suppress_set(tokenizer, "-1") == expected
    assert suppress_set(tokenizer, "5,7") == sorted({5, 7} | set(expected) - set(theirs.non_speech_tokens))
    logits = torch.zeros(2, 51864)
    SuppressAtBegin(tokenizer.begin_suppress_tokens(), 1)(logits, torch.zeros(2, 1, dtype=torch.long))
    assert torch.isinf(logits[:, theirs.encode(" ") + [theirs.eot]]).all() and torch.isinf(logits).sum() == 4


def test_timestamp_rules_match_openai_on_random_sequences():
    decoding = pytest.importorskip("whisper.decoding")
    eot, no_ts, ts, vocab, begin = 20, 25, 26, 60, 2
    fake = types.SimpleNamespace(eot=eot, no_timestamps=no_ts, timestamp_begin=ts)
    g = torch.Generator().manual_seed(0)
    for trial in range(200):
        n = int(torch.randint(0, 6, (1,), generator=g))
        rows = []
        for _ in range(4):  # text or timestamps, timestamps increasing as the rules keep them
            clock, row = ts, []
            for _ in range(n):
                if torch.rand(1, generator=g) < 0.5:
                    clock += int(torch.randint(0, 4, (1,), generator=g))
                    row.append(min(clock, vocab - 1))
                else:
                    row.append(int(torch.randint(0, eot, (1,), generator=g)))
            rows.append([50, 51][:begin] + row)
        tokens = torch.tensor(rows)
        logits = torch.randn(4, vocab, generator=g) * 3
        for max_initial in (None, 3):
            expected = logits.clone()
            decoding.ApplyTimestampRules(fake, begin, max_initial).apply(expected, tokens)
            ours = TimestampRules(eot, no_ts, ts, begin, max_initial)(logits.clone(), tokens)
            assert torch.equal(ours, expected), (trial, rows)


def test_options_are_checked_and_repetition_is_measured(models):
    model, _, tokenizer = models
    memory = torch.zeros(1, model.config.n_audio_ctx, model.config.n_audio_state)
    for bad in (
        dict(beam_size=2, best_of=2),
        dict(best_of=3),
        dict(patience=0.2, beam_size=2),
        dict(beam_size=0),
        dict(length_penalty=3.0),
        dict(temperature=-1.0),
    ):
        with pytest.raises(ConfigError):
            decode_features(model, memory, tokenizer, DecodingOptions(**bad))
    with pytest.raises(ConfigError, match="English-only"):
        decode_features(model, memory, tokenizer, DecodingOptions(language="de"))
    assert compression_ratio("the same words again " * 20) > 2.4
    assert compression_ratio("The weather today is sunny with a light breeze.") < 2.4
