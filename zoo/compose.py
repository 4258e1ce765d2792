"""`zoo.compose(prompts, ...)`: music from text with a trained text-to-music model (the shipped one by default).

    import zoo
    clips, sample_rate = zoo.compose("a fast falling E minor arpeggio on a bright square", seed=0)
"""

from __future__ import annotations

import functools
from pathlib import Path

from shared.errors import WeightsError
from zoo.shipped import SHIPPED_COMPOSER


def default_checkpoint() -> Path:
    """The model `zoo compose` uses without --checkpoint: the one the repository ships."""
    if not SHIPPED_COMPOSER.is_dir():
        raise WeightsError(f"{SHIPPED_COMPOSER}: the shipped text-to-music weights are missing (they come with a "
                           "source checkout); pass checkpoint=RUN_DIR from `zoo train --task text-to-music`")
    return SHIPPED_COMPOSER


@functools.lru_cache(maxsize=2)
def load(checkpoint: str | None = None, device: str | None = None, use_ema: bool = True):
    """The LoadedComposer of a checkpoint (default: the shipped one), kept for the next call."""
    from zoo.train.compose_inference import load_composer

    return load_composer(checkpoint or default_checkpoint(), use_ema=use_ema, device=device)


def compose(prompts: str | list[str], checkpoint: str | Path | None = None, *, duration: float | None = None,
            guidance_scale: float | None = None, seed: int = 0, top_k: int | None = None, top_p: float | None = None,
            temperature: float = 1.0, device: str | None = None, progress=None) -> tuple[list, int]:
    """One clip per prompt: (float32 numpy arrays, sample rate).

    duration: seconds (default: the length the model was trained on). Sampling is top-k / top-p with
    temperature (top_k=1: greedy) under classifier-free guidance (guidance_scale 1: none), seeded by `seed`;
    guidance_scale and top_k default to what the checkpoint recommends (the shipped model: greedy, no
    guidance), else MusicGen's 3 and 250. progress: an optional callable(tokens_fed) after each decoder step.
    """
    from zoo.train.compose_inference import check_sampling, compose_audio

    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    loaded = load(str(checkpoint) if checkpoint is not None else None, device)
    model = loaded.model
    duration = duration if duration is not None else loaded.frames / model.frame_rate
    guidance_scale, top_k = loaded.settings(guidance_scale, top_k)
    frames = check_sampling(duration, guidance_scale, top_k, model)
    audio = compose_audio(model, loaded.vocab, prompts, frames, seed=seed, guidance_scale=guidance_scale,
                          top_k=top_k, top_p=top_p, temperature=temperature, progress=progress)
    return [wav.numpy() for wav in audio], model.sample_rate
