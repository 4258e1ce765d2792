"""`zoo train --task autoencoder`: the KL autoencoder whose latents text-to-image diffuses, on the one engine.

The loss is L1 + MSE of the reconstruction from the posterior mean: on the scenes, sampling the posterior under
a KL term (as Stable Diffusion's VAE is trained, with a tiny weight) learned colours and edges several times
slower, and text-to-image scales the latents to unit variance itself. KL_WEIGHT > 0 brings the KL term and the
sampling back. Each epoch reports the validation L1, PSNR and, for the scenes, how many reconstructions the
shipped captioner still reads exactly.
"""

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from shared.errors import ConfigError
from vision.autoencoder import AutoencoderKL
from vision.imagine_data import scene_tensors, to_signed
from zoo import registry
from zoo.train import ddp, report
from zoo.train.data import EpochSampler
from zoo.train.engine import Trainer
from zoo.train.readback import SceneReader

DEFAULTS = {"model": "autoencoder_kl_shapes", "dataset": "shapes", "epochs": 4, "batch_size": 32, "lr": 2e-3,
            "weight_decay": 0.0, "warmup_epochs": 1, "min_lr": 1e-5, "smoothing": 0.0, "drop_path": None,
            "clip_grad": None, "model_ema": False, "amp": True}
KL_WEIGHT = 0.0
COLUMNS = ("epoch", "train_loss", "eval_l1", "eval_psnr", "eval_readback", "lr", "seconds")


class Pairs(torch.utils.data.Dataset):
    """Tensors indexed together; the engine's sampler yields (index, seed)."""

    def __init__(self, *tensors):
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, key):
        index = key[0] if isinstance(key, tuple) else key
        return tuple(t[index] for t in self.tensors)


def collate(samples):
    """(first tensors stacked, second tensors stacked, no bad items): the engine's batch shape."""
    return torch.stack([s[0] for s in samples]), torch.stack([s[1] for s in samples]), []


def make_loader(dataset, batch_size: int, train: bool, args, dist: ddp.Dist) -> DataLoader:
    sampler = EpochSampler(len(dataset), shuffle=train, seed=args.seed, rank=dist.rank, world_size=dist.world_size)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate, drop_last=train)


def check_scenes_task(args, task: str, model_class: type, default_model: str) -> None:
    """What a task that trains on the generated scenes checks first: --dataset shapes and a --model of its kind."""
    if args.dataset != "shapes":
        raise ConfigError(f"--task {task} trains on the generated scenes; use --dataset shapes, not {args.dataset!r}")
    entry = registry.get_entry(args.model)
    if entry.model_class is not model_class:
        raise ConfigError(f"--task {task} needs a {task} model, not {entry.name} ({entry.task}); "
                          f"try --model {default_model}")


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per latent element, averaged."""
    return 0.5 * (mean.float() ** 2 + logvar.float().exp() - 1.0 - logvar.float()).mean()


class AutoencoderTrainer(Trainer):
    """The engine's Trainer with reconstruction as the task."""

    columns = COLUMNS

    def setup_task(self) -> None:
        a = self.args
        check_scenes_task(a, "autoencoder", AutoencoderKL, DEFAULTS["model"])
        self.model = registry.create_model(a.model, **(a.model_kwargs or {})).to(self.device)
        size = self.model.config.sample_size
        train_images, _ = scene_tensors("train", a.train_subset, img_size=size)
        self.val_images, self.val_captions = scene_tensors("val", a.val_subset, img_size=size)
        self.num_classes = 0
        self._check_batch(len(train_images))
        dummy = torch.zeros(len(train_images))
        self.train_loader = make_loader(Pairs(train_images, dummy), a.batch_size, True, a, self.dist)
        self.val_loader = make_loader(Pairs(self.val_images, torch.zeros(len(self.val_images))),
                                      a.validation_batch_size or a.batch_size, False, a, self.dist)
        self.reader = SceneReader(device=self.device) if size == 48 else None

    def compute_loss(self, images: torch.Tensor, _) -> torch.Tensor:
        x = to_signed(images)
        reconstruction, mean, logvar = self.train_model(x, sample=KL_WEIGHT > 0)
        loss = F.l1_loss(reconstruction.float(), x) + F.mse_loss(reconstruction.float(), x)
        return loss + KL_WEIGHT * kl_divergence(mean, logvar) if KL_WEIGHT > 0 else loss

    @torch.no_grad()
    def evaluate_epoch(self) -> dict:
        model = self.eval_model.eval()
        outputs, l1 = [], 0.0
        for images, _, _ in self.val_loader:
            x = to_signed(images.to(self.device))
            with self.autocast():
                reconstruction = model(x)[0].float().clamp(-1, 1)
            l1 += F.l1_loss(reconstruction, x, reduction="sum").item()
            outputs.append(reconstruction.cpu())
        reconstructions = torch.cat(outputs)
        mse = F.mse_loss((reconstructions + 1) / 2, (to_signed(self.val_images) + 1) / 2).item()
        metrics = {"l1": l1 / reconstructions.numel(), "psnr": 10 * math.log10(1.0 / max(mse, 1e-12)),
                   "readback": None}
        if self.reader is not None:
            metrics["readback"] = self.reader.score(reconstructions, self.val_captions)[0]["exact"]
        return metrics

    @staticmethod
    def metric_columns(metrics: dict) -> dict:
        return {"eval_l1": metrics["l1"], "eval_psnr": metrics["psnr"], "eval_readback": metrics["readback"]}

    @staticmethod
    def score(metrics: dict) -> float:
        return metrics["psnr"]

    @staticmethod
    def format_row(row: dict) -> str:
        readback = "" if row["eval_readback"] is None else f"  read back {row['eval_readback']:.1f}%"
        return (f"epoch {row['epoch']:>3}  train_loss {row['train_loss']:.4f}  L1 {row['eval_l1']:.4f}  "
                f"PSNR {row['eval_psnr']:.2f} dB{readback}  lr {row['lr']:.2e}  {row['seconds']:.1f}s")

    def describe(self) -> str:
        return f"latents {self.model.config.latent_channels}x{self.model.config.downsample} smaller per side"

    def meta(self, metrics: dict | None) -> dict:
        scores = {} if metrics is None else self.metric_columns(metrics)
        return {"task": "autoencoder", "model": self.args.model, "model_overrides": dict(self.args.model_kwargs or {}),
                "config": dataclasses.asdict(self.model.config), "dataset": self.args.dataset,
                "epoch": self.progress.epoch, "updates": self.progress.updates, "ema": self.ema is not None,
                **scores}

    def finish(self, metrics: dict) -> None:
        if not self.dist.is_main or self.run_dir is None:
            return
        report.plot_curves(self.run_dir / "curves.png", self.progress.rows, {"PSNR (dB)": "eval_psnr"},
                           ylabel="dB", title="reconstruction")
        self.log(f"done: PSNR {metrics['psnr']:.2f} dB, L1 {metrics['l1']:.4f}"
                 + ("" if metrics["readback"] is None else f", read back {metrics['readback']:.1f}%")
                 + f"; {self.run_dir}")
