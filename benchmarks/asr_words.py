"""Word timestamps and the VAD filter: how close zoo's words are to openai-whisper's, and what the VAD saves.

1. Word timestamps: every committed clip transcribed with word_timestamps=True by zoo and by openai-whisper on
   the same tiny.en weights; whether the words are identical, the largest start/end difference, and what
   word timestamps cost zoo in time.
2. VAD: examples/audio/vad/speech_gap.wav (speech, 30 s of silence, speech) transcribed by zoo with and
   without vad_filter (and by faster-whisper likewise, when installed), timed in alternation in one run; the
   speed-up, the text, and the segments' times against where the speech is.

    python -m benchmarks.asr_words [--threads N] [--repeats 5] [--skip words|vad]
"""

import argparse
import json
import statistics
from pathlib import Path

from benchmarks.common import (
    describe_cpu,
    interleaved,
    load_average,
    openai_whisper_model,
    set_threads,
    tiny_en_weights,
)

ROOT = Path(__file__).resolve().parents[1]
CLIPS = ROOT / "examples" / "audio"
GAP = CLIPS / "vad" / "speech_gap.wav"


def _openai_model():
    """openai-whisper's model with its own alignment heads for tiny.en, the reference for word times."""
    import whisper

    model = openai_whisper_model()
    model.set_alignment_heads(whisper._ALIGNMENT_HEADS["tiny.en"])
    return model


def _words(result: dict) -> list[dict]:
    return [w for s in result["segments"] for w in s.get("words", [])]


def compare_words(model, tokenizer, repeats: int) -> None:
    import whisper

    from audio.io import load_audio
    from audio.transcribe import transcribe

    reference = _openai_model()
    print("\n## Word timestamps: zoo against openai-whisper (same weights, greedy with fallback)")
    print(f"{'clip':14} {'words':>5} {'same':>5} {'max |Δstart|':>12} {'max |Δend|':>10} "
          f"{'zoo s':>7} {'+words s':>8} {'openai+words s':>14}")  # fmt: skip
    worst = 0.0
    for path in sorted(CLIPS.glob("*.wav")):
        audio = load_audio(path)
        fns = {
            "plain": lambda: transcribe(model, audio, tokenizer=tokenizer),
            "words": lambda: transcribe(model, audio, tokenizer=tokenizer, word_timestamps=True),
            "openai": lambda: whisper.transcribe(reference, audio, word_timestamps=True, fp16=False, verbose=None),
        }
        times, out = interleaved(fns, "cpu", reps=1 if path.name == "long.wav" else repeats, warmup=0)
        ours, theirs = _words(out["words"]), _words(out["openai"])
        same = [w["word"] for w in ours] == [w["word"] for w in theirs]
        d_start = max((abs(a["start"] - b["start"]) for a, b in zip(ours, theirs)), default=0.0)
        d_end = max((abs(a["end"] - b["end"]) for a, b in zip(ours, theirs)), default=0.0)
        worst = max(worst, d_start, d_end) if same else float("inf")
        t = {k: statistics.median(v) for k, v in times.items()}
        print(f"{path.name:14} {len(ours):5d} {str(same):>5} {d_start:12.3f} {d_end:10.3f} "
              f"{t['plain']:7.2f} {t['words']:8.2f} {t['openai']:14.2f}")  # fmt: skip
    print(f"largest word time difference over all clips: {worst:.3f} s (words identical: {worst != float('inf')})")


def compare_vad(model, tokenizer, threads: int, repeats: int) -> None:
    from audio.io import load_audio
    from audio.transcribe import transcribe
    from audio.vad import VadOptions, speech_chunks

    info = json.loads((GAP.parent / "transcripts.json").read_text())[GAP.name]
    audio = load_audio(GAP)
    print(f"\n## VAD filter: {GAP.name} ({len(audio) / 16000:.1f} s: speech at {info['speech']}, silence between)")
    fns = {
        "zoo": lambda: transcribe(model, audio, tokenizer=tokenizer),
        "zoo vad_filter": lambda: transcribe(model, audio, tokenizer=tokenizer, vad_filter=True),
        "silero chunks only": lambda: speech_chunks(audio, VadOptions()),
    }
    try:
        from faster_whisper import WhisperModel

        faster = WhisperModel(str(tiny_en_weights()), device="cpu", compute_type="float32", cpu_threads=threads)
        fns["faster-whisper"] = lambda: _faster(faster, audio, False)
        fns["faster-whisper vad_filter"] = lambda: _faster(faster, audio, True)
    except ImportError:
        print("(faster-whisper not installed: pip install -e '.[bench]')")
    times, out = interleaved(fns, "cpu", reps=repeats)
    t = {k: statistics.median(v) for k, v in times.items()}
    for name, seconds in t.items():
        print(f"{name:26} {seconds:6.2f} s (median of {repeats})")
    print(f"zoo speed-up with vad_filter: {t['zoo'] / t['zoo vad_filter']:.2f}x")
    if "faster-whisper" in t:
        print(f"faster-whisper speed-up with vad_filter: {t['faster-whisper'] / t['faster-whisper vad_filter']:.2f}x")
        print(f"zoo vad_filter vs faster-whisper float32 vad_filter: "
              f"{t['faster-whisper vad_filter'] / t['zoo vad_filter']:.2f}x (above 1: zoo faster)")  # fmt: skip
    for name in ("zoo", "zoo vad_filter", "faster-whisper vad_filter"):
        if name in out:
            segments = [(round(s["start"], 2), round(s["end"], 2), s["text"].strip()) for s in out[name]["segments"]]
            print(f"{name}: {segments}")


def _faster(model, audio, vad_filter: bool) -> dict:
    segments, _ = model.transcribe(audio, beam_size=1, vad_filter=vad_filter)
    return {"segments": [{"start": s.start, "end": s.end, "text": s.text} for s in segments]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip", choices=["words", "vad"], default=None)
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)
    from zoo.transcribe import load_model

    model, tokenizer = load_model("tiny.en", device="cpu")
    print(f"# Word timestamps and VAD: {describe_cpu()}, {threads}, load {load_average()}")
    if args.skip != "words":
        compare_words(model, tokenizer, args.repeats)
    if args.skip != "vad":
        compare_vad(model, tokenizer, threads.count, args.repeats)


if __name__ == "__main__":
    main()
