"""`zoo.imagine(prompts, ...)`: images from text with a trained text-to-image model (the shipped one by default).

    import zoo
    images = zoo.imagine("a red circle left of a blue square", num_images=4, seed=0)
    images[0].save("scene.png")
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from shared.errors import WeightsError
from zoo.shipped import SHIPPED_IMAGINE


def default_checkpoint() -> Path:
    """The model `zoo imagine` uses without --checkpoint: the one the repository ships."""
    if not SHIPPED_IMAGINE.is_dir():
        raise WeightsError(f"{SHIPPED_IMAGINE}: the shipped text-to-image weights are missing (they come with a "
                           "source checkout); pass checkpoint=RUN_DIR from `zoo train --task text-to-image`")
    return SHIPPED_IMAGINE


@functools.lru_cache(maxsize=2)
def load(checkpoint: str | None = None, device: str | None = None, use_ema: bool = True):
    """The LoadedImagine of a checkpoint (default: the shipped one), kept for the next call."""
    from zoo.train.imagine_inference import load_imagine

    return load_imagine(checkpoint or default_checkpoint(), use_ema=use_ema, device=device)


def weights_digest(loaded) -> str:
    """The first 12 hex digits of the weights file's SHA-256: which weights made an image."""
    digest = hashlib.sha256((Path(loaded.folder) / loaded.weights_file).read_bytes()).hexdigest()
    return digest[:12]


def imagine(prompts: str | list[str], checkpoint: str | Path | None = None, *, num_inference_steps: int = 20,
            guidance_scale: float = 3.0, seed: int = 0, num_images: int = 1, scheduler: str | None = None,
            negative_prompt: str | list[str] | None = None, device: str | None = None, progress=None) -> list:
    """Draw `num_images` PIL images per prompt; image k of the whole list (prompt-major) uses seed + k, so it
    equals that prompt drawn alone with seed + k.

    scheduler: "euler" (rectified flow), "ddim" or "ddpm" (ε-prediction models); default: the model's first.
    negative_prompt: what guidance steers away from instead of the empty prompt, one for every prompt or one
    per prompt (diffusers' name).
    progress: an optional callable(step, steps) after each denoising step.
    """
    from vision.imagine_data import to_pil
    from zoo.train.imagine_inference import check_sampling, draw, per_prompt

    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    check_sampling(num_inference_steps, guidance_scale, num_images)
    loaded = load(str(checkpoint) if checkpoint is not None else None, device)
    expanded = [p for p in prompts for _ in range(num_images)]
    negatives = None
    if negative_prompt is not None:
        negatives = [n for n in per_prompt(negative_prompt, len(prompts)) for _ in range(num_images)]
    images = draw(loaded.model, loaded.vocab, expanded, seeds=[seed + k for k in range(len(expanded))],
                  num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, scheduler=scheduler,
                  negative_prompts=negatives, progress=progress)
    return to_pil(images)
