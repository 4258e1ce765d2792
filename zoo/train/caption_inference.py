"""A trained captioner: the meta.json fields a caption checkpoint carries, loading one back, captioning files.

The caption counterpart of zoo.train.inference; `zoo caption` and the caption trainer both build on it.
"""

from __future__ import annotations  # torch and the models load on first use, not when the CLI starts

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shared.errors import InputError, WeightsError

if TYPE_CHECKING:
    import torch

    from vision.caption_data import CaptionVocab, ImageToTensor


@dataclass
class LoadedCaptioner:
    """A trained captioner with its vocabulary and the preprocessing it was trained with."""

    model: torch.nn.Module
    vocab: CaptionVocab
    transform: ImageToTensor
    folder: Path

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def caption_meta(model_name: str, model_overrides: dict, vocab: CaptionVocab, transform: ImageToTensor) -> dict:
    """The meta.json fields that make a training checkpoint a captioning one (what load_captioner reads)."""
    return {"task": "caption", "model": model_name, "model_overrides": dict(model_overrides),
            "vocab": vocab.to_dict(),
            "data": {"img_size": transform.size, "mean": transform.mean.flatten().tolist(),
                     "std": transform.std.flatten().tolist()}}


def load_captioner(path: str | Path, use_ema: bool = True, device: str | None = None) -> LoadedCaptioner:
    """Rebuild the captioner a `zoo train --task caption` checkpoint (or a run folder's best) holds."""
    from shared.inference import prepare_for_inference
    from vision.caption_data import CaptionVocab, ImageToTensor
    from zoo import registry
    from zoo.train import checkpoint, ddp

    folder = checkpoint.find(path)
    meta = checkpoint.read_meta(folder)
    if meta.get("task") != "caption" or "vocab" not in meta:
        raise WeightsError(f"{folder} is not a captioning checkpoint (it was trained for "
                           f"{meta.get('task', 'classification')}); "
                           "train one with `zoo train --task caption`")
    model = registry.create_model(meta["model"], **meta.get("model_overrides", {}))
    checkpoint.load_weights(model, folder, ema=use_ema)
    prepare_for_inference(model.to(ddp.pick_device(device)).eval())  # as zoo classify and zoo transcribe do
    data = meta["data"]
    transform = ImageToTensor(data["img_size"], tuple(data["mean"]), tuple(data["std"]))
    return LoadedCaptioner(model, CaptionVocab.from_dict(meta["vocab"]), transform, folder)


def caption_files(cap: LoadedCaptioner, files: list[str], beam_size: int = 1,
                  max_new_tokens: int | None = None, with_attention: bool = False):
    """Yield (file, result) in order: result is (caption, words, maps (n_words, H', W') or None, image), or
    the InputError of a file that could not be read."""
    from shared.generation import BeamSearch, Greedy
    from vision.datasets import load_image

    selector = BeamSearch(num_beams=beam_size) if beam_size > 1 else Greedy()
    for f in files:
        try:
            image = load_image(f)
        except InputError as err:
            yield f, err
            continue
        pixels = cap.transform(image)[None].to(cap.device)  # (1, C, H, W)
        if with_attention:
            output, maps = cap.model.caption_with_attention(pixels, max_new_tokens, selector=selector)
        else:
            output, maps = cap.model.generate(pixels, max_new_tokens, selector=selector), None
        ids = output.tokens[0, 1:1 + int(output.lengths[0])].tolist()  # generated tokens, EOS included
        words = [cap.vocab.tokens[i] for i in ids]
        if maps is not None:
            maps = maps[0, : len(words)].cpu()
        yield f, (cap.vocab.decode(ids), words, maps, image)
