"""Loaders for `zoo train`: timm's transforms and Mixup, a resumable epoch sampler, bad-image accounting.

Reproducibility: every training sample is augmented under its own seed, derived from (run seed, epoch, index),
and the epoch's order comes from (run seed, epoch). So the images a step sees do not depend on the number of
loader workers, nor on whether the run was interrupted and resumed in the middle of the epoch.
"""

import math
import random
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from shared.errors import InputError
from vision.datasets import BadImage, SafeImages, create_dataset

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one sample of one epoch (a simple mix is enough: each seed starts its own stream)."""
    return ((seed * 1_000_003 + epoch) * 2_654_435_761 + index) % (2 ** 63)


class EpochSampler(torch.utils.data.Sampler):
    """Yields `(index, seed)` for this process's share of one epoch.

    shuffle: a fresh permutation per epoch from (seed, epoch). rank/world_size: the DDP shard (the order is
    padded by repeating its head so every process gets the same count). skip(n): start after the first n
    samples of this epoch's shard, which is how a mid-epoch checkpoint resumes.
    """

    def __init__(self, n: int, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.n, self.shuffle, self.seed, self.rank, self.world_size = n, shuffle, seed, rank, world_size
        self.epoch, self.start = 0, 0
        self.per_rank = math.ceil(n / world_size) if shuffle else len(range(rank, n, world_size))

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.start = epoch, skip

    def _order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.rank, self.n, self.world_size))
        gen = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        order = torch.randperm(self.n, generator=gen).tolist()
        order += order[: self.per_rank * self.world_size - self.n]
        return order[self.rank::self.world_size]

    def __iter__(self):
        for index in self._order()[self.start:]:
            yield index, sample_seed(self.seed, self.epoch, index) if self.shuffle else None

    def __len__(self) -> int:
        return self.per_rank - self.start


class Transformed(torch.utils.data.Dataset):
    """Applies a transform to each (image, label); with a seed, under that seed and without disturbing the
    caller's random state (so workers=0 and workers=N give the same images)."""

    def __init__(self, dataset, transform, grayscale: bool):
        self.dataset, self.transform, self.grayscale = SafeImages(dataset), transform, grayscale
        self.classes = dataset.classes

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, None)
        image, label = self.dataset[index]
        if isinstance(image, BadImage):
            return image, label
        if self.grayscale:
            image = image.convert("L")
        if seed is None:
            return self.transform(image), label
        states = random.getstate(), np.random.get_state(), torch.get_rng_state()
        random.seed(seed)
        np.random.seed(seed % (2 ** 32))
        # The CPU generator alone: torch.manual_seed also seeds every accelerator backend, which costs
        # about a millisecond a call, more than augmenting a small image.
        torch.default_generator.manual_seed(seed)
        try:
            return self.transform(image), label
        finally:
            random.setstate(states[0])
            np.random.set_state(states[1])
            torch.set_rng_state(states[2])


def collate(batch):
    """Stack good samples; return (images (B, C, H, W), targets (B,), [BadImage, ...])."""
    good = [(x, y) for x, y in batch if not isinstance(x, BadImage)]
    bad = [x for x, _ in batch if isinstance(x, BadImage)]
    if not good:
        return None, None, bad
    return torch.stack([x for x, _ in good]), torch.tensor([y for _, y in good]), bad


@dataclass
class DataConfig:
    """What the model expects as input; stored with every checkpoint so classify/validate match training."""

    img_size: int
    in_chans: int
    mean: tuple
    std: tuple
    interpolation: str
    crop_pct: float

    def eval_transform(self):
        from timm.data import create_transform

        return create_transform((self.in_chans, self.img_size, self.img_size), is_training=False,
                                interpolation=self.interpolation, mean=self.mean, std=self.std,
                                crop_pct=self.crop_pct)


def resolve_data_config(args, model) -> DataConfig:
    """Flags first, then the model's pretrained_cfg (timm contract), then ImageNet statistics."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    mean = tuple(args.mean or cfg.get("mean") or IMAGENET_MEAN)
    std = tuple(args.std or cfg.get("std") or IMAGENET_STD)
    if len(mean) != args.in_chans:
        mean = (sum(mean) / len(mean),) * args.in_chans if len(mean) in (1, 3) else mean
    if len(std) != args.in_chans:
        std = (sum(std) / len(std),) * args.in_chans if len(std) in (1, 3) else std
    if len(mean) != args.in_chans or len(std) != args.in_chans:
        raise InputError(f"--mean/--std need {args.in_chans} values (one per input channel)")
    return DataConfig(args.img_size, args.in_chans, mean, std, args.interpolation, args.crop_pct)


def train_transform(args, data: DataConfig):
    from timm.data import create_transform

    return create_transform(
        (data.in_chans, data.img_size, data.img_size), is_training=True, scale=tuple(args.scale),
        ratio=tuple(args.ratio), hflip=args.hflip, vflip=args.vflip, color_jitter=args.color_jitter,
        auto_augment=args.aa or None, interpolation=data.interpolation, mean=data.mean, std=data.std,
        re_prob=args.reprob, re_mode=args.remode, re_count=args.recount)


def load_datasets(args):
    """(train, val) datasets of the run, each cut to its --*-subset."""
    train = create_dataset(args.dataset, "train", args.data_dir, args.dataset_download)
    val = create_dataset(args.dataset, "val", args.data_dir, False)
    if tuple(train.classes) != tuple(val.classes):
        raise InputError(f"train and val classes differ ({len(train.classes)} vs {len(val.classes)}); "
                         f"every class needs a folder in both")
    return train.subset(args.train_subset), val.subset(args.val_subset)


def make_loader(dataset, transform, args, batch_size: int, train: bool, rank=0, world_size=1):
    sampler = EpochSampler(len(dataset), shuffle=train, seed=args.seed, rank=rank, world_size=world_size)
    return DataLoader(Transformed(dataset, transform, args.in_chans == 1), batch_size=batch_size,
                      sampler=sampler, num_workers=args.workers, collate_fn=collate, drop_last=train,
                      pin_memory=args.pin_mem, persistent_workers=args.workers > 0,
                      # Its own generator: starting an epoch must not draw from the global RNG, or a run
                      # resumed mid-epoch would see different dropout/drop-path masks than an unbroken one.
                      generator=torch.Generator().manual_seed(args.seed))


def create_mixup(args, num_classes: int):
    """timm's Mixup/CutMix when any of --mixup/--cutmix/--cutmix-minmax is on, else None."""
    if not (args.mixup > 0 or args.cutmix > 0 or args.cutmix_minmax is not None):
        return None
    from timm.data import Mixup

    return Mixup(mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, cutmix_minmax=args.cutmix_minmax,
                 prob=args.mixup_prob, switch_prob=args.mixup_switch_prob, mode=args.mixup_mode,
                 label_smoothing=args.smoothing, num_classes=num_classes)


class BadImageCounter:
    """Counts images that failed to decode; reports each by name and stops past the limit."""

    def __init__(self, limit: int, report=print):
        self.limit, self.count, self.report = limit, 0, report

    def add(self, bad: list[BadImage]) -> None:
        for item in bad:
            self.count += 1
            self.report(f"skipped unreadable image: {item.reason}")
        if self.count > self.limit:
            raise InputError(f"{self.count} images could not be decoded (more than --max-bad-images "
                             f"{self.limit}); fix or remove them, or raise the limit")
