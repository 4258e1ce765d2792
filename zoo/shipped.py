"""Weights the repository ships in examples/ (present in a source checkout), found by their folders."""

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SHIPPED_CAPTIONER = EXAMPLES / "caption" / "captioner_tiny_shapes"   # `zoo train --task caption`, the scenes
SHIPPED_IMAGINE = EXAMPLES / "imagine" / "dit_shapes"                 # `zoo train --task text-to-image`
SHIPPED_COMPOSER = EXAMPLES / "compose" / "musicgen_melodies"       # `zoo train --task text-to-music`
