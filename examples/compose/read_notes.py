"""Read composed melodies back with a pitch tracker: the notes each prompt asks for beside the notes heard.

    python examples/compose/read_notes.py output/compose-0.wav output/compose-1.wav

Each WAV's prompt comes from the JSON record `zoo compose` writes beside it.
"""

import argparse
import json
from pathlib import Path

from audio import melodies, music_metrics
from audio.io import load_audio


def name(midi: float | None) -> str:
    if midi is None:
        return "-"
    note = round(midi)
    return f"{melodies.KEYS[note % 12]}{note // 12 - 1}"  # MIDI 60 is C4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wavs", nargs="+", type=Path)
    for path in parser.parse_args().wavs:
        prompt = json.loads(path.with_suffix(".json").read_text())["prompt"]
        result = music_metrics.grade(load_audio(path, melodies.SAMPLE_RATE), melodies.SAMPLE_RATE, prompt)
        print(f"{path}: {prompt!r}")
        print(f"  asked: {' '.join(name(n) for n in result['expected'])}")
        print(f"  heard: {' '.join(name(n) for n in result['notes'])}  ({result['note_accuracy']:.0%} of the notes, "
              f"{result['seconds_per_note']:.2f} s a note)")


if __name__ == "__main__":
    main()
