"""`zoo train --task text-to-image`: a diffusion Transformer on the latents of a trained autoencoder, on the
one engine (optimizer, schedule, AMP, EMA, checkpoints, resume, summary.csv).

The trainer encodes the training scenes once with the frozen autoencoder (`--autoencoder RUN_DIR`), scales
the latents to unit variance, and learns to denoise them under the run's objective (rectified flow by default)
while the prompt encoder learns with it; a tenth of the prompts are dropped to the empty one, so the model
also learns the unconditional prediction that classifier-free guidance needs. Every epoch it draws the
validation prompts from the EMA weights, lets the shipped captioner read them back, scores the read-back
(exact, and per attribute) and saves a grid of samples; at the end it scores the test and held-out splits
into imagine_eval.json.
"""

import json

import torch
import torch.nn.functional as F

from shared.errors import ConfigError, WeightsError
from vision.caption_data import CaptionVocab, pad_captions
from vision.imagine_data import grid, scene_tensors, to_pil, to_signed
from vision.text_to_image import TextToImage
from zoo import registry
from zoo.shipped import SHIPPED_IMAGINE
from zoo.train import checkpoint, report
from zoo.train.autoencoder import Pairs, check_scenes_task, make_loader
from zoo.train.engine import Trainer
from zoo.train.imagine_inference import draw, imagine_meta
from zoo.train.readback import SceneReader

DEFAULTS = {"model": "dit_shapes", "dataset": "shapes", "epochs": 20, "batch_size": 128, "lr": 1.5e-3,
            "weight_decay": 0.0, "warmup_epochs": 1, "min_lr": 1e-5, "smoothing": 0.0, "drop_path": None,
            "clip_grad": 1.0, "model_ema": True, "model_ema_decay": 0.999, "val_subset": 200, "amp": True}
PROMPT_DROPOUT = 0.1  # share of training prompts replaced by the empty one (for classifier-free guidance)
EVAL_SAMPLING = {"num_inference_steps": 20, "guidance_scale": 3.0}  # how evaluation draws
GRID = 16  # samples saved per epoch
COLUMNS = ("epoch", "train_loss", "eval_loss", "eval_exact", "eval_count", "eval_colour", "eval_shape",
           "eval_relation", "lr", "seconds")
CURVES = {"exact read-back": "eval_exact", "colour": "eval_colour", "shape": "eval_shape",
          "relation": "eval_relation"}
FINAL_SPLITS = ("test", "holdout")


