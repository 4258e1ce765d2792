"""zoo's MusicGen generation against transformers': same model, same weights, same sampling, one process.

    python -m benchmarks.compose                           # --size tiny: a 4-layer decoder, 10 s of audio
    python -m benchmarks.compose --size small --seconds 1  # musicgen-small's shape (t5-base, 24 layers)
    python -m benchmarks.compose --seconds 5 --batch 2

Seconds of audio generated per second of wall time, text to music with top-k 250 sampling and classifier-free
guidance 3 (MusicGen's defaults), the same number of frames on both sides. transformers' side is a
MusicgenForConditionalGeneration at its random initialisation with EnCodec 32 kHz as its codec; zoo's side is
those weights converted by audio.convert_musicgen. The script first checks that both pick the same codes
greedily, then times, after a warm-up, one run of each of:

    codes    prompt -> codes: the text encoder and the decoder's steps (the headline: the part MusicGen spends
             its time in, and the part both engines implement differently)
    audio    the same plus EnCodec's decode of the codes into audio (transformers' generate() always decodes;
             for `codes` its decode is swapped for one that hands the codes back)

Prints the device, torch threads, the load average and the ratio zoo / transformers (above 1: zoo is faster).
"""

import argparse
import types

import torch
import transformers

from audio.convert_musicgen import convert_musicgen_state, musicgen_config_from_hf
from audio.musicgen import MusicGen
from benchmarks.common import (
    CLOCKS,
    add_timing_arguments,
    describe_device,
    interleaved,
    load_average,
    report_ratio,
    set_threads,
)
from shared.generation import Greedy, Sample
from shared.pretrained import load_checked

TOP_K, GUIDANCE = 250, 3.0
ENCODEC_32KHZ = dict(sampling_rate=32000, hidden_size=128, num_filters=64, upsampling_ratios=[8, 5, 4, 4],
                     codebook_size=2048, codebook_dim=128, target_bandwidths=[2.2], use_causal_conv=False,
                     use_conv_shortcut=False)
SIZES = {  # (text encoder, decoder); the codec is EnCodec 32 kHz in both
    "small": (dict(d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12),  # t5-base
              dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, ffn_dim=4096)),
    "tiny": (dict(d_model=256, d_kv=64, d_ff=1024, num_layers=2, num_heads=4),
             dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, ffn_dim=1024)),
}


def pair(size: str, device: torch.device) -> tuple[MusicGen, "transformers.MusicgenForConditionalGeneration"]:
    """transformers' MusicGen of `size` at its random initialisation, and zoo's with its weights."""
    text, decoder = SIZES[size]
    torch.manual_seed(0)
    config = transformers.MusicgenConfig(text_encoder=transformers.T5Config(**text).to_dict(),
                                         audio_encoder=transformers.EncodecConfig(**ENCODEC_32KHZ).to_dict(),
                                         decoder=transformers.MusicgenDecoderConfig(**decoder).to_dict())
    reference = transformers.MusicgenForConditionalGeneration(config).eval()
    ours_config = musicgen_config_from_hf(reference.config.to_dict())
    ours = load_checked(MusicGen(ours_config), convert_musicgen_state(reference.state_dict(), ours_config), size)
    return ours.eval().to(device), reference.to(device)


def keep_codes(reference) -> None:
    """Make transformers' generate() return its codes (1, B, K, T) instead of decoding them into audio."""
    reference.audio_encoder.decode = lambda audio_codes, *args, **kwargs: types.SimpleNamespace(
        audio_values=audio_codes)


def decode_again(reference) -> None:
    """Undo keep_codes: generate() decodes with EnCodec again."""
    del reference.audio_encoder.decode


def generate_transformers(reference, tokens: torch.Tensor, frames: int, sample: bool) -> torch.Tensor:
    """Codes (1, B, K, frames) under keep_codes, else audio (B, 1, N)."""
    options = dict(do_sample=True, top_k=TOP_K) if sample else dict(do_sample=False)
    steps = frames + reference.decoder.num_codebooks - 1  # the delay pattern's
    return reference.generate(input_ids=tokens, guidance_scale=GUIDANCE, max_new_tokens=steps, **options)


def generate_zoo(model: MusicGen, tokens: torch.Tensor, frames: int, selector, decode: bool) -> torch.Tensor:
    """Codes (B, K, frames), or audio (B, N) when decode."""
    codes = model.generate(tokens, None, frames, guidance_scale=GUIDANCE, selector=selector)
    return model.decode_audio(codes) if decode else codes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_timing_arguments(parser, warmup=1)
    parser.set_defaults(reps=1)
    parser.add_argument("--size", choices=tuple(SIZES), default="tiny",
                        help="tiny (default) runs in about a minute per engine on one core; small is "
                             "musicgen-small's shape, tens of seconds per generated second on one core")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per prompt")
    parser.add_argument("--batch", type=int, default=1, help="prompts per run (twice the rows with guidance)")
    parser.add_argument("--prompt-len", type=int, default=12, help="prompt tokens")
    args = parser.parse_args()
    threads = set_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {describe_device(device)}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{threads}, clock {args.clock}, {load_average()}", flush=True)

    ours, reference = pair(args.size, device)
    frames = round(args.seconds * ours.frame_rate)
    tokens = torch.randint(2, ours.config.text_vocab_size, (args.batch, args.prompt_len),
                           generator=torch.Generator().manual_seed(1)).to(device)
    with torch.inference_mode():
        keep_codes(reference)
        check = min(frames, 8)
        theirs = generate_transformers(reference, tokens, check, sample=False)[0]
        agree = (generate_zoo(ours, tokens, check, Greedy(), decode=False) == theirs).float().mean().item()
    decoder_params = sum(p.numel() for p in ours.decoder.parameters())
    title = (f"MusicGen {args.size} ({decoder_params / 1e6:.0f}M decoder), batch {args.batch}, {frames} frames "
             f"({args.seconds:g} s), top-k {TOP_K}, guidance {GUIDANCE:g}")
    print(f"{title}; greedy codes of {check} frames agree: {agree:.0%}", flush=True)

    audio_seconds = args.batch * frames / ours.frame_rate
    sample = Sample(top_k=TOP_K, seed=0)
    with torch.inference_mode():
        codes_fns = {"zoo": lambda: generate_zoo(ours, tokens, frames, sample, decode=False),
                     "transformers": lambda: generate_transformers(reference, tokens, frames, sample=True)}
        times, _ = interleaved(codes_fns, device, args.reps, args.warmup, 1, CLOCKS[args.clock])
        report_ratio("codes (headline)", "audio s/s", audio_seconds, times, "transformers")
        decode_again(reference)
        audio_fns = {"zoo": lambda: generate_zoo(ours, tokens, frames, sample, decode=True),
                     "transformers": lambda: generate_transformers(reference, tokens, frames, sample=True)}
        # the warm-up again: a first decode sets up its kernels
        times, _ = interleaved(audio_fns, device, args.reps, args.warmup, 1, CLOCKS[args.clock])
        report_ratio("codes + decode", "audio s/s", audio_seconds, times, "transformers")
    print(f"end: {load_average()}", flush=True)


if __name__ == "__main__":
    main()
