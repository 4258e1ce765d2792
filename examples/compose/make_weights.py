"""The one command that makes the text-to-music weights the repository ships (examples/compose/musicgen_melodies):

    python examples/compose/make_weights.py            # the run, then the export; prints the wall time

1. `zoo train --task text-to-music --dataset melodies` fits the k-means spectral codec on rendered melodies and
   trains the MusicGen-style decoder and its prompt encoder on their codes (output/compose/musicgen_melodies);
2. the export keeps the best checkpoint's EMA weights in float16 (under 10 MB), its meta.json and summary.csv;
   picks the sampling `zoo compose` will use by default with it (the best of a few guidance scales and top-k
   values on validation prompts, into meta.json's "compose"); then grades the exported weights themselves:
   test and held-out prompts composed that way and read by the pitch tracker (compose_eval.json).

--export-only RUN_DIR skips the training and exports an existing run. Extra flags after `--` go to zoo train.
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "examples" / "compose" / "musicgen_melodies"
RUN = ROOT / "output" / "compose" / "musicgen_melodies"
EVAL_PROMPTS = 200  # per split (--eval-prompts)
CHOICE_PROMPTS = 48  # validation prompts each candidate sampling is graded on
CANDIDATES = ({"guidance_scale": 3.0, "top_k": 250}, {"guidance_scale": 1.0, "top_k": 250},
              {"guidance_scale": 3.0, "top_k": 1}, {"guidance_scale": 1.5, "top_k": 1},
              {"guidance_scale": 1.0, "top_k": 1})


def zoo(*args: str) -> None:
    print("$ zoo " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "zoo", *args], cwd=ROOT, check=True)


def export(run: Path, out: Path = SHIPPED, eval_prompts: int = EVAL_PROMPTS) -> None:
    """The best EMA weights in float16 with their meta and summary, then the grades of that export."""
    from safetensors.torch import load_file, save_file

    from zoo.train import checkpoint

    best = checkpoint.find(run)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    state = load_file(str(best / checkpoint.EMA))
    save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, str(out / checkpoint.EMA))
    shutil.copy(best / checkpoint.META, out / checkpoint.META)
    shutil.copy(run / "summary.csv", out / "summary.csv")
    (out / checkpoint.EMA).chmod(0o644)
    print(f"exported {best} -> {out} ({(out / checkpoint.EMA).stat().st_size / 1e6:.1f} MB)", flush=True)
    print(f"default sampling: {choose_sampling(out)}", flush=True)
    evaluate(out, eval_prompts)


def grade(loaded, prompts: list[str], sampling: dict) -> dict:
    """The pitch tracker's summary of `prompts` composed with `sampling` (guidance_scale, top_k)."""
    from audio import music_metrics
    from zoo.train.compose_inference import compose_audio

    audio = compose_audio(loaded.model, loaded.vocab, prompts, loaded.frames, seed=0, **sampling)
    graded = [music_metrics.grade(wav.numpy(), loaded.model.sample_rate, p) for wav, p in zip(audio, prompts)]
    return music_metrics.summarize(graded, prompts)


def choose_sampling(folder: Path) -> dict:
    """The candidate with the best exact-melody rate (then note accuracy) on validation prompts, written into
    meta.json as the checkpoint's "compose" defaults."""
    from audio import melodies
    from zoo.train import checkpoint
    from zoo.train.compose_inference import load_composer

    loaded, prompts, scores = load_composer(folder), melodies.sample_prompts(CHOICE_PROMPTS, seed=0, split="val"), []
    for sampling in CANDIDATES:
        r = grade(loaded, prompts, sampling)
        scores.append((r["exact"], r["note_accuracy"]))
        print(f"val {sampling}: notes {r['note_accuracy']:.1f}%  exact {r['exact']:.1f}%", flush=True)
    best = CANDIDATES[max(range(len(CANDIDATES)), key=scores.__getitem__)]
    meta = json.loads((folder / checkpoint.META).read_text())
    (folder / checkpoint.META).write_text(json.dumps({**meta, "compose": best}, indent=2) + "\n")
    return best


def evaluate(folder: Path = SHIPPED, n: int = EVAL_PROMPTS) -> dict:
    """The pitch tracker's grades of a text-to-music checkpoint on n test and n held-out prompts, composed
    with its default sampling."""
    from audio import melodies
    from zoo.train.compose_inference import load_composer

    loaded, results = load_composer(folder), {}
    guidance_scale, top_k = loaded.settings()
    sampling = {"guidance_scale": guidance_scale, "top_k": top_k}
    for split in ("test", "holdout"):
        prompts = melodies.sample_prompts(n, seed=0, split=split)
        started = time.monotonic()
        r = results[split] = grade(loaded, prompts, sampling)
        print(f"{split}: notes {r['note_accuracy']:.1f}%  exact {r['exact']:.1f}%  tempo {r['tempo']:.1f}%  "
              f"({len(prompts)} prompts, {time.monotonic() - started:.0f}s)", flush=True)
    results["sampling"] = {**sampling, "seed": 0, "weights": "float16 EMA", "prompts": f"sample_prompts({n}, seed=0)"}
    (folder / "compose_eval.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export-only", type=Path, default=None, metavar="RUN_DIR")
    parser.add_argument("--out", type=Path, default=SHIPPED, help="where the export goes")
    parser.add_argument("--eval-prompts", type=int, default=EVAL_PROMPTS, help="graded prompts per split")
    parser.add_argument("train_args", nargs="*", help="more zoo train flags (after --)")
    args = parser.parse_args()
    started = time.monotonic()
    if args.export_only is None:
        zoo("train", "--task", "text-to-music", "--dataset", "melodies", "--output", str(RUN), "--no-progress",
            *args.train_args)
    export(args.export_only or RUN, args.out, args.eval_prompts)
    print(f"wall time {time.monotonic() - started:.0f}s on {torch.get_num_threads()} thread(s)", flush=True)


if __name__ == "__main__":
    main()
