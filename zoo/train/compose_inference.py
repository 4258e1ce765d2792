"""A trained text-to-music model: the meta.json fields its checkpoint carries, loading it back, composing,
and writing what it composed (WAV, spectrogram). `zoo compose`, zoo.compose() and the trainer build on it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from shared.errors import InputError
from shared.generation import Sample

if TYPE_CHECKING:
    from audio.musicgen import MusicGen
    from vision.caption_data import CaptionVocab

BATCH_SIZE = 64  # prompts composed at once
MUSICGEN_SAMPLING = {"guidance_scale": 3.0, "top_k": 250}  # MusicGen's; a checkpoint's meta "compose" overrides


@dataclass
class LoadedComposer:
    """A trained text-to-music model with its prompt vocabulary."""

    model: MusicGen
    vocab: CaptionVocab
    name: str            # the registered model it was trained as
    folder: Path
    weights_file: str
    frames: int          # codec frames of the clips it was trained on (the default length to compose)
    sampling: dict       # default guidance_scale and top_k: MusicGen's, or the ones its meta.json recommends

    def settings(self, guidance_scale: float | None = None, top_k: int | None = None) -> tuple[float, int]:
        """The guidance scale and top-k to compose with: the ones given, else this checkpoint's defaults."""
        return (self.sampling["guidance_scale"] if guidance_scale is None else guidance_scale,
                self.sampling["top_k"] if top_k is None else top_k)


def prompt_vocab() -> CaptionVocab:
    """The prompt encoder's words: every word of the melodies' grammar (lower-cased, as prompts are read)."""
    from audio import melodies
    from vision.caption_data import SPECIALS, CaptionVocab, words

    return CaptionVocab([*SPECIALS, *sorted({w for word in melodies.WORDS for w in words(word)})])


def compose_prompts(vocab: CaptionVocab, prompts: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts -> tokens (B, S) and mask (B, S); a word the prompt encoder does not know is one InputError."""
    from vision.imagine_data import encode_prompts

    return encode_prompts(vocab, prompts, max_len)


def compose_meta(model_name: str, model_overrides: dict, vocab: CaptionVocab) -> dict:
    """The meta.json fields that make a training checkpoint a text-to-music one (what load_composer reads)."""
    return {"task": "text-to-music", "model": model_name, "model_overrides": dict(model_overrides),
            "vocab": vocab.to_dict()}


def load_composer(path: str | Path, use_ema: bool = True, device: str | None = None) -> LoadedComposer:
    """Rebuild the model a `zoo train --task text-to-music` checkpoint (or a run folder's best) holds."""
    from vision.caption_data import CaptionVocab
    from zoo.train.inference import load_task_model

    model, meta, folder, used = load_task_model(path, "text-to-music", use_ema, device)
    return LoadedComposer(model, CaptionVocab.from_dict(meta["vocab"]), meta["model"], folder, used,
                          int(meta.get("frames", model.max_frames)), {**MUSICGEN_SAMPLING, **meta.get("compose", {})})


def check_sampling(duration: float, guidance_scale: float, top_k: int, model: MusicGen) -> int:
    """One-line refusals of settings that cannot work; returns the number of codec frames for `duration`."""
    if guidance_scale < 0:
        raise InputError(f"guidance_scale must be 0 or more (1: no guidance), got {guidance_scale}")
    if top_k < 1:
        raise InputError(f"top_k must be at least 1 (1: greedy), got {top_k}")
    frames = round(duration * model.frame_rate)
    if not 1 <= frames <= model.max_frames:
        raise InputError(f"--duration {duration:g} s is outside what this model can compose: up to "
                         f"{model.max_frames / model.frame_rate:.2f} s (its decoder's {model.config.max_len} "
                         "positions)")
    return frames


@torch.no_grad()
def compose_audio(model: MusicGen, vocab: CaptionVocab, prompts: list[str], frames: int, *, seed: int = 0,
                  guidance_scale: float = 3.0, top_k: int = 250, top_p: float | None = None,
                  temperature: float = 1.0, batch_size: int = BATCH_SIZE, progress=None) -> torch.Tensor:
    """Audio (B, N) on the CPU, one clip per prompt, `frames` codec frames long. Sampling is seeded once per
    batch of `batch_size` prompts: the same prompts with the same seed give the same audio."""
    tokens, mask = compose_prompts(vocab, prompts, model.config.max_prompt_len)
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(prompts), batch_size):
        rows = slice(start, start + batch_size)
        width = int(mask[rows].sum(1).max())  # drop the padding columns every prompt of this batch has
        selector = Sample(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed + start)
        codes = model.generate(tokens[rows, :width].to(device), mask[rows, :width].to(device), frames,
                               guidance_scale=guidance_scale, selector=selector, progress=progress)
        out.append(model.decode_audio(codes).float().cpu())
    return torch.cat(out)


def save_wav(path: Path, audio, sample_rate: int) -> None:
    """Mono float audio -> a 16-bit WAV, written atomically."""
    import numpy as np
    import soundfile

    from zoo.train import checkpoint

    samples = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.atomic_write(path, lambda tmp: soundfile.write(tmp, samples, sample_rate, subtype="PCM_16",
                                                              format="WAV"))


def save_spectrograms(path: Path, audio: list, titles: list[str], sample_rate: int) -> None:
    """Log-magnitude spectrograms of several clips, one row each, titled, into one PNG (atomically)."""
    import numpy as np

    from zoo.train import checkpoint
    from zoo.train.report import _figure

    plt = _figure()
    fig, axes = plt.subplots(len(audio), 1, figsize=(8, 2.2 * len(audio)), squeeze=False)
    for ax, wav, title in zip(axes[:, 0], audio, titles):
        with np.errstate(divide="ignore"):  # silence is log(0): drawn as the darkest colour
            ax.specgram(wav, Fs=sample_rate, NFFT=1024, noverlap=768, cmap="magma")
        ax.set_ylim(0, 4000)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("Hz")
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=80))
    plt.close(fig)


def save_examples(folder: Path, audio: torch.Tensor, prompts: list[str], sample_rate: int) -> None:
    """WAVs 0.wav, 1.wav, ... and spectrograms.png of clips (B, N) composed for `prompts`."""
    clips = [wav.numpy() for wav in audio]
    for i, wav in enumerate(clips):
        save_wav(folder / f"{i}.wav", wav, sample_rate)
    save_spectrograms(folder / "spectrograms.png", clips, prompts, sample_rate)
