"""`zoo train`: image classification training on timm's utilities, with crash-safe resumable checkpoints."""
