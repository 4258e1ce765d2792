"""Images and prompts for text-to-image: the scenes as tensors, pixels <-> [-1, 1], strict prompt encoding."""

import numpy as np
import torch
from PIL import Image

from shared.errors import InputError
from vision.caption_data import CaptionVocab, pad_captions, words
from vision.shapes import ShapesDataset


def scene_tensors(split: str, size: int | None = None, seed: int = 0,
                  img_size: int = 48) -> tuple[torch.Tensor, list[str]]:
    """A split of the generated scenes as (images (N, 3, H, W) uint8, captions)."""
    dataset = ShapesDataset(split, size=size, seed=seed, img_size=img_size)
    pixels = np.stack([np.asarray(dataset[i][0]) for i in range(len(dataset))])  # (N, H, W, 3)
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(), list(dataset.captions)


def to_signed(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float in [-1, 1] (what the autoencoder reads)."""
    return images.float() / 127.5 - 1.0


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """Float (B, 3, H, W) in [-1, 1] -> RGB PIL images."""
    pixels = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return [Image.fromarray(p.permute(1, 2, 0).cpu().numpy()) for p in pixels]


def encode_prompts(vocab: CaptionVocab, prompts: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts -> (tokens (B, S) padded, mask (B, S) of real tokens). A word outside the vocabulary, an empty
    prompt or one too long is an InputError naming it (the prompt encoder only knows its training words)."""
    ids = []
    for prompt in prompts:
        unknown = [w for w in words(prompt) if w not in vocab.index]
        if unknown:
            known = ", ".join(t for t in vocab.tokens if not t.startswith("<"))
            raise InputError(f"the prompt encoder does not know the word {unknown[0]!r} (in {prompt!r}); "
                             f"it knows: {known}")
        encoded = vocab.encode(prompt)
        if len(encoded) <= 2:
            raise InputError(f"prompt {prompt!r} has no words; describe the scene, e.g. 'a red circle'")
        if len(encoded) > max_len:
            raise InputError(f"prompt {prompt!r} is {len(encoded) - 2} words; this model reads at most "
                             f"{max_len - 2}")
        ids.append(encoded)
    tokens = pad_captions(ids, vocab.pad_id, max_len)
    return tokens, tokens != vocab.pad_id


def grid(images: list[Image.Image], columns: int = 4) -> Image.Image:
    """Images of one size tiled into one, `columns` wide."""
    w, h = images[0].size
    rows = (len(images) + columns - 1) // columns
    out = Image.new("RGB", (columns * w, rows * h))
    for i, image in enumerate(images):
        out.paste(image, ((i % columns) * w, (i // columns) * h))
    return out
