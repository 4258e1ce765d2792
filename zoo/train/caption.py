"""`zoo train --task caption`: captioning on the one training engine.

The engine (zoo.train.engine.Trainer) owns the loop: optimizer, schedule, AMP, EMA, checkpoints, resume,
summary.csv and plots. CaptionTrainer supplies only what differs from classification: the data (images with
captions, a vocabulary built from the training captions), the loss (teacher-forced cross-entropy of every next
word, padding ignored), the per-epoch evaluation (greedy captions of the validation images scored by exact
match, BLEU-4 and CIDEr-D) and the checkpoint's extras (the vocabulary and the preprocessing).
"""

import dataclasses
import json
import random

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from shared.errors import ConfigError, InputError
from vision.caption_data import CaptionVocab, ImageToTensor, create_caption_dataset, pad_captions
from vision.caption_metrics import caption_scores
from vision.captioner import CaptionerConfig
from vision.datasets import BadImage
from zoo import registry
from zoo.train import checkpoint, ddp, report
from zoo.train.caption_inference import caption_meta
from zoo.train.data import EpochSampler
from zoo.train.engine import Trainer

# Flags a caption run uses when they are not given (over the classification defaults): the shapes recipe.
# No augmentation and no Mixup: flipped, cropped or mixed images would no longer match their captions.
DEFAULTS = {"model": "captioner_tiny_shapes", "dataset": "shapes", "epochs": 8, "batch_size": 64,
            "lr": 2e-3, "weight_decay": 0.05, "warmup_epochs": 1, "min_lr": 1e-5, "smoothing": 0.0,
            "drop_path": None, "clip_grad": None, "model_ema": True, "model_ema_decay": 0.998}
COLUMNS = ("epoch", "train_loss", "eval_loss", "eval_exact_match", "eval_bleu4", "eval_cider", "lr",
           "seconds")
CURVES = {"exact match (%)": "eval_exact_match", "BLEU-4 (%)": "eval_bleu4"}
FINAL_SPLITS = ("test", "holdout")  # scored once at the end of a shapes run, into caption_eval.json


class CaptionSamples(torch.utils.data.Dataset):
    """(index, seed) -> (image (C, H, W), caption token ids, reference captions), or a BadImage.

    A training sample whose image has several references takes one of them, chosen by the sample's seed.
    """

    def __init__(self, dataset, transform: ImageToTensor, vocab: CaptionVocab):
        self.dataset, self.transform, self.vocab = dataset, transform, vocab

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, None)
        try:
            image, refs = self.dataset[index]
        except InputError as err:  # counted and reported by the engine, like a classification image
            files = getattr(self.dataset, "files", None)
            return BadImage(str(files[index]) if files is not None else str(index), str(err))
        caption = refs[0] if seed is None else refs[random.Random(seed).randrange(len(refs))]
        return self.transform(image), self.vocab.encode(caption), refs


def make_collate(pad_id: int, max_len: int, with_references: bool):
    """Batch samples: (images (B, C, H, W) or None, tokens (B, T) padded with pad_id, [references,] bad)."""

    def collate(samples):
        bad = [s for s in samples if isinstance(s, BadImage)]
        good = [s for s in samples if not isinstance(s, BadImage)]
        images = torch.stack([s[0] for s in good]) if good else None
        tokens = pad_captions([s[1] for s in good], pad_id, max_len) if good else None
        return (images, tokens, [s[2] for s in good], bad) if with_references else (images, tokens, bad)

    return collate


def caption_loss(model, images: torch.Tensor, tokens: torch.Tensor, pad_id: int, smoothing: float = 0.0):
    """Teacher forcing: the mean cross-entropy of every token after BOS, padding ignored."""
    logits = model(images, tokens[:, :-1])  # (B, T - 1, V)
    return F.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:].flatten(), ignore_index=pad_id,
                           label_smoothing=smoothing)


@torch.no_grad()
def evaluate_captions(model, loader, device, autocast, vocab: CaptionVocab, dist: ddp.Dist, bad=None) -> dict:
    """Teacher-forced loss per token, then greedy captions scored against the references: loss,
    exact_match and bleu4 (percent), cider, count, and a few (caption, references) examples."""
    model.eval()
    loss_sum, n_tokens, hypotheses, references = 0.0, 0, [], []
    for images, tokens, refs, bad_items in loader:
        if bad is not None:
            bad.add(bad_items)
        if images is None:
            continue
        images, tokens = images.to(device), tokens.to(device)
        n = int((tokens[:, 1:] != vocab.pad_id).sum())
        with autocast():
            loss_sum += caption_loss(model, images, tokens, vocab.pad_id).item() * n
            output = model.generate(images)
        n_tokens += n
        hypotheses += [vocab.decode(row) for row in output.tokens]
        references += refs
    if dist.enabled:  # corpus metrics need every caption: gather them all
        parts = ddp.gather_objects((hypotheses, references, loss_sum, n_tokens), dist)
        hypotheses, references = [h for p in parts for h in p[0]], [r for p in parts for r in p[1]]
        loss_sum, n_tokens = sum(p[2] for p in parts), sum(p[3] for p in parts)
    scores = caption_scores(hypotheses, references) if hypotheses else \
        {"exact_match": 0.0, "bleu4": 0.0, "cider": 0.0}
    return {"loss": loss_sum / max(n_tokens, 1), **scores, "count": len(hypotheses),
            "examples": list(zip(hypotheses, references))[:5]}


