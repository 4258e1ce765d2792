"""The one command that makes the text-to-image weights the repository ships (examples/imagine/dit_shapes):

    python examples/imagine/make_weights.py            # both runs, then the export; prints the wall time

1. `zoo train --task autoencoder` fits the KL autoencoder of the 48 px scenes (output/imagine/autoencoder);
2. `zoo train --task text-to-image --autoencoder output/imagine/autoencoder` trains the DiT and its prompt
   encoder on those latents (output/imagine/dit_shapes);
3. the export keeps the best checkpoint's EMA weights in float16 (under 10 MB), its meta.json and both runs'
   summary.csv, then scores the exported weights themselves: images for every test and held-out prompt, read
   back by the shipped captioner (imagine_eval.json).

--export-only RUN_DIR skips the training and exports an existing text-to-image run (with the summary of the
autoencoder run its args.yaml names).
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
SHIPPED = ROOT / "examples" / "imagine" / "dit_shapes"
RUNS = ROOT / "output" / "imagine"


def zoo(*args: str) -> None:
    print("$ zoo " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "zoo", *args], cwd=ROOT, check=True)


def export(run: Path, autoencoder_run: Path | None) -> None:
    """The best EMA weights in float16 with their meta and records, then the read-back scores of that export."""
    from safetensors.torch import load_file, save_file

    from zoo.train import checkpoint

    best = checkpoint.find(run)
    if SHIPPED.exists():
        shutil.rmtree(SHIPPED)
    SHIPPED.mkdir(parents=True)
    state = load_file(str(best / checkpoint.EMA))
    save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()},
              str(SHIPPED / checkpoint.EMA))
    shutil.copy(best / checkpoint.META, SHIPPED / checkpoint.META)
    shutil.copy(run / "summary.csv", SHIPPED / "summary.csv")
    if autoencoder_run is not None:
        shutil.copy(autoencoder_run / "summary.csv", SHIPPED / "autoencoder_summary.csv")
    (SHIPPED / checkpoint.EMA).chmod(0o644)
    print(f"exported {best} -> {SHIPPED} ({(SHIPPED / checkpoint.EMA).stat().st_size / 1e6:.1f} MB)", flush=True)
    evaluate()


def evaluate() -> dict:
    """Read-back scores of the shipped weights on the test and held-out prompts (imagine_eval.json)."""
    from vision.imagine_data import scene_tensors
    from zoo.train.imagine import EVAL_SAMPLING
    from zoo.train.imagine_inference import draw, load_imagine
    from zoo.train.readback import SceneReader

    loaded, reader, results = load_imagine(SHIPPED), SceneReader(), {}
    for split in ("test", "holdout"):
        _, prompts = scene_tensors(split)
        started = time.monotonic()
        images = draw(loaded.model, loaded.vocab, prompts, seeds=list(range(len(prompts))), **EVAL_SAMPLING)
        results[split], _ = reader.score(images, prompts)
        print(f"{split}: {json.dumps(results[split])} ({time.monotonic() - started:.0f}s)", flush=True)
    results["sampling"] = {**EVAL_SAMPLING, "seeds": "0..n-1, one per prompt", "weights": "float16 EMA"}
    (SHIPPED / "imagine_eval.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def read_args(run: Path) -> dict:
    from zoo.train import report

    return report.read_args(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export-only", type=Path, default=None, metavar="RUN_DIR")
    parser.add_argument("--threads", default=None, help="passed to zoo train (default: the free cores)")
    args = parser.parse_args()
    started = time.monotonic()
    if args.export_only is not None:
        autoencoder_run = Path(read_args(args.export_only).get("autoencoder") or "")
        export(args.export_only, ROOT / autoencoder_run if autoencoder_run.name else None)
        return
    threads = ["--threads", args.threads] if args.threads else []
    zoo("train", "--task", "autoencoder", "--output", str(RUNS / "autoencoder"), "--no-progress", *threads)
    zoo("train", "--task", "text-to-image", "--autoencoder", str(RUNS / "autoencoder"),
        "--output", str(RUNS / "dit_shapes"), "--no-progress", *threads)
    export(RUNS / "dit_shapes", RUNS / "autoencoder")
    print(f"wall time {time.monotonic() - started:.0f}s on {torch.get_num_threads()} thread(s)", flush=True)


if __name__ == "__main__":
    main()
