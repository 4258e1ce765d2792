"""EnCodec (Défossez et al., 2022): the neural audio codec that turns music into MusicGen's tokens.

A SEANet encoder (residual blocks between strided convolutions, then an LSTM) maps audio to `hidden_size`
features at `frame_rate` frames a second; a residual vector quantizer turns each frame into one code per
codebook, each codebook quantizing what the ones before it left over; the mirror decoder turns the sum of the
chosen codewords back into audio.

Inference only. Weight norm is folded into plain convolution weights when a checkpoint is converted
(audio/convert_encodec.py), and the audio is encoded in one piece: configs that encode in overlapping chunks
(chunk_length_s, as the 48 kHz model does) are refused by the converter.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from shared.errors import ConfigError, InputError
from shared.pretrained import PretrainedMixin

NORM_TYPES = ("weight_norm", "time_group_norm")
PAD_MODES = ("reflect", "constant", "replicate", "circular")


@dataclass(frozen=True)
class EncodecConfig:
    """EnCodec's architecture; the defaults are facebook/encodec_32khz, MusicGen's codec (50 frames a second,
    4 codebooks of 2048 codes).

    norm_type "weight_norm" leaves plain convolutions (the norm is folded into the weights); "time_group_norm"
    follows every convolution by a GroupNorm over all channels. `upsampling_ratios` are the decoder's strides;
    the encoder downsamples by the same ratios in reverse order.
    """

    sampling_rate: int = 32000
    audio_channels: int = 1
    hidden_size: int = 128
    num_filters: int = 64
    num_residual_layers: int = 1
    upsampling_ratios: tuple[int, ...] = (8, 5, 4, 4)
    norm_type: str = "weight_norm"
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    dilation_growth_rate: int = 2
    use_causal_conv: bool = False
    pad_mode: str = "reflect"
    compress: int = 2  # residual blocks work at dim // compress channels
    num_lstm_layers: int = 2
    trim_right_ratio: float = 1.0  # causal only: the share of a transposed convolution's overhang cut on the right
    use_conv_shortcut: bool = False  # a 1x1 convolution on the skip path of residual blocks, else the identity
    codebook_size: int = 2048
    num_quantizers: int = 4

    def __post_init__(self):
        if self.norm_type not in NORM_TYPES:
            raise ConfigError(f"EncodecConfig: norm_type {self.norm_type!r} is not one of {NORM_TYPES}")
        if self.pad_mode not in PAD_MODES:
            raise ConfigError(f"EncodecConfig: pad_mode {self.pad_mode!r} is not one of {PAD_MODES}")
        if self.trim_right_ratio != 1.0 and not self.use_causal_conv:
            raise ConfigError("EncodecConfig: trim_right_ratio only applies to causal convolutions; set it to 1.0")

    @property
    def hop_length(self) -> int:
        """Audio samples per frame of codes."""
        return math.prod(self.upsampling_ratios)


def _pad(x: torch.Tensor, left: int, right: int, mode: str) -> torch.Tensor:
    """F.pad, except that reflect padding also works on inputs no longer than the padding: zeros extend them
    first, and are cut again after."""
    length = x.shape[-1]
    if mode != "reflect" or length > max(left, right):
        return F.pad(x, (left, right), mode)
    zeros = max(left, right) - length + 1
    return F.pad(F.pad(x, (0, zeros)), (left, right), mode)[..., : left + length + right]


class PaddedConv(nn.Module):
    """A Conv1d padded so that T input frames give ceil(T / stride) output frames: the padding is centred (the
    odd sample on the left) or, causal, all on the left, plus what completes the last stride on the right."""

    def __init__(self, config: EncodecConfig, dim_in: int, dim_out: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(dim_in, dim_out, kernel_size, stride, dilation=dilation)
        self.norm = nn.GroupNorm(1, dim_out) if config.norm_type == "time_group_norm" else nn.Identity()
        self.causal, self.pad_mode = config.use_causal_conv, config.pad_mode
        self.stride = stride
        self.padding = dilation * (kernel_size - 1) + 1 - stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, C', ceil(T / stride))
        right = 0 if self.causal else self.padding // 2
        x = _pad(x, self.padding - right, right + -x.shape[-1] % self.stride, self.pad_mode)
        return self.norm(self.conv(x))


class TrimmedConvTranspose(nn.Module):
    """A ConvTranspose1d (kernel 2 x stride) that upsamples T frames to exactly T x stride: the `stride`
    samples it writes past that are cut, centred or, causal, by `trim_right_ratio` on the right."""

    def __init__(self, config: EncodecConfig, dim_in: int, dim_out: int, stride: int):
        super().__init__()
        self.conv = nn.ConvTranspose1d(dim_in, dim_out, 2 * stride, stride)
        self.norm = nn.GroupNorm(1, dim_out) if config.norm_type == "time_group_norm" else nn.Identity()
        right = math.ceil(stride * config.trim_right_ratio) if config.use_causal_conv else stride // 2
        self.trim = (stride - right, right)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, C', T * stride)
        x = self.norm(self.conv(x))
        left, right = self.trim
        return x[..., left : x.shape[-1] - right]


class ResidualBlock(nn.Module):
    """x + a dilated convolution and a 1x1 convolution through a bottleneck of dim // compress channels."""

    def __init__(self, config: EncodecConfig, dim: int, dilation: int):
        super().__init__()
        hidden = dim // config.compress
        self.conv1 = PaddedConv(config, dim, hidden, config.residual_kernel_size, dilation=dilation)
        self.conv2 = PaddedConv(config, hidden, dim, 1)
        self.shortcut = PaddedConv(config, dim, dim, 1) if config.use_conv_shortcut else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        return self.shortcut(x) + self.conv2(F.elu(self.conv1(F.elu(x))))


