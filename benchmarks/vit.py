"""zoo's ViT against timm's: same architecture, same weights, same inputs, one process.

    python -m benchmarks.vit                 # inference vit_small_patch16_224 (batch 1, 8) + training step
    python -m benchmarks.vit --reps 5 --amp  # fewer repetitions; bfloat16 autocast on CUDA

Inference: images/s of vit_small_patch16_224 at batch 1 and 8 (eval, inference mode). Training: steps/s
(forward + cross-entropy + backward + AdamW step) of vit_tiny_patch4_32 at batch 128. timm's random weights
are converted into zoo so both compute the same function; the script checks the outputs agree first.
zoo and timm are timed in alternation, so a machine whose load changes during the run affects both alike;
the best (least disturbed) and the median repetition are both reported. The training step gives both the
same optimizer (AdamW, same settings), the same batch and the same input. Prints the device, torch threads,
the load average and the ratios zoo / timm (above 1 means zoo is faster).
"""

import argparse

import timm
import torch
from torch.nn import functional as F

import zoo
from benchmarks.common import (
    CLOCKS,
    add_timing_arguments,
    describe_device,
    interleaved,
    load_average,
    report_ratio,
    set_threads,
)
from shared.inference import prepare_for_inference
from vision.convert import from_timm


def compare(fns: dict, device: torch.device, args, iters: int) -> dict:
    """Seconds per call of each fn in every repetition, measured in alternation."""
    times, _ = interleaved(fns, device, args.reps, args.warmup, iters, CLOCKS[args.clock])
    return times


def pair(name: str, timm_kwargs: dict, device: torch.device, **overrides):
    """timm's model and zoo's with timm's weights converted into it."""
    torch.manual_seed(0)
    reference = timm.models.vision_transformer.VisionTransformer(**timm_kwargs).to(device)
    ours = zoo.create_model(name, **overrides)
    ours.load_state_dict(from_timm(reference.state_dict(), ours.config))
    return ours.to(device), reference


def autocast(device: torch.device, amp: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)


def bench_inference(device, args) -> None:
    ours, reference = pair("vit_small_patch16_224", dict(img_size=224, patch_size=16, embed_dim=384, depth=12,
                                                         num_heads=6, num_classes=1000), device)
    prepare_for_inference(ours.eval()), reference.eval()
    for batch in (1, 8):
        x = torch.randn(batch, 3, 224, 224, device=device)
        with torch.inference_mode(), autocast(device, args.amp):
            diff = (ours(x).float() - reference(x).float()).abs().max().item()
            result = compare({"zoo": lambda: ours(x), "timm": lambda: reference(x)}, device, args, args.iters)
        report_ratio(f"inference vit_small_patch16_224 batch {batch}", "images/s", batch, result, "timm",
                     f"max |logit diff| {diff:.1e}")


def bench_training(device, args) -> None:
    kwargs = dict(img_size=32, patch_size=4, embed_dim=192, depth=12, num_heads=3, num_classes=10,
                  drop_path_rate=0.1)
    ours, reference = pair("vit_tiny_patch4_32", kwargs, device)
    x = torch.randn(args.train_batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.train_batch,), device=device)

    def step_fn(model):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)

        def step():
            with autocast(device, args.amp):
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return step

    ours.train(), reference.train()
    with torch.no_grad():
        ours.eval(), reference.eval()
        diff = (ours(x).float() - reference(x).float()).abs().max().item()
        ours.train(), reference.train()
    result = compare({"zoo": step_fn(ours), "timm": step_fn(reference)}, device, args, max(1, args.iters // 2))
    report_ratio(f"training step vit_tiny_patch4_32 batch {args.train_batch}", "steps/s", 1, result, "timm",
                 f"max |logit diff| {diff:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_timing_arguments(parser, warmup=3)
    parser.add_argument("--iters", type=int, default=4, help="calls per repetition")
    parser.add_argument("--train-batch", type=int, default=128)
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    parser.add_argument("--only", choices=("inference", "training"), default=None)
    args = parser.parse_args()
    threads = set_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {describe_device(device)}, torch {torch.__version__}, timm {timm.__version__}, "
          f"{threads}, amp {args.amp}, clock {args.clock}, {load_average()}", flush=True)
    if args.only in (None, "inference"):
        bench_inference(device, args)
    if args.only in (None, "training"):
        bench_training(device, args)
    print(f"end: {load_average()}", flush=True)


if __name__ == "__main__":
    main()