def save_grid(path, images: torch.Tensor, columns: int = 4) -> None:
    """Images (B, 3, H, W) in [-1, 1] tiled into one PNG, `columns` wide, written atomically."""
    tiled = grid(to_pil(images), columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.atomic_write(path, lambda tmp: tiled.save(tmp, format="PNG"))


def load_autoencoder(path, device):
    """The frozen autoencoder of a `zoo train --task autoencoder` run, or the one inside a text-to-image run
    (to draw in the latent space of a model that exists, e.g. the shipped one); and its registered name."""
    folder = checkpoint.find(path)
    meta = checkpoint.read_meta(folder)
    if meta.get("task") == "text-to-image":
        model = registry.create_model(meta["model"], **meta.get("model_overrides", {}))
        checkpoint.load_weights(model, folder, ema=True)
        return model.autoencoder.to(device).eval(), model.config.autoencoder
    if meta.get("task") != "autoencoder":
        raise WeightsError(f"{folder} is neither an autoencoder nor a text-to-image checkpoint (it was trained "
                           f"for {meta.get('task', 'classification')}); train one with `zoo train --task autoencoder`")
    model = registry.create_model(meta["model"], **meta.get("model_overrides", {}))
    checkpoint.load_weights(model, folder, ema=True)
    return model.to(device).eval(), meta["model"]


class ImagineTrainer(Trainer):
    """The engine's Trainer with text-to-image as the task."""

    columns = COLUMNS

    def setup_task(self) -> None:
        a = self.args
        check_scenes_task(a, "text-to-image", TextToImage, DEFAULTS["model"])
        autoencoder_run = a.autoencoder or (SHIPPED_IMAGINE if SHIPPED_IMAGINE.is_dir() else None)
        if autoencoder_run is None:
            raise ConfigError("--task text-to-image diffuses the latents of a trained autoencoder: pass "
                              "--autoencoder RUN_DIR (from `zoo train --task autoencoder`)")
        if not a.autoencoder:
            self.log(f"latent space: the autoencoder of the shipped model ({autoencoder_run}); "
                     "--autoencoder RUN_DIR for another")
        config = registry.apply_overrides(registry.get_entry(a.model), dict(a.model_kwargs or {}))
        autoencoder, ae_name = load_autoencoder(autoencoder_run, self.device)
        if ae_name != config.autoencoder:
            raise ConfigError(f"{a.model} diffuses the latents of {config.autoencoder}, but --autoencoder holds "
                              f"a {ae_name}; pass a {config.autoencoder} run")
        size = autoencoder.config.sample_size
        images, captions = scene_tensors("train", a.train_subset, img_size=size)
        latents = self.encode(autoencoder, images)
        scale = float(f"{1.0 / latents.std().item():.4g}")  # unit-variance latents, as SD's scaling_factor
        self.vocab = CaptionVocab.build(captions)
        self.overrides = {**(a.model_kwargs or {}), "vocab_size": len(self.vocab), "latent_scale": scale}
        self.model = registry.create_model(a.model, **self.overrides).to(self.device)
        self.model.autoencoder.load_state_dict(autoencoder.state_dict())
        self.num_classes = len(self.vocab)
        tokens = self.tokens(captions)
        self._check_batch(len(latents))
        self.train_loader = make_loader(Pairs(latents * scale, tokens), a.batch_size, True, a, self.dist)
        val_images, self.val_prompts = scene_tensors("val", a.val_subset, img_size=size)
        self.val_latents = self.encode(autoencoder, val_images) * scale
        self.val_loader = make_loader(Pairs(self.val_latents, self.tokens(self.val_prompts)),
                                      a.validation_batch_size or a.batch_size, False, a, self.dist)
        self.reader = SceneReader(device=self.device)

    @torch.no_grad()
    def encode(self, autoencoder, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """uint8 scenes (N, 3, H, W) -> unscaled latent means (N, Cz, h, w), on the CPU."""
        return torch.cat([autoencoder.encode(to_signed(images[i:i + batch]).to(self.device))[0].cpu()
                          for i in range(0, len(images), batch)])

    def tokens(self, captions: list[str]) -> torch.Tensor:
        return pad_captions([self.vocab.encode(c) for c in captions], self.vocab.pad_id,
                            self.model.config.max_prompt_len)

    def compute_loss(self, latents: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        if self.train_model.training:  # the empty prompt for a share of the rows
            dropped = torch.rand(len(tokens), device=tokens.device) < PROMPT_DROPOUT
            null = torch.full_like(tokens[0], self.vocab.pad_id)
            null[:2] = torch.tensor([self.vocab.bos_id, self.vocab.eos_id])
            tokens = torch.where(dropped[:, None], null, tokens)
        return self.denoising_loss(self.train_model, latents, tokens.to(latents.device))

    def denoising_loss(self, model, latents: torch.Tensor, tokens: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        noisy, timesteps, target = self.model.objective.training_inputs(latents, generator)
        prediction = model(noisy, timesteps, tokens, tokens != self.vocab.pad_id)
        return F.mse_loss(prediction.float(), target.float())

    @torch.no_grad()
    def evaluate_epoch(self) -> dict:
        model = self.eval_model.eval()
        generator = torch.Generator().manual_seed(0)  # the same noise every epoch: losses compare
        loss, n = 0.0, 0
        for latents, tokens, _ in self.val_loader:
            with self.autocast():
                loss += self.denoising_loss(model, latents.to(self.device), tokens.to(self.device),
                                            generator).item() * len(latents)
            n += len(latents)
        scores, said, images = self.draw_and_read(model, self.val_prompts)
        if self.dist.is_main and self.run_dir is not None:
            save_grid(self.run_dir / "samples" / f"epoch{self.progress.epoch + 1:04d}.png", images[:GRID])
        return {"loss": loss / max(n, 1), **scores, "examples": list(zip(self.val_prompts, said))[:5]}

    def draw_and_read(self, model, prompts: list[str]) -> tuple[dict, list[str], torch.Tensor]:
        with self.autocast():
            images = draw(model, self.vocab, prompts, seeds=list(range(len(prompts))), **EVAL_SAMPLING)
        scores, said = self.reader.score(images, prompts)
        return scores, said, images

    @staticmethod
    def metric_columns(metrics: dict) -> dict:
        return {"eval_loss": metrics["loss"], "eval_exact": metrics["exact"], "eval_count": metrics["count"],
                "eval_colour": metrics["colour"], "eval_shape": metrics["shape"],
                "eval_relation": metrics["relation"]}

    @staticmethod
    def score(metrics: dict) -> float:
        return metrics["exact"]

    @staticmethod
    def format_row(row: dict) -> str:
        return (f"epoch {row['epoch']:>3}  train_loss {row['train_loss']:.4f}  eval_loss {row['eval_loss']:.4f}  "
                f"read back: exact {row['eval_exact']:.1f}%  count {row['eval_count']:.1f}%  colour "
                f"{row['eval_colour']:.1f}%  shape {row['eval_shape']:.1f}%  relation {row['eval_relation'] or 0:.1f}%"
                f"  lr {row['lr']:.2e}  {row['seconds']:.1f}s")

    def describe(self) -> str:
        return f"a prompt vocabulary of {len(self.vocab)} words, latents scaled by {self.model.config.latent_scale}"

    def meta(self, metrics: dict | None) -> dict:
        extras = {"dataset": self.args.dataset, "epoch": self.progress.epoch, "updates": self.progress.updates,
                  "ema": self.ema is not None, "sampling": EVAL_SAMPLING}
        scores = {} if metrics is None else self.metric_columns(metrics)
        return {**imagine_meta(self.args.model, self.overrides, self.vocab), **extras, **scores}

    def finish(self, metrics: dict) -> None:
        """Curves, examples, and the test and held-out-pair read-back scores (imagine_eval.json)."""
        if not self.dist.is_main or self.run_dir is None:
            return
        report.plot_curves(self.run_dir / "curves.png", self.progress.rows, CURVES, ylabel="%",
                           title="read back by the captioner")
        p = self.progress
        self.log(f"done: last exact read-back {metrics['exact']:.2f}%, best {p.best_top1:.2f}% (epoch "
                 f"{p.best_epoch}); {self.run_dir}")
        for prompt, said in metrics["examples"]:
            self.log(f"  {prompt!r} read back as {said!r}")
        results = {}
        for split in FINAL_SPLITS:  # --val-subset caps these splits too, so a quick run stays quick
            _, prompts = scene_tensors(split, self.args.val_subset)
            scores, _, _ = self.draw_and_read(self.eval_model.eval(), prompts)
            results[split] = scores
            self.log(f"{split}: exact {scores['exact']:.1f}%  by count {scores['by_count']}  colour "
                     f"{scores['colour']:.1f}%  shape {scores['shape']:.1f}%  ({scores['count_of']} prompts)")
        results["sampling"] = EVAL_SAMPLING
        checkpoint.atomic_write_text(self.run_dir / "imagine_eval.json", json.dumps(results, indent=2) + "\n")
