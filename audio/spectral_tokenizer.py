"""An audio tokenizer that trains in minutes on a CPU: residual k-means over log-magnitude STFT frames.

Each 20 ms frame's log-magnitude spectrum (n_fft 1024, hop 320 at 16 kHz: 50 frames per second) is coded by
K codebooks in turn, each picking the centroid nearest to what the codebooks before it left over. Decoding
sums the picked centroids, exponentiates, and recovers a phase with Griffin-Lim. Codebook 0's entry 0 is held
at the log floor and every later codebook's entry 0 at zero, so silence codes to all zeros and decodes to
silence whatever the training data held.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torchaudio.functional as AF
from torch import nn

from shared.errors import ConfigError, InputError

_CHUNK = 4096  # frames per distance block: a (4096, C) float32 table, a few MB at C = 256
_SEEDING_FRAMES_PER_CENTROID = 64  # k-means++ draws from at most this many frames per centroid
_GRIFFIN_LIM_MOMENTUM = 0.99  # fast Griffin-Lim; converges in far fewer iterations than plain (momentum 0)


@dataclasses.dataclass(frozen=True)
class SpectralTokenizerConfig:
    """STFT and codebook sizes. hop_length must divide sample_rate so the frame rate is a whole number; floor is
    the smallest magnitude kept before the log (log(floor) is what silence reads as)."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 320
    num_codebooks: int = 4
    codebook_size: int = 256
    griffin_lim_iters: int = 32
    floor: float = 1e-5

    def __post_init__(self) -> None:
        if self.hop_length <= 0 or self.sample_rate % self.hop_length:
            raise ConfigError(f"hop_length {self.hop_length} must divide sample_rate {self.sample_rate}")
        if not 0 < self.hop_length <= self.n_fft:
            raise ConfigError(f"hop_length {self.hop_length} must lie in 1..n_fft ({self.n_fft})")
        if self.num_codebooks < 1 or self.codebook_size < 2:
            raise ConfigError(f"need num_codebooks >= 1 and codebook_size >= 2, got {self.num_codebooks} and "
                              f"{self.codebook_size}")
        if self.floor <= 0 or self.griffin_lim_iters < 0:
            raise ConfigError(f"floor must be positive and griffin_lim_iters >= 0, got {self.floor} and "
                              f"{self.griffin_lim_iters}")

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1


