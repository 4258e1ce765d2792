"""`zoo transcribe FILES...`: openai-whisper's command line (flag names, value styles, output files)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from audio.precision import COMPUTE_TYPES
from shared.errors import ConfigError, InputError
from zoo.cli_threads import HELP as THREADS_HELP
from zoo.cli_threads import start_threads

FORMATS = ["txt", "vtt", "srt", "tsv", "json", "all"]


def str2bool(value: str) -> bool:
    choices = {"true": True, "false": False}
    if value.lower() not in choices:
        raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")
    return choices[value.lower()]


def optional_int(value: str) -> int | None:
    return None if value == "None" else int(value)


def optional_float(value: str) -> float | None:
    return None if value == "None" else float(value)


def _temperatures(start: float, increment: float | None) -> tuple[float, ...]:
    if increment is None or increment <= 0:
        return (start,)
    steps = int((1.0 - start) / increment + 1e-6) + 1
    return tuple(round(start + i * increment, 6) for i in range(max(steps, 1)))


def _words_and_vad(args) -> dict:
    """transcribe() options for word timestamps and the VAD filter; layout flags need word timestamps."""
    if not args.word_timestamps:
        for flag in ("highlight_words", "max_line_width", "max_line_count", "max_words_per_line"):
            if getattr(args, flag):
                raise ConfigError(f"--{flag} requires --word_timestamps True")
    vad = dict(
        threshold=args.vad_threshold,
        min_speech_duration_ms=args.vad_min_speech_duration_ms,
        max_speech_duration_s=args.vad_max_speech_duration_s,
        min_silence_duration_ms=args.vad_min_silence_duration_ms,
        speech_pad_ms=args.vad_speech_pad_ms,
    )
    return dict(
        word_timestamps=args.word_timestamps,
        prepend_punctuations=args.prepend_punctuations,
        append_punctuations=args.append_punctuations,
        vad_filter=args.vad_filter,
        vad_parameters=vad,
    )


def add_word_and_vad_flags(p) -> None:
    """openai-whisper's word-timestamp flags; faster-whisper's VAD filter (whisper-ctranslate2's flag names)."""
    from audio.vad import VadOptions
    from audio.word_timestamps import APPEND_PUNCTUATIONS, PREPEND_PUNCTUATIONS

    p.add_argument(
        "--word_timestamps", type=str2bool, default=False, help="word-level timestamps (in json, srt and vtt)"
    )
    p.add_argument("--prepend_punctuations", default=PREPEND_PUNCTUATIONS, help="marks merged with the next word")
    p.add_argument("--append_punctuations", default=APPEND_PUNCTUATIONS, help="marks merged with the previous word")
    p.add_argument(
        "--highlight_words", type=str2bool, default=False, help="underline each word as it is spoken (srt, vtt)"
    )
    p.add_argument("--max_line_width", type=optional_int, default=None, help="characters in a subtitle line")
    p.add_argument("--max_line_count", type=optional_int, default=None, help="lines in a subtitle")
    p.add_argument(
        "--max_words_per_line", type=optional_int, default=None, help="words in a subtitle (without a width)"
    )
    defaults = VadOptions()
    p.add_argument("--vad_filter", type=str2bool, default=False, help="transcribe only the speech Silero VAD finds")
    p.add_argument("--vad_threshold", type=float, default=defaults.threshold, help="speech probability")
    p.add_argument(
        "--vad_min_speech_duration_ms",
        type=int,
        default=defaults.min_speech_duration_ms,
        help="shorter speech is dropped",
    )
    p.add_argument(
        "--vad_max_speech_duration_s", type=float, default=defaults.max_speech_duration_s, help="longer speech is split"
    )
    p.add_argument(
        "--vad_min_silence_duration_ms",
        type=int,
        default=defaults.min_silence_duration_ms,
        help="pause that ends speech",
    )
    p.add_argument("--vad_speech_pad_ms", type=int, default=defaults.speech_pad_ms, help="kept on each side of speech")


def _results(model, tokenizer, paths, batch_size: int, options: dict, transcribe):
    """(path, result dict or the InputError that file raised) per file, in order; with batch_size > 1 the
    readable files are transcribed together (audio.batched)."""
    if batch_size <= 1:
        for path in paths:
            try:
                yield path, transcribe(model, path, tokenizer=tokenizer, **options)
            except InputError as err:
                yield path, err
        return
    from audio.batched import transcribe_many
    from audio.io import load_audio

    loaded = {}
    for path in paths:
        try:
            loaded[path] = load_audio(path)
        except InputError as err:
            loaded[path] = err
    readable = [p for p in paths if not isinstance(loaded[p], InputError)]
    results = transcribe_many(
        model, [loaded[p] for p in readable], tokenizer=tokenizer, batch_size=batch_size, **options
    )
    loaded.update(zip(readable, results))
    for path in paths:
        yield path, loaded[path]


def run(args) -> int:
    from audio.precision import resolve_compute_type
    from audio.transcribe import transcribe
    from audio.writers import SubtitleOptions, write_result
    from zoo.transcribe import default_device, load_model

    device = args.device or default_device()
    compute_type = "float32" if args.compute_type == "default" and not args.fp16 else args.compute_type
    precision = resolve_compute_type(compute_type, device)
    model, tokenizer = load_model(args.model, args.model_dir, device, compute_type)
    start_threads("transcribe", args.threads)  # rechecked between 30 s windows
    language = args.language
    if not tokenizer.multilingual and language not in (None, "en"):
        print(
            f"zoo transcribe: {args.model} is an English-only model; using English instead of {language}",
            file=sys.stderr,
        )
        language = "en"
    options = dict(
        verbose=args.verbose,
        temperature=_temperatures(args.temperature, args.temperature_increment_on_fallback),
        compression_ratio_threshold=args.compression_ratio_threshold,
        logprob_threshold=args.logprob_threshold,
        no_speech_threshold=args.no_speech_threshold,
        condition_on_previous_text=args.condition_on_previous_text,
        initial_prompt=args.initial_prompt,
        language=language,
        task=args.task,
        beam_size=args.beam_size,
        best_of=args.best_of,
        patience=args.patience,
        length_penalty=args.length_penalty,
        suppress_tokens=args.suppress_tokens,
        fp16=precision == "float16",
        **_words_and_vad(args),
    )
    subtitles = SubtitleOptions(
        args.max_line_width, args.max_line_count, args.highlight_words, args.max_words_per_line
    )
    failed = 0
    for audio_path, result in _results(model, tokenizer, args.audio, args.batch_size, options, transcribe):
        if isinstance(result, InputError):  # a bad file: say so and go on with the others
            print(f"zoo transcribe: error: {result}", file=sys.stderr)
            failed += 1
            continue
        for path in write_result(
            result, audio_path, args.output_dir, args.output_format, subtitles
        ):
            if args.verbose is not False:
                print(f"wrote {path}", file=sys.stderr)
    if failed:
        print(
            f"zoo transcribe: {failed} of {len(args.audio)} file(s) could not be transcribed", file=sys.stderr
        )
        return 1
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "transcribe",
        help="speech to text with Whisper (openai-whisper's flags)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("audio", nargs="+", help="audio file(s) to transcribe (wav, flac, ogg, mp3)")
    p.add_argument(
        "--model", default="tiny.en", help="Whisper name or alias (tiny.en, base, ...) or a path to weights"
    )
    p.add_argument("--model_dir", default=None, help="weights file or folder (CTranslate2, openai .pt or HF)")
    p.add_argument("--device", default=None, help="torch device; cuda when available, else cpu")
    p.add_argument("--output_dir", "-o", default=".", type=Path, help="directory to save the outputs")
    p.add_argument(
        "--output_format", "-f", default="all", choices=FORMATS, help="format of the output file(s)"
    )
    p.add_argument("--verbose", type=str2bool, default=True, help="print segments as they are decoded")
    p.add_argument(
        "--task",
        default="transcribe",
        choices=["transcribe", "translate"],
        help="X->X speech recognition or X->English translation",
    )
    p.add_argument("--language", default=None, help="language spoken in the audio; detected when left out")
    p.add_argument("--temperature", type=float, default=0, help="temperature to use for sampling")
    p.add_argument(
        "--best_of", type=optional_int, default=5, help="candidates when sampling at temperature > 0"
    )
    p.add_argument("--beam_size", type=optional_int, default=5, help="beams in beam search at temperature 0")
    p.add_argument(
        "--patience", type=optional_float, default=None,
        help="beam search keeps round(beam_size * patience) finished candidates (default 1.0)",
    )
    p.add_argument(
        "--length_penalty",
        type=optional_float,
        default=None,
        help="length penalty alpha in [0, 1]; simple length normalisation when left out",
    )
    p.add_argument(
        "--suppress_tokens", default="-1", help="comma-separated token ids to suppress; -1: non-speech"
    )
    p.add_argument("--initial_prompt", default=None, help="text to provide as a prompt for the first window")
    p.add_argument(
        "--condition_on_previous_text",
        type=str2bool,
        default=True,
        help="give the previous window's text as a prompt to the next one",
    )
    p.add_argument(
        "--fp16", type=str2bool, default=True, help="half precision on CUDA (CPU always uses fp32)"
    )
    p.add_argument(
        "--temperature_increment_on_fallback",
        type=optional_float,
        default=0.2,
        help="temperature increase when a window fails the thresholds below",
    )
    p.add_argument(
        "--compression_ratio_threshold",
        type=optional_float,
        default=2.4,
        help="treat a window as failed when its gzip compression ratio is above this",
    )
    p.add_argument(
        "--logprob_threshold",
        type=optional_float,
        default=-1.0,
        help="treat a window as failed when its average log probability is below this",
    )
    p.add_argument(
        "--no_speech_threshold",
        type=optional_float,
        default=0.6,
        help="treat a failed window as silence when its no-speech probability is above this",
    )
    add_word_and_vad_flags(p)
    p.add_argument(
        "--compute_type",
        default="default",
        choices=COMPUTE_TYPES,
        help="faster-whisper's: int8 weights on the CPU; default is float16 on CUDA, float32 on the CPU",
    )
    p.add_argument(
        "--batch_size",
        type=int,
        default=1,
        help="files whose 30 s windows are encoded and decoded together; each gets the text it gets alone",
    )
    p.add_argument("--threads", type=optional_int, default=0, help=THREADS_HELP)
    p.set_defaults(func=run)
