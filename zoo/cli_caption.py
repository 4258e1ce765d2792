"""`zoo caption`: caption image files with a trained captioner; optionally draw where each word looked."""

from __future__ import annotations  # torch and the models load on first use, not when the CLI starts

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from shared.errors import InputError
from zoo import cli_threads
from zoo.train.caption_inference import caption_files, load_captioner

if TYPE_CHECKING:
    import torch


def plot_attention(path: str | Path, results: list[tuple[str, list[str], torch.Tensor, object]]) -> None:
    """One figure: a row per image — the image, then each generated word's attention map over it."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    cols = 1 + max(len(words) for _, words, _, _ in results)
    fig, axes = plt.subplots(len(results), cols, figsize=(1.6 * cols, 1.8 * len(results)), squeeze=False)
    for row, (name, words, maps, image) in zip(axes, results):
        width, height = image.size
        top = float(maps.max())  # one colour scale per image, so the maps of its words compare
        row[0].imshow(image, interpolation="nearest")
        row[0].set_title(Path(name).name, fontsize=7)
        for ax, word, heat in zip(row[1:], words, maps):
            ax.imshow(image, interpolation="nearest")
            # each patch a flat square stretched over the pixels it covers
            ax.imshow(heat.numpy(), cmap="jet", alpha=0.5, vmin=0.0, vmax=top, interpolation="nearest",
                      extent=(0, width, height, 0))
            ax.set_title(word, fontsize=8)
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_caption(args) -> int:
    if args.beam_size < 1:
        raise InputError(f"--beam_size must be at least 1, got {args.beam_size}")
    cap = load_captioner(args.checkpoint, use_ema=not args.no_ema, device=args.device)
    cli_threads.start_threads("caption", args.threads)
    failed, drawn = 0, []
    for path, result in caption_files(cap, args.images, args.beam_size, args.max_new_tokens,
                                      with_attention=args.attention_map is not None):
        if isinstance(result, Exception):
            failed += 1
            print(f"zoo caption: skipped {result}", file=sys.stderr)
            continue
        caption, words, maps, image = result
        print(f"{path}: {caption}")
        if maps is not None:
            drawn.append((path, words, maps, image))
    if args.attention_map is not None and drawn:
        plot_attention(args.attention_map, drawn)
        print(f"attention maps: {args.attention_map}", file=sys.stderr)
    if failed:
        print(f"zoo caption: {failed} of {len(args.images)} file(s) could not be read", file=sys.stderr)
        return 1
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("caption", help="caption images with a trained captioner",
                              description="Caption image files with a `zoo train --task caption` checkpoint.")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--checkpoint", required=True, help="run folder (uses best/) or a checkpoint folder")
    p.add_argument("--beam_size", "--beam-size", type=int, default=1, help="beams (1: greedy)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="longest caption, in words")
    p.add_argument("--attention-map", default=None, metavar="OUT.png",
                   help="save each word's cross-attention over the image patches, overlaid on the image")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights, not the EMA ones")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when present)")
    cli_threads.add_argument(p)
    p.set_defaults(func=run_caption)