class SpectralTokenizer(nn.Module):
    """Waveforms (B, N) to codes (B, K, T) at sample_rate / hop_length frames per second, and back.

    The codebooks (K, C, F) are a buffer, so a state dict carries them; build one with fit_spectral_tokenizer.
    """

    def __init__(self, config: SpectralTokenizerConfig | None = None, codebooks: torch.Tensor | None = None):
        super().__init__()
        self.config = config = config or SpectralTokenizerConfig()
        shape = (config.num_codebooks, config.codebook_size, config.n_freqs)
        if codebooks is None:
            codebooks = torch.zeros(shape)
            codebooks[0, 0] = math.log(config.floor)
        elif tuple(codebooks.shape) != shape:
            raise ConfigError(f"codebooks of shape {tuple(codebooks.shape)} do not fit the config's {shape}")
        self.register_buffer("codebooks", codebooks.float().clone())  # (K, C, F)
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.config.sample_rate / self.config.hop_length

    @property
    def num_codebooks(self) -> int:
        return self.config.num_codebooks

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def log_magnitude(self, wav: torch.Tensor) -> torch.Tensor:
        """Log STFT magnitudes (B, T, F) of wav (B, N) or (B, 1, N), T = ceil(N / hop_length): frame t is
        centred on sample t * hop_length."""
        wav = _as_batch(wav, self.config.n_fft // 2).to(self.window.device)
        cfg = self.config
        spec = torch.stft(wav, cfg.n_fft, cfg.hop_length, window=self.window, center=True, return_complex=True)
        frames = -(-wav.shape[-1] // cfg.hop_length)  # the last frame starts within the audio
        return spec[..., :frames].abs().clamp_min(cfg.floor).log().transpose(1, 2)  # (B, T, F)

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """Codes (B, K, T) int64 of wav (B, N) or (B, 1, N): T = ceil(N / hop_length)."""
        frames = self.log_magnitude(wav)  # (B, T, F)
        batch, length, _ = frames.shape
        codes = quantize(frames.reshape(batch * length, -1), self.codebooks)  # (B * T, K)
        return codes.reshape(batch, length, -1).transpose(1, 2).contiguous()  # (B, K, T)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Waveforms (B, T * hop_length) of codes (B, K, T), cut to `length` samples if given. Griffin-Lim
        starts from zero phase, so the same codes always give the same samples."""
        self._check_codes(codes)
        cfg = self.config
        picked = self.codebooks[torch.arange(cfg.num_codebooks, device=codes.device)[:, None, None],
                                codes.transpose(0, 1)]  # (K, B, T, F)
        magnitude = picked.sum(0).exp().transpose(1, 2)  # (B, F, T)
        # A signal of T * hop samples has T + 1 centred frames: repeat the last one so the lengths agree.
        magnitude = torch.cat([magnitude, magnitude[..., -1:]], dim=-1)  # (B, F, T + 1)
        samples = codes.shape[-1] * cfg.hop_length
        wav = AF.griffinlim(magnitude, self.window, cfg.n_fft, cfg.hop_length, cfg.n_fft, power=1.0,
                            n_iter=cfg.griffin_lim_iters, momentum=_GRIFFIN_LIM_MOMENTUM, length=samples,
                            rand_init=False)  # (B, T * hop)
        return wav if length is None else wav[:, :length]

    def _check_codes(self, codes: torch.Tensor) -> None:
        k, c = self.config.num_codebooks, self.config.codebook_size
        if codes.dim() != 3 or codes.shape[1] != k or codes.shape[2] == 0 or codes.is_floating_point():
            raise InputError(f"codes must be integers of shape (batch, {k}, frames), got {codes.dtype} "
                             f"{tuple(codes.shape)}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= c):
            raise InputError(f"codes must lie in 0..{c - 1}, got {codes.min().item()}..{codes.max().item()}")


def quantize(frames: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
    """Residual nearest-centroid codes (M, K) of frames (M, F) against codebooks (K, C, F)."""
    residual = frames.clone()
    codes = []
    for centroids in codebooks:  # (C, F)
        index, _ = _nearest(residual, centroids)
        residual -= centroids[index]
        codes.append(index)
    return torch.stack(codes, dim=1)


def fit_spectral_tokenizer(
    wavs: torch.Tensor | np.ndarray,
    config: SpectralTokenizerConfig | None = None,
    seed: int = 0,
    iters: int = 20,
    max_frames: int = 100_000,
) -> SpectralTokenizer:
    """Fit the codebooks on the log-magnitude frames of wavs (N, L): k-means (k-means++ seeding, `iters`
    Lloyd steps) on the frames, then on what the first codebook leaves over, and so on, one codebook at a time.

    At most max_frames frames, drawn at random, are used. Entry 0 of every codebook stays pinned (the log floor,
    then zeros); empty clusters are re-seeded with the worst-fit frames. The same data and seed give the same
    codebooks.
    """
    tokenizer = SpectralTokenizer(config)
    cfg = tokenizer.config
    wavs = torch.as_tensor(wavs, dtype=torch.float32)
    if wavs.dim() != 2 or len(wavs) == 0:
        raise InputError(f"fit on waveforms of shape (clips, samples), got {tuple(wavs.shape)}")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        frames = torch.cat([tokenizer.log_magnitude(part).flatten(0, 1) for part in wavs.split(64)])  # (M, F)
        if len(frames) > max_frames:
            frames = frames[torch.randperm(len(frames), generator=generator)[:max_frames]]
        residual = frames
        codebooks = tokenizer.codebooks.clone()
        for k in range(cfg.num_codebooks):
            codebooks[k] = _kmeans(residual, codebooks[k, :1], cfg.codebook_size, iters, generator)
            residual = residual - codebooks[k][_nearest(residual, codebooks[k])[0]]
    return SpectralTokenizer(cfg, codebooks)


def _kmeans(points: torch.Tensor, pinned: torch.Tensor, size: int, iters: int,
            generator: torch.Generator) -> torch.Tensor:
    """`size` centroids (size, F) of points (M, F): pinned (P, F) first and never moved, the rest seeded by
    k-means++ and refined by Lloyd steps."""
    # Seeding is sequential, one pass over the points per centroid: seed from a sample to keep it cheap.
    sample = points[torch.randperm(len(points), generator=generator)[:_SEEDING_FRAMES_PER_CENTROID * size]]
    centroids = _kmeans_plus_plus(sample, pinned, size - len(pinned), generator)
    free = slice(len(pinned), size)
    previous = None
    for _ in range(iters):
        index, dist = _nearest(points, centroids)
        if previous is not None and torch.equal(index, previous):
            break
        previous = index
        counts = torch.bincount(index, minlength=size)
        sums = torch.zeros_like(centroids).index_add_(0, index, points)
        updated = sums / counts.clamp_min(1)[:, None]
        empty = (counts == 0).nonzero().flatten()
        empty = empty[empty >= len(pinned)]
        if len(empty):  # the frames coded worst become the new centroids
            worst = dist.topk(min(len(empty), len(points))).indices
            updated[empty[: len(worst)]] = points[worst]
        centroids[free] = updated[free]
    return centroids


def _kmeans_plus_plus(points: torch.Tensor, pinned: torch.Tensor, count: int,
                      generator: torch.Generator) -> torch.Tensor:
    """pinned (P >= 1, F) followed by `count` >= 1 points drawn with probability proportional to their squared
    distance from the centroids drawn so far (uniformly once every point is already a centroid)."""
    squares = points.square().sum(1)  # (M,)
    dist = _nearest(points, pinned)[1]
    chosen = []
    for _ in range(count):
        total = dist.sum()
        if total > 0:
            pick = torch.multinomial(dist / total, 1, generator=generator)
        else:
            pick = torch.randint(len(points), (1,), generator=generator)
        centroid = points[pick[0]]  # (F,)
        chosen.append(centroid)
        dist = torch.minimum(dist, (squares - 2 * (points @ centroid) + centroid.square().sum()).clamp_min(0))
    return torch.cat([pinned, torch.stack(chosen)])


def _nearest(points: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index (M,) of each point's nearest centroid and the squared distance (M,), a block of points at a time.
    |x|^2 - 2 x.c + |c|^2 as one matrix product: the form torch.cdist takes for large inputs, without its
    square root."""
    centroid_squares = centroids.square().sum(1)  # (C,)
    index, dist = [], []
    for block in points.split(_CHUNK):
        table = torch.addmm(centroid_squares, block, centroids.T, alpha=-2)  # (chunk, C)
        best, where = table.min(1)
        index.append(where)
        dist.append((best + block.square().sum(1)).clamp_min(0))
    return torch.cat(index), torch.cat(dist)


def _as_batch(wav: torch.Tensor | np.ndarray, min_samples: int) -> torch.Tensor:
    """wav (B, N) or (B, 1, N) as float32 (B, N); anything else is an InputError."""
    wav = torch.as_tensor(wav)
    if wav.dim() == 3 and wav.shape[1] == 1:
        wav = wav[:, 0]
    if wav.dim() != 2 or not wav.is_floating_point():
        raise InputError(f"audio must be floating point of shape (batch, samples) or (batch, 1, samples), got "
                         f"{wav.dtype} {tuple(wav.shape)}")
    if wav.shape[-1] <= min_samples:
        raise InputError(f"audio of {wav.shape[-1]} samples is too short: need more than {min_samples}")
    return wav.float()
