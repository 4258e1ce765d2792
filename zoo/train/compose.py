"""`zoo train --task text-to-music`: a MusicGen-style decoder on the generated melodies, on the one engine
(optimizer, schedule, AMP, EMA, checkpoints, resume, summary.csv).

Setup renders the seeded melodies (audio.melodies), fits the model's k-means spectral codec on training clips
(deterministic, so a resumed run refits the same one), and encodes every clip to codes once. Training is
next-step cross-entropy over the codebook pattern's cells; a share of the prompts is replaced by the null
prompt so classifier-free guidance has its unconditional prediction. Every epoch composes the validation
prompts from the EMA weights, lets the pitch tracker grade them against the prompts' notes
(audio.music_metrics) and saves a few WAVs with their spectrograms; at the end it grades the test and
held-out splits into compose_eval.json.
"""

import json

import numpy as np
import torch
import torch.nn.functional as F

from audio import melodies, music_metrics
from audio.musicgen import MusicGen
from audio.spectral_tokenizer import SpectralTokenizer, fit_spectral_tokenizer
from shared.errors import ConfigError
from zoo import registry
from zoo.train import checkpoint, report
from zoo.train.autoencoder import Pairs, make_loader
from zoo.train.compose_inference import compose_audio, compose_meta, compose_prompts, prompt_vocab, save_examples
from zoo.train.engine import Trainer

DEFAULTS = {"model": "musicgen_melodies", "dataset": "melodies", "epochs": 50, "batch_size": 256, "lr": 2e-3,
            "weight_decay": 0.01, "warmup_epochs": 1, "min_lr": 1e-5, "smoothing": 0.0, "drop_path": None,
            "clip_grad": 1.0, "model_ema": True, "model_ema_decay": 0.999, "train_subset": 20000,
            "val_subset": 24, "amp": True, "amp_dtype": "bfloat16"}
PROMPT_DROPOUT = 0.1  # share of training prompts replaced by the null one (for classifier-free guidance)
EVAL_SAMPLING = {"guidance_scale": 3.0, "top_k": 250, "seed": 0}  # how each epoch composes: MusicGen's defaults
CODEC_FIT_CLIPS = 400  # training clips the spectral codec is fitted on, at most ...
CODEC_FIT_SHARE = 20  # ... and at most one in this many, so a small run fits its codec quickly
EXAMPLES = 4  # WAVs (and spectrograms) saved per epoch
COLUMNS = ("epoch", "train_loss", "eval_loss", "eval_notes", "eval_exact", "eval_tempo", "lr", "seconds")
CURVES = {"note accuracy": "eval_notes", "exact melody": "eval_exact", "tempo": "eval_tempo"}
FINAL_SPLITS = ("test", "holdout")


def clips(split: str, n: int, seed: int = 0) -> tuple[list[str], torch.Tensor]:
    """`n` prompts of a split and their rendered audio (n, samples)."""
    pairs = melodies.dataset(split, n, seed)
    audio = np.stack([melodies.render(prompt, s) for prompt, s in pairs])
    return [prompt for prompt, _ in pairs], torch.from_numpy(audio)


