"""int8 weights for text models: the one int8 path lives in shared.quantize (Whisper uses it too)."""

from shared.quantize import Int8Attention, Int8Linear, quantize_int8

__all__ = ["Int8Attention", "Int8Linear", "quantize_int8"]
