"""Whisper's convolutional stem: log-mel frames in, one encoder position per 20 ms out."""

import torch
from torch import nn
from torch.nn import functional as F


class ConvStem(nn.Module):
    """Conv1d(n_mels→dim, k3, p1) + GELU, then Conv1d(dim→dim, k3, stride 2, p1) + GELU.

    The stride-2 convolution halves the frame rate: 3000 mel frames (30 s) become 1500 positions.
    """

    def __init__(self, n_mels: int, dim: int):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, dim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(dim, dim, kernel_size=3, stride=2, padding=1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, n_mels, frames) -> (B, ceil(frames / 2), dim)."""
        x = F.gelu(self.conv1(mel))  # (B, D, frames)
        x = F.gelu(self.conv2(x))  # (B, D, frames / 2)
        return x.transpose(1, 2)  # (B, T, D)
