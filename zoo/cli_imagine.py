"""`zoo imagine`: draw images from prompts with a trained text-to-image model; PNGs, a grid, and a JSON per
image saying how it was made."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from zoo import cli_threads


def slug(prompt: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:limit] or "image"


def run_imagine(args) -> int:
    from tqdm import tqdm

    from vision.imagine_data import encode_prompts, grid
    from zoo.imagine import imagine, load, weights_digest
    from zoo.train.imagine_inference import BATCH_SIZE, check_sampling

    check_sampling(args.num_inference_steps, args.guidance_scale, args.num_images)
    loaded = load(args.checkpoint, args.device)
    negative = [args.negative_prompt] if args.negative_prompt is not None else []
    encode_prompts(loaded.vocab, args.prompts + negative, loaded.model.config.max_prompt_len)  # refuse before drawing
    cli_threads.start_threads("imagine", args.threads)
    n_images = len(args.prompts) * args.num_images
    batches = (n_images + BATCH_SIZE - 1) // BATCH_SIZE
    bar = tqdm(total=args.num_inference_steps * batches, desc="denoising", unit="step",
               disable=args.no_progress, file=sys.stderr)

    images = imagine(args.prompts, args.checkpoint, num_inference_steps=args.num_inference_steps,
                     guidance_scale=args.guidance_scale, seed=args.seed, num_images=args.num_images,
                     scheduler=args.scheduler, negative_prompt=args.negative_prompt, device=args.device,
                     progress=lambda step, steps: bar.update(1))
    bar.close()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    digest = weights_digest(loaded)
    scheduler = args.scheduler or loaded.model.objective.samplers[0]
    prompts = [p for p in args.prompts for _ in range(args.num_images)]
    for k, (prompt, image) in enumerate(zip(prompts, images)):
        path = out / f"{k:03d}-{slug(prompt)}.png"
        image.save(path)
        record = {"prompt": prompt, "seed": args.seed + k, "num_inference_steps": args.num_inference_steps,
                  "guidance_scale": args.guidance_scale, "negative_prompt": args.negative_prompt,
                  "scheduler": scheduler,
                  "model": loaded.name, "checkpoint": str(loaded.folder),
                  "weights": loaded.weights_file, "weights_sha256": digest}
        path.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
        print(path)
    grid_path = out / "grid.png"
    # a row per prompt when each has several images, else rows of up to 4
    grid(images, columns=args.num_images if args.num_images > 1 else min(len(images), 4)).save(grid_path)
    print(f"grid: {grid_path}", file=sys.stderr)
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("imagine", help="draw images from text prompts",
                              description="Draw images from prompts with a `zoo train --task text-to-image` "
                                          "model (default: the shipped scenes model).")
    p.add_argument("prompts", nargs="+", help="what to draw, e.g. 'a red circle left of a blue square'")
    p.add_argument("--checkpoint", default=None, help="run folder (uses best/) or checkpoint folder "
                                                      "(default: the shipped model)")
    p.add_argument("--num_inference_steps", "--num-inference-steps", type=int, default=20,
                   help="denoising steps (default 20)")
    p.add_argument("--guidance_scale", "--guidance-scale", type=float, default=3.0,
                   help="classifier-free guidance (1: none; default 3)")
    p.add_argument("--negative_prompt", "--negative-prompt", default=None,
                   help="what guidance steers every image away from, instead of the empty prompt")
    p.add_argument("--seed", type=int, default=0, help="seed of the first image; image k uses seed + k")
    p.add_argument("--num_images", "--num-images", type=int, default=1, help="images per prompt")
    p.add_argument("--scheduler", default=None, choices=("euler", "ddim", "ddpm"),
                   help="sampler (default: the model's own: euler for rectified flow, ddim for DDPM)")
    p.add_argument("--output", "-o", default="output/imagine", help="folder for the PNGs (default output/imagine)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when present)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    cli_threads.add_argument(p)
    p.set_defaults(func=run_imagine)