def _residual_blocks(config: EncodecConfig, dim: int) -> nn.ModuleList:
    rates = (config.dilation_growth_rate**j for j in range(config.num_residual_layers))
    return nn.ModuleList(ResidualBlock(config, dim, rate) for rate in rates)


class ResidualLSTM(nn.LSTM):
    """An LSTM over time, added to its input; channels-first like the convolutions around it."""

    def __init__(self, dim: int, num_layers: int):
        super().__init__(dim, dim, num_layers, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        x = x.transpose(1, 2)  # (B, T, C)
        return (super().forward(x)[0] + x).transpose(1, 2)


class DownStage(nn.Module):
    """Residual blocks, then a strided convolution: channels x 2, frames / ratio."""

    def __init__(self, config: EncodecConfig, dim: int, ratio: int):
        super().__init__()
        self.blocks = _residual_blocks(config, dim)
        self.down = PaddedConv(config, dim, 2 * dim, 2 * ratio, stride=ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.down(F.elu(x))


class UpStage(nn.Module):
    """A transposed convolution (channels / 2, frames x ratio), then residual blocks."""

    def __init__(self, config: EncodecConfig, dim: int, ratio: int):
        super().__init__()
        self.up = TrimmedConvTranspose(config, dim, dim // 2, ratio)
        self.blocks = _residual_blocks(config, dim // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.up(F.elu(x))
        for block in self.blocks:
            x = block(x)
        return x


class SEANetEncoder(nn.Module):
    """Audio (B, audio_channels, N) -> features (B, hidden_size, ceil(N / hop_length))."""

    def __init__(self, config: EncodecConfig):
        super().__init__()
        width = config.num_filters
        self.stem = PaddedConv(config, config.audio_channels, width, config.kernel_size)
        self.stages = nn.ModuleList()
        for ratio in reversed(config.upsampling_ratios):
            self.stages.append(DownStage(config, width, ratio))
            width *= 2
        self.lstm = ResidualLSTM(width, config.num_lstm_layers)
        self.head = PaddedConv(config, width, config.hidden_size, config.last_kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(F.elu(self.lstm(x)))


class SEANetDecoder(nn.Module):
    """Features (B, hidden_size, T) -> audio (B, audio_channels, T x hop_length)."""

    def __init__(self, config: EncodecConfig):
        super().__init__()
        width = config.num_filters * 2 ** len(config.upsampling_ratios)
        self.stem = PaddedConv(config, config.hidden_size, width, config.kernel_size)
        self.lstm = ResidualLSTM(width, config.num_lstm_layers)
        self.stages = nn.ModuleList(UpStage(config, width // 2**i, ratio)
                                    for i, ratio in enumerate(config.upsampling_ratios))
        self.head = PaddedConv(config, config.num_filters, config.audio_channels, config.last_kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lstm(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        return self.head(F.elu(x))


class ResidualVectorQuantizer(nn.Module):
    """num_quantizers codebooks of codebook_size vectors: stage k picks the codeword nearest (in Euclidean
    distance) to what stages 0..k-1 left unexplained; a frame decodes to the sum of its codewords."""

    def __init__(self, config: EncodecConfig):
        super().__init__()
        self.codebooks = nn.ModuleList(nn.Embedding(config.codebook_size, config.hidden_size)
                                       for _ in range(config.num_quantizers))

    def encode(self, features: torch.Tensor) -> torch.Tensor:  # (B, D, T) -> (B, K, T)
        residual = features.transpose(1, 2)  # (B, T, D)
        codes = []
        for codebook in self.codebooks:
            words = codebook.weight  # (V, D)
            distance = residual.pow(2).sum(-1, keepdim=True) - 2 * residual @ words.t() + words.pow(2).sum(-1)
            index = distance.argmin(-1)  # (B, T)
            residual = residual - codebook(index)
            codes.append(index)
        return torch.stack(codes, dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:  # (B, K, T) -> (B, D, T)
        quantized = self.codebooks[0](codes[:, 0])  # (B, T, D)
        for k in range(1, codes.shape[1]):
            quantized = quantized + self.codebooks[k](codes[:, k])
        return quantized.transpose(1, 2)


class Encodec(PretrainedMixin, nn.Module):
    """EnCodec: `encode` audio to codes, `decode` codes to audio. See the module docstring."""

    config_class = EncodecConfig

    def __init__(self, config: EncodecConfig):
        super().__init__()
        self.config = config
        self.encoder = SEANetEncoder(config)
        self.quantizer = ResidualVectorQuantizer(config)
        self.decoder = SEANetDecoder(config)

    @property
    def sample_rate(self) -> int:
        return self.config.sampling_rate

    @property
    def frame_rate(self) -> int:
        """Frames of codes per second of audio (rounded up, as transformers does for its bandwidths)."""
        return math.ceil(self.config.sampling_rate / self.config.hop_length)

    @property
    def num_codebooks(self) -> int:
        return self.config.num_quantizers

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """Audio (B, audio_channels, N) at `sample_rate` -> codes (B, num_codebooks, ceil(N / hop_length)),
        int64 in [0, codebook_size)."""
        channels = self.config.audio_channels
        if wav.dim() != 3 or wav.shape[1] != channels or wav.shape[2] == 0:
            raise InputError(f"EnCodec: expected audio of shape (batch, {channels}, samples), got {tuple(wav.shape)}")
        return self.quantizer.encode(self.encoder(wav))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, K, T) of the first K <= num_codebooks codebooks -> audio (B, audio_channels, T x hop_length)."""
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= self.num_codebooks or codes.shape[2] == 0:
            raise InputError(f"EnCodec: expected codes of shape (batch, 1..{self.num_codebooks}, frames), "
                             f"got {tuple(codes.shape)}")
        low, high = int(codes.min()), int(codes.max())
        if low < 0 or high >= self.codebook_size:
            raise InputError(f"EnCodec: codes must lie in [0, {self.codebook_size}), got {low}..{high}")
        return self.decoder(self.quantizer.decode(codes))
