"""`zoo compose`: music from prompts with a trained text-to-music model; a WAV, a spectrogram and a JSON per
prompt saying how it was made."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from zoo import cli_threads


def output_paths(output: str, count: int) -> list[Path]:
    """out.wav for one prompt; out-0.wav, out-1.wav, ... for several."""
    path = Path(output)
    path = path if path.suffix.lower() == ".wav" else path.with_suffix(".wav")
    return [path] if count == 1 else [path.with_name(f"{path.stem}-{k}.wav") for k in range(count)]


def run_compose(args) -> int:
    from tqdm import tqdm

    from zoo.compose import compose, load
    from zoo.imagine import weights_digest
    from zoo.train.compose_inference import check_sampling, compose_prompts, save_spectrograms, save_wav

    loaded = load(args.checkpoint, args.device)
    model = loaded.model
    duration = args.duration if args.duration is not None else loaded.frames / model.frame_rate
    guidance_scale, top_k = loaded.settings(args.guidance_scale, args.top_k)
    frames = check_sampling(duration, guidance_scale, top_k, model)  # refuse before composing
    compose_prompts(loaded.vocab, args.prompts, model.config.max_prompt_len)
    cli_threads.start_threads("compose", args.threads)
    bar = tqdm(total=model.pattern.steps(frames), desc="composing", unit="step", disable=args.no_progress,
               file=sys.stderr)
    clips, sample_rate = compose(args.prompts, args.checkpoint, duration=duration,
                                 guidance_scale=guidance_scale, seed=args.seed, top_k=top_k,
                                 top_p=args.top_p, temperature=args.temperature, device=args.device,
                                 progress=lambda fed: bar.update(1))
    bar.close()
    digest = weights_digest(loaded)
    for prompt, wav, path in zip(args.prompts, clips, output_paths(args.output, len(args.prompts))):
        save_wav(path, wav, sample_rate)
        save_spectrograms(path.with_suffix(".png"), [wav], [prompt], sample_rate)
        record = {"prompt": prompt, "duration": duration, "seed": args.seed, "guidance_scale": guidance_scale,
                  "top_k": top_k, "top_p": args.top_p, "temperature": args.temperature,
                  "sample_rate": sample_rate, "model": loaded.name, "checkpoint": str(loaded.folder),
                  "weights": loaded.weights_file, "weights_sha256": digest}
        path.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
        print(path)
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("compose", help="compose music from text prompts",
                              description="Compose music from prompts with a `zoo train --task text-to-music` "
                                          "model (default: the shipped melodies model).")
    p.add_argument("prompts", nargs="+", help="what to play, e.g. 'a fast falling E minor arpeggio on a bright square'")
    p.add_argument("--checkpoint", default=None, help="run folder (uses best/) or checkpoint folder "
                                                      "(default: the shipped model)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds of audio (default: the length the model was trained on)")
    p.add_argument("--guidance_scale", "--guidance-scale", type=float, default=None,
                   help="classifier-free guidance (1: none; default: the model's recommendation, else 3)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--top_k", "--top-k", type=int, default=None,
                   help="sample among the k likeliest codes (1: greedy; default: the model's recommendation, else 250)")
    p.add_argument("--top_p", "--top-p", type=float, default=None, help="nucleus sampling threshold")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    p.add_argument("--output", "-o", default="output/compose.wav",
                   help="the WAV to write; with several prompts, NAME-0.wav, NAME-1.wav, ... (a spectrogram PNG "
                        "and a JSON go beside each)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when present)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    cli_threads.add_argument(p)
    p.set_defaults(func=run_compose)
