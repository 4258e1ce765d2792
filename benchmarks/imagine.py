"""zoo's DiT sampling against diffusers': same model, same weights, same sampler, same noise, one process.

    python -m benchmarks.imagine                        # DiT-S/2-like, 20 DDIM steps, guidance 4, batch 8
    python -m benchmarks.imagine --amp --batch 32       # bfloat16 autocast for both; a bigger batch
    python -m benchmarks.imagine --layers 28 --heads 16 --head-dim 72   # DiT-XL/2's size

Images/s of class-conditional sampling with classifier-free guidance, the denoiser and the sampler only (no
autoencoder decode). diffusers' side is a DiTTransformer2DModel (random weights; every block's timestep +
class embedder a copy of block 0's, as in converted DiT checkpoints) stepped by a DDIMScheduler the way
DiTPipeline steps it; zoo's side is those weights converted into vision.dit.DiT, stepped by shared.diffusion's
DDIMSampler. Both run the conditional and the null-class rows as one batch, from the same initial noise and
labels. The script first checks that one prediction and the final latents agree (fp32), then times the two in
alternation, so a machine whose load changes during the run affects both alike; the best (least disturbed) and
the median repetition are both reported. Prints the device, torch threads, the load average and the ratio
zoo / diffusers (above 1 means zoo is faster).
"""

import argparse

import diffusers
import torch

from benchmarks.common import (
    CLOCKS,
    add_timing_arguments,
    describe_device,
    interleaved,
    load_average,
    report_ratio,
    set_threads,
)
from shared.diffusion import DDIMSampler, NoiseSchedule, guidance, sample
from shared.inference import prepare_for_inference
from vision.convert_dit import convert_dit, dit_config_from_diffusers
from vision.dit import DiT

GUIDANCE = 4.0  # DiTPipeline's default scale
NUM_CLASSES = 1000  # DiTPipeline's null class is the hard-coded id 1000: ImageNet's classes
# diffusers' DDIMScheduler set as shared.diffusion's DDIMSampler computes: linear betas, "leading" timesteps,
# no clipping, the step after the last one lands on the clean image (set_alpha_to_one)
SCHEDULER = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", clip_sample=False,
                 set_alpha_to_one=True, steps_offset=0, prediction_type="epsilon", timestep_spacing="leading")


def pair(args, device: torch.device) -> tuple[DiT, "diffusers.DiTTransformer2DModel"]:
    """diffusers' DiT at its random initialisation with one shared embedder, and zoo's DiT with its weights."""
    torch.manual_seed(0)
    reference = diffusers.DiTTransformer2DModel(
        num_attention_heads=args.heads, attention_head_dim=args.head_dim, num_layers=args.layers, in_channels=4,
        out_channels=8, sample_size=args.sample_size, patch_size=2, num_embeds_ada_norm=NUM_CLASSES).eval()
    with torch.no_grad():  # zoo's converter requires every block's embedder to equal block 0's
        first = reference.transformer_blocks[0].norm1.emb
        for block in reference.transformer_blocks[1:]:
            block.norm1.emb.load_state_dict(first.state_dict())
    config = dit_config_from_diffusers(dict(reference.config))
    ours = DiT(config)
    ours.load_state_dict(convert_dit(reference.state_dict(), config))
    ours.eval()
    if args.fuse_qkv:
        prepare_for_inference(ours)
    return ours.to(device), reference.to(device)