def captioner_config(args) -> CaptionerConfig:
    """The config the run's --model (with --model-kwargs) names; a ConfigError unless it is a captioner."""
    entry = registry.get_entry(args.model)
    config = registry.apply_overrides(entry, dict(getattr(args, "model_kwargs", None) or {}))
    if not isinstance(config, CaptionerConfig):
        raise ConfigError(f"--task caption needs a captioner, not {entry.name} ({entry.task}); "
                          f"try --model {DEFAULTS['model']}")
    return config


class CaptionTrainer(Trainer):
    """The engine's Trainer with the captioning task's data, loss, evaluation and checkpoint extras."""

    columns = COLUMNS

    def setup_task(self) -> None:
        a = self.args
        if a.mixup > 0 or a.cutmix > 0 or a.cutmix_minmax:
            raise ConfigError("--mixup/--cutmix blend images, which no longer match their captions; "
                              "drop them for --task caption")
        config = captioner_config(a)
        self.img_size = config.encoder_config.img_size
        data = dict(data_dir=a.data_dir, seed=0, img_size=self.img_size)
        train_set = create_caption_dataset(a.dataset, "train", **data).subset(a.train_subset)
        val_set = create_caption_dataset(a.dataset, "val", **data).subset(a.val_subset)
        self.vocab = CaptionVocab.build(train_set.captions)
        self.overrides = {**(getattr(a, "model_kwargs", None) or {}), "vocab_size": len(self.vocab)}
        self.model = registry.create_model(a.model, **self.overrides).to(self.device)
        self.num_classes = len(self.vocab)
        mean, std = self.model.encoder.pretrained_cfg["mean"], self.model.encoder.pretrained_cfg["std"]
        self.transform = ImageToTensor(self.img_size, mean, std)
        self._check_batch(len(train_set))
        self.train_loader = self.caption_loader(train_set, a.batch_size, train=True)
        self.val_loader = self.caption_loader(val_set, a.validation_batch_size or a.batch_size, train=False)

    def caption_loader(self, dataset, batch_size: int, train: bool) -> DataLoader:
        a, d = self.args, self.dist
        sampler = EpochSampler(len(dataset), shuffle=train, seed=a.seed, rank=d.rank, world_size=d.world_size)
        collate = make_collate(self.vocab.pad_id, self.model.config.max_len, with_references=not train)
        return DataLoader(CaptionSamples(dataset, self.transform, self.vocab), batch_size=batch_size,
                          sampler=sampler, num_workers=a.workers, collate_fn=collate, drop_last=train,
                          pin_memory=a.pin_mem)

    def compute_loss(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return caption_loss(self.train_model, images, tokens, self.vocab.pad_id, self.args.smoothing)

    def evaluate_epoch(self) -> dict:
        return evaluate_captions(self.eval_model, self.val_loader, self.device, self.autocast, self.vocab,
                                 self.dist, self.bad)

    @staticmethod
    def metric_columns(metrics: dict) -> dict:
        return {"eval_loss": metrics["loss"], "eval_exact_match": metrics["exact_match"],
                "eval_bleu4": metrics["bleu4"], "eval_cider": metrics["cider"]}

    @staticmethod
    def score(metrics: dict) -> float:
        return metrics["exact_match"]

    @staticmethod
    def format_row(row: dict) -> str:
        return (f"epoch {row['epoch']:>3}  train_loss {row['train_loss']:.4f}  "
                f"eval_loss {row['eval_loss']:.4f}  exact {row['eval_exact_match']:.2f}  "
                f"BLEU-4 {row['eval_bleu4']:.2f}  CIDEr-D {row['eval_cider']:.3f}  lr {row['lr']:.2e}  "
                f"{row['seconds']:.1f}s")

    def describe(self) -> str:
        return f"a vocabulary of {len(self.vocab)} words"

    def meta(self, metrics: dict | None) -> dict:
        extras = {"config": dataclasses.asdict(self.model.config), "dataset": self.args.dataset,
                  "epoch": self.progress.epoch, "updates": self.progress.updates, "ema": self.ema is not None}
        scores = {} if metrics is None else self.metric_columns(metrics)
        base = caption_meta(self.args.model, self.overrides, self.vocab, self.transform)
        return {**base, **extras, **scores}

    def finish(self, metrics: dict) -> None:
        """Curves, examples, and for the shapes scenes the test and held-out-pair scores
        (caption_eval.json)."""
        if not self.dist.is_main or self.run_dir is None:
            return
        report.plot_curves(self.run_dir / "curves.png", self.progress.rows, CURVES, ylabel="%",
                           title="eval captions")
        p = self.progress
        self.log(f"done: last exact match {metrics['exact_match']:.2f}%, best {p.best_top1:.2f}% (epoch "
                 f"{p.best_epoch}); {self.run_dir}")
        for hyp, refs in metrics["examples"]:
            self.log(f"  {hyp!r}  (reference: {refs[0]!r})")
        if self.args.dataset != "shapes":
            return
        scores = {}
        for split in FINAL_SPLITS:
            # --val-subset caps these splits too, so a quick run stays quick
            dataset = create_caption_dataset("shapes", split, img_size=self.img_size)
            dataset = dataset.subset(self.args.val_subset)
            batch = self.args.validation_batch_size or self.args.batch_size
            loader = self.caption_loader(dataset, batch, train=False)
            result = evaluate_captions(self.eval_model, loader, self.device, self.autocast, self.vocab,
                                       ddp.Dist(device=self.device))
            scores[split] = {k: result[k] for k in ("exact_match", "bleu4", "cider", "count")}
            self.log(f"{split}: exact match {result['exact_match']:.2f}%  BLEU-4 {result['bleu4']:.2f}  "
                     f"CIDEr-D {result['cider']:.3f}  ({result['count']} scenes)")
        checkpoint.atomic_write_text(self.run_dir / "caption_eval.json", json.dumps(scores, indent=2) + "\n")
