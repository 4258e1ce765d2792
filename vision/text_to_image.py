"""Text to image in the latent-diffusion line: a prompt encoder (BERT, from text/), a DiT that denoises the
latents of a KL autoencoder while cross-attending to the prompt, and the autoencoder's decoder back to pixels.

    prompt tokens (B, S) -> text_encoder -> context (B, S, Dt)
    noise (B, Cz, h, w) -> sampler steps over denoiser(x_t, t, context) [with classifier-free guidance]
        -> latents / latent_scale -> autoencoder.decode -> images (B, 3, H, W) in [-1, 1]

The autoencoder is trained first and frozen; the denoiser and prompt encoder train together. An empty
prompt (BOS, EOS) is the unconditional input of classifier-free guidance.
"""

from dataclasses import dataclass

import torch
from torch import nn

from shared import diffusion
from shared.errors import ConfigError
from shared.pretrained import PretrainedMixin
from text.bert import BertConfig, BertModel
from vision.autoencoder import AutoencoderConfig, AutoencoderKL
from vision.autoencoder_recipes import AUTOENCODERS
from vision.dit import DiT, DiTConfig


@dataclass(frozen=True)
class TextToImageConfig:
    """autoencoder: a named AutoencoderConfig (vision.autoencoder_recipes.AUTOENCODERS); latent_scale: multiplies
    its latents so they have unit variance (set from the training latents); objective: a key of
    shared.diffusion.OBJECTIVES; the rest size the denoiser and the prompt encoder."""

    autoencoder: str = "autoencoder_kl_shapes"
    latent_scale: float = 1.0
    objective: str = "rectified_flow"
    patch_size: int = 2
    dim: int = 160
    n_layers: int = 6
    n_heads: int = 4
    mlp_ratio: float = 4.0
    vocab_size: int = 32
    max_prompt_len: int = 24
    text_dim: int = 128
    text_layers: int = 2
    text_heads: int = 4
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2

    def __post_init__(self):
        if self.objective not in diffusion.OBJECTIVES:
            raise ConfigError(f"unknown objective {self.objective!r}; use one of {', '.join(diffusion.OBJECTIVES)}")
        if self.autoencoder_config is None:
            raise ConfigError(f"unknown autoencoder {self.autoencoder!r}")

    @property
    def autoencoder_config(self) -> AutoencoderConfig | None:
        return AUTOENCODERS.get(self.autoencoder)

    @property
    def image_size(self) -> int:
        return self.autoencoder_config.sample_size


class TextToImage(PretrainedMixin, nn.Module):
    """forward(latents (B, Cz, h, w) scaled, timesteps (B,), tokens (B, S), mask (B, S)) -> the denoiser's
    prediction (B, Cz, h, w); generate(tokens, mask, ...) -> images (B, 3, H, W) in [-1, 1]."""

    config_class = TextToImageConfig

    def __init__(self, config: TextToImageConfig):
        super().__init__()
        self.config = c = config
        ae = c.autoencoder_config
        self.autoencoder = AutoencoderKL(ae).requires_grad_(False)  # trained before, frozen here
        self.text_encoder = BertModel.build(BertConfig(
            vocab_size=c.vocab_size, dim=c.text_dim, n_layers=c.text_layers, n_heads=c.text_heads,
            mlp_hidden=4 * c.text_dim, max_len=c.max_prompt_len, norm_eps=1e-6, dropout=0.0, attn_dropout=0.0,
            pad_id=c.pad_id), pooler=False)
        self.denoiser = DiT(DiTConfig(
            sample_size=ae.sample_size // ae.downsample, patch_size=c.patch_size, in_channels=ae.latent_channels,
            dim=c.dim, n_layers=c.n_layers, n_heads=c.n_heads, mlp_ratio=c.mlp_ratio, text_dim=c.text_dim))
        self.objective = diffusion.OBJECTIVES[c.objective]()

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        ae = self.config.autoencoder_config
        side = ae.sample_size // ae.downsample
        return ae.latent_channels, side, side

    def train(self, mode: bool = True):
        super().train(mode)
        self.autoencoder.eval()  # frozen: its norms never switch to training behaviour
        return self

    def encode_prompt(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, S) token ids -> (B, S, Dt) prompt states."""
        return self.text_encoder(tokens, mask)

    def null_prompt(self, batch: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """The empty prompt (BOS, EOS) for `batch` rows: tokens and mask (B, 2)."""
        tokens = torch.tensor([[self.config.bos_id, self.config.eos_id]], device=device).expand(batch, 2)
        return tokens, torch.ones_like(tokens, dtype=torch.bool)

    def forward(self, latents: torch.Tensor, timesteps: torch.Tensor, tokens: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.denoiser(latents, timesteps, context=self.encode_prompt(tokens, mask), context_mask=mask)

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] -> scaled latents (the posterior means), what the denoiser learns."""
        mean, _ = self.autoencoder.encode(images)
        return mean * self.config.latent_scale

    @torch.no_grad()
    def generate(self, tokens: torch.Tensor, mask: torch.Tensor, *, num_inference_steps: int = 20,
                 guidance_scale: float = 3.0, sampler: str | None = None,
                 generators: list[torch.Generator] | None = None, negative: tuple | None = None,
                 progress=None) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] for prompts (B, S) with mask (B, S); one generator per image (its
        noise and any sampler noise come from it alone, so an image does not depend on its batch).

        negative: (tokens, mask) (B, S') of the prompts guidance steers away from, in place of the empty
        prompt (diffusers' negative_prompt); unused without guidance (guidance_scale 1).
        """
        B, device = tokens.shape[0], tokens.device
        sampler = diffusion.make_sampler(sampler or self.objective.samplers[0], self.objective)
        context = self.encode_prompt(tokens, mask)
        guided = guidance_scale != 1.0
        if guided:  # the conditional and the unconditional rows in one batch
            away_tokens, away_mask = negative if negative is not None else self.null_prompt(B, device)
            away = self.encode_prompt(away_tokens, away_mask)  # (B, S', Dt)
            width = max(context.shape[1], away.shape[1])
            (context, mask), (away, away_mask) = _pad(context, mask, width), _pad(away, away_mask, width)
            context, mask = torch.cat([context, away]), torch.cat([mask, away_mask])  # (2B, S, Dt), (2B, S)

        def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            if not guided:
                return self.denoiser(x, t, context=context, context_mask=mask)
            out = self.denoiser(torch.cat([x, x]), torch.cat([t, t]), context=context, context_mask=mask)
            cond, uncond = out.chunk(2)
            return diffusion.guidance(uncond, cond, guidance_scale)

        generators = generators or [torch.Generator().manual_seed(i) for i in range(B)]
        param = next(self.denoiser.parameters())
        noise = diffusion.initial_noise((B, *self.latent_shape), generators, device=device, dtype=param.dtype)
        latents = diffusion.sample(denoise, noise, sampler, num_inference_steps, generators=generators,
                                   progress=progress)
        images = self.autoencoder.decode(latents / self.config.latent_scale)
        return images.clamp(-1.0, 1.0)


def _pad(states: torch.Tensor, mask: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt states (B, S, Dt) and their mask (B, S) padded to `width` positions (zeros, masked out)."""
    extra = width - states.shape[1]
    return (torch.cat([states, states.new_zeros(states.shape[0], extra, states.shape[2])], dim=1),
            torch.cat([mask, mask.new_zeros(mask.shape[0], extra)], dim=1))
