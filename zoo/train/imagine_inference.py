"""A trained text-to-image model: the meta.json fields its checkpoint carries, loading it back, drawing images.

The counterpart of zoo.train.caption_inference; `zoo imagine`, zoo.imagine() and the trainer build on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shared.errors import InputError

if TYPE_CHECKING:
    import torch

    from vision.caption_data import CaptionVocab
    from vision.text_to_image import TextToImage


BATCH_SIZE = 256  # images drawn at once


@dataclass
class LoadedImagine:
    """A trained text-to-image model with its prompt vocabulary."""

    model: TextToImage
    vocab: CaptionVocab
    name: str            # the registered model it was trained as
    folder: Path
    weights_file: str

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def imagine_meta(model_name: str, model_overrides: dict, vocab: CaptionVocab) -> dict:
    """The meta.json fields that make a training checkpoint a text-to-image one (what load_imagine reads)."""
    return {"task": "text-to-image", "model": model_name, "model_overrides": dict(model_overrides),
            "vocab": vocab.to_dict()}


def load_imagine(path: str | Path, use_ema: bool = True, device: str | None = None) -> LoadedImagine:
    """Rebuild the model a `zoo train --task text-to-image` checkpoint (or a run folder's best) holds."""
    from vision.caption_data import CaptionVocab
    from zoo.train.inference import load_task_model

    model, meta, folder, used = load_task_model(path, "text-to-image", use_ema, device)
    return LoadedImagine(model, CaptionVocab.from_dict(meta["vocab"]), meta["model"], folder, used)


def check_sampling(num_inference_steps: int, guidance_scale: float, num_images: int = 1) -> None:
    """One-line refusals of sampling settings that cannot work."""
    if num_inference_steps < 1:
        raise InputError(f"num_inference_steps must be at least 1, got {num_inference_steps}")
    if guidance_scale < 0:
        raise InputError(f"guidance_scale must be 0 or more (1: no guidance), got {guidance_scale}")
    if num_images < 1:
        raise InputError(f"num_images must be at least 1, got {num_images}")


def per_prompt(negative_prompt: str | list[str], n: int) -> list[str]:
    """A negative prompt for each of n prompts: the one given for all of them, or the n given."""
    negatives = [negative_prompt] * n if isinstance(negative_prompt, str) else list(negative_prompt)
    if len(negatives) != n:
        raise InputError(f"{len(negatives)} negative prompts for {n} prompts: give one negative prompt, or one "
                         "per prompt")
    return negatives


def draw(model: TextToImage, vocab: CaptionVocab, prompts: list[str], *, seeds: list[int],
         num_inference_steps: int = 20, guidance_scale: float = 3.0, scheduler: str | None = None,
         negative_prompts: str | list[str] | None = None, batch_size: int = BATCH_SIZE, progress=None) -> torch.Tensor:
    """Images (B, 3, H, W) in [-1, 1] (on the CPU), one per prompt; image i comes from seeds[i] alone, so it
    is the same whatever else is in its batch. negative_prompts: one per prompt, what guidance steers away
    from (default: the empty prompt)."""
    import torch

    from vision.imagine_data import encode_prompts

    check_sampling(num_inference_steps, guidance_scale)
    encoded = [encode_prompts(vocab, prompts, model.config.max_prompt_len)]
    if negative_prompts is not None:
        negative_prompts = per_prompt(negative_prompts, len(prompts))
        encoded.append(encode_prompts(vocab, negative_prompts, model.config.max_prompt_len))
    device = next(model.parameters()).device

    def batch(tokens: torch.Tensor, mask: torch.Tensor, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        width = int(mask[rows].sum(1).max())  # drop the padding columns every prompt of this batch has
        return tokens[rows, :width].to(device), mask[rows, :width].to(device)

    out = []
    for start in range(0, len(prompts), batch_size):
        rows = slice(start, start + batch_size)
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds[rows]]
        (tokens, mask), *negative = [batch(*pair, rows) for pair in encoded]
        images = model.generate(tokens, mask, num_inference_steps=num_inference_steps,
                                guidance_scale=guidance_scale, sampler=scheduler, generators=generators,
                                negative=negative[0] if negative else None, progress=progress)
        out.append(images.float().cpu())
    return torch.cat(out)
