"""Seeds and the deterministic mode of `zoo train --deterministic`."""

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def set_deterministic() -> None:
    """Deterministic kernels only (an error names any op that has none), and no cuDNN autotuning, whose
    choice of algorithm can differ between runs. CUBLAS_WORKSPACE_CONFIG must be set before CUDA starts."""
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
