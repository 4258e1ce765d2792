"""Reading generated or reconstructed scenes back with the shipped captioner, and scoring what it says."""

from __future__ import annotations

from pathlib import Path

import torch

from shared.errors import WeightsError
from vision.imagine_metrics import readback_scores
from zoo.shipped import SHIPPED_CAPTIONER


class SceneReader:
    """The shipped scene captioner as a judge: captions of images (B, 3, H, W) in [-1, 1], read as the 8-bit
    pixels a saved PNG would hold."""

    def __init__(self, folder: str | Path = SHIPPED_CAPTIONER, device: torch.device | str = "cpu"):
        from zoo.train.caption_inference import load_captioner

        if not Path(folder).is_dir():
            raise WeightsError(f"{folder}: the scene captioner that grades images is missing; it ships in "
                               "examples/caption of a source checkout")
        self.captioner = load_captioner(folder, device=str(device))

    @torch.no_grad()
    def read(self, images: torch.Tensor, batch_size: int = 256) -> list[str]:
        cap = self.captioner
        size = cap.transform.size
        out = []
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].float().clamp(-1, 1)
            x = ((x + 1) * 127.5).round() / 255.0  # 8-bit pixels in [0, 1]
            if x.shape[-1] != size:
                x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
            x = (x - cap.transform.mean.to(x)) / cap.transform.std.to(x)
            output = cap.model.generate(x.to(cap.device))
            out += [cap.vocab.decode(row[1:]) for row in output.tokens.cpu()]
        return out

    def score(self, images: torch.Tensor, prompts: list[str]) -> tuple[dict, list[str]]:
        """(readback_scores of the images against their prompts, the captions read)."""
        said = self.read(images)
        return readback_scores(prompts, said), said