def sample_diffusers(model, scheduler, noise: torch.Tensor, labels: torch.Tensor, steps: int) -> torch.Tensor:
    """DiTPipeline's denoising loop, without the decode: (B, C, H, W) noise -> (B, C, H, W) latents."""
    channels = model.config.in_channels
    x = torch.cat([noise, noise])  # (2B, C, H, W): the conditional rows, then the null-class ones
    class_labels = torch.cat([labels, torch.full_like(labels, NUM_CLASSES)])
    scheduler.set_timesteps(steps)
    for t in scheduler.timesteps:
        half = x[: len(x) // 2]
        x = scheduler.scale_model_input(torch.cat([half, half]), t)
        timesteps = t[None].to(x.device).expand(x.shape[0])
        out = model(x, timestep=timesteps, class_labels=class_labels).sample  # (2B, 2C, H, W)
        eps, rest = out[:, :channels], out[:, channels:]
        cond, uncond = torch.split(eps, len(eps) // 2)
        guided = uncond + GUIDANCE * (cond - uncond)
        out = torch.cat([torch.cat([guided, guided]), rest], dim=1)
        eps, _ = torch.split(out, channels, dim=1)  # the learned sigma is left out
        x = scheduler.step(eps, t, x).prev_sample
    return x.chunk(2)[0]


def sample_zoo(model: DiT, sampler: DDIMSampler, noise: torch.Tensor, labels: torch.Tensor, steps: int
               ) -> torch.Tensor:
    """shared.diffusion's DDIM with zoo's DiT: (B, C, H, W) noise -> (B, C, H, W) latents."""
    channels = model.config.in_channels
    class_labels = torch.cat([labels, torch.full_like(labels, model.null_class)])  # (2B,)

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = model(torch.cat([x, x]), torch.cat([t, t]), class_labels)[:, :channels]  # (2B, C, H, W)
        cond, uncond = out.chunk(2)
        return guidance(uncond, cond, GUIDANCE)

    return sample(denoise, noise, sampler, steps)


def autocast(device: torch.device, amp: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)


def check(ours: DiT, reference, noise: torch.Tensor, labels: torch.Tensor, steps: int) -> tuple[float, float, float]:
    """fp32 max |difference| of one prediction (over several timesteps and the null class) and of the final
    latents, and the largest |latent| (the scale the latent difference is measured against)."""
    B = noise.shape[0]
    x = torch.cat([noise, noise.flip(0)])  # (2B, C, H, W)
    t = torch.linspace(0, 999, 2 * B, device=noise.device).round().long()
    y = torch.cat([labels, torch.full_like(labels, NUM_CLASSES)])
    with torch.inference_mode():
        prediction = (ours(x, t.float(), y) - reference(x, timestep=t, class_labels=y).sample).abs().max().item()
        theirs = sample_diffusers(reference, diffusers.DDIMScheduler(**SCHEDULER), noise, labels, steps)
        latents = (sample_zoo(ours, DDIMSampler(NoiseSchedule()), noise, labels, steps) - theirs).abs().max().item()
    return prediction, latents, theirs.abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_timing_arguments(parser, warmup=2)
    parser.add_argument("--batch", type=int, default=8, help="images per sampling run (twice the rows with guidance)")
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--sample-size", type=int, default=32, help="latent side (32: 256x256 images)")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast for both")
    parser.add_argument("--fuse-qkv", action="store_true",
                        help="run zoo's DiT through shared.inference.prepare_for_inference (one q/k/v GEMM); "
                             "zoo's imagine path does not, and diffusers' DiT has no such step")
    args = parser.parse_args()
    threads = set_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {describe_device(device)}, torch {torch.__version__}, diffusers {diffusers.__version__}, "
          f"{threads}, amp {args.amp}, clock {args.clock}, {load_average()}", flush=True)

    ours, reference = pair(args, device)
    generator = torch.Generator().manual_seed(1)
    shape = (args.batch, 4, args.sample_size, args.sample_size)
    noise = torch.randn(shape, generator=generator).to(device)
    labels = torch.randint(0, NUM_CLASSES, (args.batch,), generator=generator).to(device)
    prediction, latents, scale = check(ours, reference, noise, labels, args.steps)
    title = (f"DiT {args.layers} layers, {args.heads}x{args.head_dim} wide, {args.sample_size}x{args.sample_size} "
             f"latents, batch {args.batch}, DDIM {args.steps} steps, guidance {GUIDANCE:g}")
    print(f"{title}; fp32 max |diff|: prediction {prediction:.1e}, final latents {latents:.1e} "
          f"(max |latent| {scale:.3g})", flush=True)

    # each side's sampler is built once, as a pipeline holds its scheduler; both set their timesteps per run
    sampler, scheduler = DDIMSampler(NoiseSchedule(), eta=0.0), diffusers.DDIMScheduler(**SCHEDULER)
    fns = {"zoo": lambda: sample_zoo(ours, sampler, noise, labels, args.steps),
           "diffusers": lambda: sample_diffusers(reference, scheduler, noise, labels, args.steps)}
    with torch.inference_mode(), autocast(device, args.amp):
        times, outputs = interleaved(fns, device, args.reps, args.warmup, 1, CLOCKS[args.clock])
        if args.amp:
            amp_diff = (outputs["zoo"].float() - outputs["diffusers"].float()).abs().max().item()
            print(f"bf16 autocast max |diff| of the final latents {amp_diff:.1e}", flush=True)
    report_ratio("sampling", "images/s", args.batch, times, "diffusers")
    print(f"end: {load_average()}", flush=True)


if __name__ == "__main__":
    main()