class ComposeTrainer(Trainer):
    """The engine's Trainer with text-to-music as the task."""

    columns = COLUMNS

    def setup_task(self) -> None:
        a = self.args
        if a.dataset != "melodies":
            raise ConfigError(f"--task text-to-music trains on the generated melodies; use --dataset melodies, "
                              f"not {a.dataset!r}")
        entry = registry.get_entry(a.model)
        if entry.model_class is not MusicGen:
            raise ConfigError(f"--task text-to-music needs a text-to-music model, not {entry.name} ({entry.task}); "
                              f"try --model {DEFAULTS['model']}")
        self.vocab = prompt_vocab()
        self.overrides = {**(a.model_kwargs or {}), "text_vocab_size": len(self.vocab)}
        self.model = registry.create_model(a.model, **self.overrides)
        if not isinstance(self.model.codec, SpectralTokenizer):
            raise ConfigError(f"{a.model}'s codec ({self.model.config.codec}) is not one zoo trains; text-to-music "
                              f"training needs a model on the k-means spectral codec, e.g. {DEFAULTS['model']}")
        prompts, audio = clips("train", a.train_subset or DEFAULTS["train_subset"], a.seed)
        fit = min(CODEC_FIT_CLIPS, max(1, len(audio) // CODEC_FIT_SHARE))
        self.log(f"fitting the spectral codec on {fit} clips")
        codec = fit_spectral_tokenizer(audio[:fit], self.model.codec.config, seed=a.seed)
        self.model.codec.load_state_dict(codec.state_dict())
        self.model = self.model.to(self.device)
        self.num_classes = self.model.config.codebook_size
        codes = self.encode(audio)
        self._check_batch(len(codes))
        tokens, mask = compose_prompts(self.vocab, prompts, self.model.config.max_prompt_len)
        self.train_loader = make_loader(Pairs(codes, tokens), a.batch_size, True, a, self.dist)
        self.val_prompts, val_audio = clips("val", a.val_subset or DEFAULTS["val_subset"], a.seed + 1)
        val_tokens, _ = compose_prompts(self.vocab, self.val_prompts, self.model.config.max_prompt_len)
        self.val_loader = make_loader(Pairs(self.encode(val_audio), val_tokens),
                                      a.validation_batch_size or a.batch_size, False, a, self.dist)
        self.frames = codes.shape[-1]

    @torch.no_grad()
    def encode(self, audio: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """Audio (N, samples) -> codes (N, K, T), on the CPU."""
        return torch.cat([self.model.codec.encode(audio[i:i + batch].to(self.device)).cpu()
                          for i in range(0, len(audio), batch)])

    def compute_loss(self, codes: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        null = None
        if self.train_model.training:  # the null prompt for a share of the rows
            null = torch.rand(len(tokens), device=tokens.device) < PROMPT_DROPOUT
        return self.step_loss(self.train_model, codes, tokens, null)

    def step_loss(self, model, codes: torch.Tensor, tokens: torch.Tensor, null=None) -> torch.Tensor:
        """Cross-entropy of every cell of the pattern that holds a code."""
        codes, tokens = codes.to(self.device), tokens.to(self.device)
        inputs, targets = self.model.input_steps(codes)  # (B, K, S) each
        logits = model(tokens, tokens != self.vocab.pad_id, inputs, null)  # (B, K, S, card)
        return F.cross_entropy(logits.float().flatten(0, 2), targets.flatten(), ignore_index=self.model.config.pad_id)

    @torch.no_grad()
    def evaluate_epoch(self) -> dict:
        model = self.eval_model.eval()
        loss, n = 0.0, 0
        for codes, tokens, _ in self.val_loader:
            with self.autocast():
                loss += self.step_loss(model, codes, tokens).item() * len(codes)
            n += len(codes)
        scores, audio = self.compose_and_grade(model, self.val_prompts)
        if self.dist.is_main and self.run_dir is not None:
            folder = self.run_dir / "samples" / f"epoch{self.progress.epoch + 1:04d}"
            save_examples(folder, audio[:EXAMPLES], self.val_prompts[:EXAMPLES], self.model.sample_rate)
        return {"loss": loss / max(n, 1), **scores}

    def compose_and_grade(self, model, prompts: list[str]) -> tuple[dict, torch.Tensor]:
        with self.autocast():
            audio = compose_audio(model, self.vocab, prompts, self.frames, **EVAL_SAMPLING)
        results = [music_metrics.grade(wav.numpy(), model.sample_rate, p) for wav, p in zip(audio, prompts)]
        return music_metrics.summarize(results, prompts), audio

    @staticmethod
    def metric_columns(metrics: dict) -> dict:
        return {"eval_loss": metrics["loss"], "eval_notes": metrics["note_accuracy"],
                "eval_exact": metrics["exact"], "eval_tempo": metrics["tempo"]}

    @staticmethod
    def score(metrics: dict) -> float:
        return metrics["note_accuracy"]

    @staticmethod
    def format_row(row: dict) -> str:
        return (f"epoch {row['epoch']:>3}  train_loss {row['train_loss']:.4f}  eval_loss {row['eval_loss']:.4f}  "
                f"pitch tracker: notes {row['eval_notes']:.1f}%  exact {row['eval_exact']:.1f}%  tempo "
                f"{row['eval_tempo']:.1f}%  lr {row['lr']:.2e}  {row['seconds']:.1f}s")

    def describe(self) -> str:
        c = self.model.config
        return (f"{len(self.train_loader.dataset)} clips of {self.frames} frames x {c.num_codebooks} codebooks, "
                f"a prompt vocabulary of {len(self.vocab)} words")

    def meta(self, metrics: dict | None) -> dict:
        extras = {"dataset": self.args.dataset, "epoch": self.progress.epoch, "updates": self.progress.updates,
                  "ema": self.ema is not None, "sampling": EVAL_SAMPLING, "frames": self.frames}
        scores = {} if metrics is None else self.metric_columns(metrics)
        return {**compose_meta(self.args.model, self.overrides, self.vocab), **extras, **scores}

    def finish(self, metrics: dict) -> None:
        """Curves, and the pitch tracker's grades of the test and held-out prompts (compose_eval.json)."""
        if not self.dist.is_main or self.run_dir is None:
            return
        report.plot_curves(self.run_dir / "curves.png", self.progress.rows, CURVES, ylabel="%",
                           title="graded by the pitch tracker")
        p = self.progress
        self.log(f"done: last note accuracy {metrics['note_accuracy']:.2f}%, best {p.best_top1:.2f}% (epoch "
                 f"{p.best_epoch}); {self.run_dir}")
        results = {}
        for split in FINAL_SPLITS:  # --val-subset caps these splits too, so a quick run stays quick
            prompts = [prompt for prompt, _ in melodies.dataset(split, self.args.val_subset, self.args.seed + 2)]
            results[split], _ = self.compose_and_grade(self.eval_model.eval(), prompts)
            self.log(f"{split}: notes {results[split]['note_accuracy']:.1f}%  exact {results[split]['exact']:.1f}% "
                     f" tempo {results[split]['tempo']:.1f}%  ({len(prompts)} prompts)")
        results["sampling"] = EVAL_SAMPLING
        checkpoint.atomic_write_text(self.run_dir / "compose_eval.json", json.dumps(results, indent=2) + "\n")
