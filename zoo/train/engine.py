"""The `zoo train` loop: any classifier with timm's contract, trained with timm's optimizer, schedule, EMA,
Mixup and losses; evaluated every epoch; checkpointed so that a killed run resumes where it stopped."""

import dataclasses
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from shared.errors import ConfigError
from shared.threads import recheck_threads, use_threads
from zoo import registry
from zoo.train import checkpoint, data, ddp, report
from zoo.train.seeding import seed_everything, set_deterministic


def build_model(args, num_classes: int) -> torch.nn.Module:
    """The registered model with this run's classes, input size and regularisation."""
    return registry.create_model(args.model, **model_overrides(args, num_classes))


def model_overrides(args, num_classes: int) -> dict:
    overrides = {**(args.model_kwargs or {}), "num_classes": num_classes, "img_size": args.img_size,
                 "in_chans": args.in_chans}
    if args.drop_path is not None:
        overrides["drop_path_rate"] = args.drop_path
    if args.drop is not None:
        overrides["drop_rate"] = args.drop
    return overrides


def autocast_for(args, device: torch.device):
    """(autocast context factory, GradScaler or None): bf16 on CPU, fp16 with a scaler on CUDA."""
    if not args.amp:
        return nullcontext, None
    name = args.amp_dtype or ("float16" if device.type == "cuda" else "bfloat16")
    if name not in ("float16", "bfloat16"):
        raise ConfigError(f"--amp-dtype {name!r}: use float16 or bfloat16")
    dtype = getattr(torch, name)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    return (lambda: torch.autocast(device_type=device.type, dtype=dtype)), scaler


def create_loss(args, mixup):
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if mixup is not None:
        return SoftTargetCrossEntropy()  # Mixup already folds label smoothing into its soft targets
    if args.smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=args.smoothing)
    return torch.nn.CrossEntropyLoss()


@dataclasses.dataclass
class Progress:
    """Everything about where the run is that a checkpoint must carry (besides tensors and RNG)."""

    epoch: int = 0           # the epoch being trained (0-based); == epochs when done
    batch: int = 0           # batches of that epoch already trained
    updates: int = 0         # optimizer steps so far
    loss_sum: float = 0.0    # train loss summed over the samples of this epoch so far
    loss_count: int = 0
    seconds: float = 0.0     # time spent in this epoch before the last interruption
    best_top1: float = -1.0
    best_epoch: int = -1
    rows: list = dataclasses.field(default_factory=list)


@torch.no_grad()
def evaluate(model, loader, device, autocast, num_classes: int, dist: ddp.Dist, bad=None) -> dict:
    """Loss, top-1 and top-5 (%) and the (C, C) confusion matrix over the loader, summed over processes."""
    model.eval()
    k = min(5, num_classes)
    totals = torch.zeros(4, dtype=torch.float64)  # loss sum, top-1 hits, top-k hits, count
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64)
    for images, targets, bad_items in loader:
        if bad is not None:
            bad.add(bad_items)
        if images is None:
            continue
        images, targets = images.to(device), targets.to(device)
        with autocast():
            logits = model(images)
        logits = logits.float()
        top = logits.topk(k, dim=1).indices  # (B, k)
        hits = top == targets[:, None]
        totals += torch.tensor([F.cross_entropy(logits, targets, reduction="sum").item(),
                                hits[:, 0].sum().item(), hits.any(dim=1).sum().item(), len(targets)],
                               dtype=torch.float64)
        confusion += torch.bincount((targets * num_classes + top[:, 0]).cpu(), minlength=num_classes ** 2)
    totals = ddp.all_sum(totals.to(device), dist).cpu()
    confusion = ddp.all_sum(confusion.to(device), dist).cpu()
    n = max(totals[3].item(), 1.0)
    return {"loss": totals[0].item() / n, "top1": 100.0 * totals[1].item() / n,
            "top5": 100.0 * totals[2].item() / n, "count": int(totals[3].item()),
            "confusion": confusion.view(num_classes, num_classes)}


class Trainer:
    """One training run. `run()` trains to --epochs and returns the run folder."""

    def __init__(self, args, dist: ddp.Dist, run_dir: Path | None):
        self.args, self.dist, self.run_dir, self.device = args, dist, run_dir, dist.device
        if args.deterministic:
            set_deterministic()
        seed_everything(args.seed)
        self.bad = data.BadImageCounter(args.max_bad_images, self.log)
        self.setup_task()
        self.batches_per_epoch = len(self.train_loader.sampler) // args.batch_size
        self.updates_per_epoch = math.ceil(self.batches_per_epoch / args.grad_accum_steps)
        self._build_optimization()
        self.progress = Progress()
        seed_everything(args.seed + dist.rank)  # model init was shared; per-process randomness from here on

    # --- the task: what classification does here, another task (zoo.train.caption) overrides ------------

    columns = report.COLUMNS  # of summary.csv

    def setup_task(self) -> None:
        """The run's datasets, model and loaders (model, train_loader, val_loader and num_classes)."""
        args, dist = self.args, self.dist
        train_set, val_set = data.load_datasets(args)
        self.classes = list(train_set.classes)
        self.num_classes = len(self.classes)
        self.model = build_model(args, self.num_classes).to(self.device)
        self.data_config = data.resolve_data_config(args, self.model)
        self._check_batch(len(train_set))
        self.train_loader = data.make_loader(train_set, data.train_transform(args, self.data_config), args,
                                             args.batch_size, True, dist.rank, dist.world_size)
        self.val_loader = data.make_loader(val_set, self.data_config.eval_transform(), args,
                                           args.validation_batch_size or args.batch_size, False, dist.rank,
                                           dist.world_size)

    def compute_loss(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.criterion(self.train_model(images), targets)

    def evaluate_epoch(self) -> dict:
        return evaluate(self.eval_model, self.val_loader, self.device, self.autocast, self.num_classes,
                        self.dist, self.bad)

    @staticmethod
    def metric_columns(metrics: dict) -> dict:
        """The evaluation's columns of summary.csv."""
        return {"eval_loss": metrics["loss"], "eval_top1": metrics["top1"], "eval_top5": metrics["top5"]}

    @staticmethod
    def score(metrics: dict) -> float:
        """What picks the best checkpoint (higher is better)."""
        return metrics["top1"]

    @staticmethod
    def format_row(row: dict) -> str:
        return report.format_row(row)

    def describe(self) -> str:
        return f"{self.num_classes} classes"

    def finish(self, metrics: dict | None) -> None:
        """After the last epoch, on the main process: curves, confusion matrix, the closing line."""
        report.plot_curves(self.run_dir / "curves.png", self.progress.rows)
        report.plot_confusion(self.run_dir / "confusion_matrix.png", metrics["confusion"], self.classes)
        p = self.progress
        self.log(f"done: last top-1 {metrics['top1']:.2f}%, best {p.best_top1:.2f}% (epoch "
                 f"{p.best_epoch}); {self.run_dir}")

    def log(self, message: str) -> None:
        if self.dist.is_main:
            tqdm.write(message)

    def _check_batch(self, n_train: int) -> None:
        a = self.args
        per_process = math.ceil(n_train / self.dist.world_size)
        if a.batch_size > per_process:
            raise ConfigError(f"batch size {a.batch_size} is more than the {per_process} training images "
                              f"each process gets; lower -b")
        if a.grad_accum_steps < 1:
            raise ConfigError("--grad-accum-steps must be at least 1")
        if (a.mixup > 0 or a.cutmix > 0 or a.cutmix_minmax) and a.batch_size % 2:
            raise ConfigError(f"Mixup/CutMix pair up samples: -b must be even, got {a.batch_size}")

    def _build_optimization(self) -> None:
        from timm.optim import create_optimizer_v2
        from timm.scheduler import create_scheduler_v2
        from timm.utils import ModelEmaV3

        a = self.args
        opt_kwargs = {k: v for k, v in (("eps", a.opt_eps), ("betas", a.opt_betas)) if v is not None}
        if a.opt_betas is not None:
            opt_kwargs["betas"] = tuple(a.opt_betas)
        if fused_optimizer(a.opt):
            opt_kwargs["fused"] = True
        self.optimizer = create_optimizer_v2(self.model, opt=a.opt, lr=a.lr, weight_decay=a.weight_decay,
                                             momentum=a.momentum, layer_decay=a.layer_decay, **opt_kwargs)
        self.scheduler, _ = create_scheduler_v2(
            self.optimizer, sched=a.sched, num_epochs=a.epochs, warmup_epochs=a.warmup_epochs,
            warmup_lr=a.warmup_lr, min_lr=a.min_lr, cooldown_epochs=a.cooldown_epochs,
            step_on_epochs=not a.sched_on_updates, updates_per_epoch=self.updates_per_epoch)
        self.ema = ModelEmaV3(self.model, decay=a.model_ema_decay, use_warmup=a.model_ema_warmup) \
            if a.model_ema else None
        self.autocast, self.scaler = autocast_for(a, self.device)
        self.mixup = data.create_mixup(a, self.num_classes)
        self.criterion = create_loss(a, self.mixup).to(self.device)
        self.train_model = self.model
        if a.torchcompile:
            self.train_model = torch.compile(self.model, backend=a.torchcompile)
        self.train_model = ddp.wrap(self.train_model, self.dist)

    @property
    def eval_model(self) -> torch.nn.Module:
        """What is evaluated, saved as best and classified with: the EMA weights when kept."""
        return self.ema.module if self.ema is not None else self.model

    # --- checkpoints -------------------------------------------------------------------------------------

    def meta(self, metrics: dict | None) -> dict:
        config = getattr(self.model, "config", None)
        return {
            "model": self.args.model, "model_overrides": model_overrides(self.args, self.num_classes),
            "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else None,
            "classes": self.classes, "data": dataclasses.asdict(self.data_config),
            "dataset": self.args.dataset,
            "epoch": self.progress.epoch, "updates": self.progress.updates, "ema": self.ema is not None,
            "eval_top1": None if metrics is None else metrics["top1"],
        }

    def save(self, name: str, metrics: dict | None, best: bool) -> None:
        rng = ddp.gather_objects(checkpoint.rng_state(), self.dist)  # every process draws its own numbers
        if not self.dist.is_main or self.run_dir is None:
            return
        state = {
            "progress": dataclasses.asdict(self.progress), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "rng": rng,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }
        checkpoint.save(self.run_dir, name, self.model, self.eval_model if self.ema else None,
                        self.meta(metrics), state, best)

    def resume(self, path: str | Path) -> None:
        folder = checkpoint.find(path, prefer=("last",))
        checkpoint.check_same_model(checkpoint.read_meta(folder), self.args.model, folder)
        checkpoint.load_weights(self.model, folder, ema=False)
        if self.ema is not None:
            if not (folder / checkpoint.EMA).is_file():
                raise ConfigError(f"{folder} has no EMA weights to resume --model-ema from; "
                                  f"add --no-model-ema")
            checkpoint.load_weights(self.ema.module, folder, ema=True)
        state = checkpoint.load_state(folder)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.progress = Progress(**state["progress"])
        rng = state["rng"]  # one per process of the interrupted run; a process it did not have takes rank 0's
        checkpoint.set_rng_state(rng[self.dist.rank] if self.dist.rank < len(rng) else rng[0])
        if self.dist.is_main and self.run_dir is not None:
            checkpoint.clean(self.run_dir)
            report.write_summary(self.run_dir, self.progress.rows, self.columns)
        self.log(f"resumed from {folder} at epoch {self.progress.epoch + 1}, batch {self.progress.batch} "
                 f"({self.progress.updates} updates)")

    # --- the loop ----------------------------------------------------------------------------------------

    def run(self) -> dict | None:
        """Train the remaining epochs; returns the last evaluation (None if there was nothing left to do)."""
        metrics = None
        while self.progress.epoch < self.args.epochs:
            start = time.perf_counter() - self.progress.seconds
            self.train_epoch(start)
            metrics = self.evaluate_epoch()
            p = self.progress
            row = {"epoch": p.epoch + 1, "train_loss": p.loss_sum / max(p.loss_count, 1),
                   **self.metric_columns(metrics), "lr": max(g["lr"] for g in self.optimizer.param_groups),
                   "seconds": time.perf_counter() - start}
            p.rows.append(row)
            best = self.score(metrics) > p.best_top1  # best_top1 holds the task's score
            if best:
                p.best_top1, p.best_epoch = self.score(metrics), p.epoch + 1
            p.epoch, p.batch, p.loss_sum, p.loss_count, p.seconds = p.epoch + 1, 0, 0.0, 0, 0.0
            self.scheduler.step(p.epoch)
            self.save(f"epoch{p.epoch:04d}", metrics, best)
            if self.dist.is_main and self.run_dir is not None:
                report.write_summary(self.run_dir, p.rows, self.columns)
            self.log(self.format_row(row))
        self.metrics = metrics
        return metrics

    def train_epoch(self, start: float) -> None:
        a, p = self.args, self.progress
        self.train_model.train()
        if self.mixup is not None and a.mixup_off_epoch and p.epoch >= a.mixup_off_epoch:
            self.mixup.mixup_enabled = False
        sampler = self.train_loader.sampler
        sampler.set_epoch(p.epoch, skip=p.batch * a.batch_size)
        bar = tqdm(total=self.batches_per_epoch, initial=p.batch, desc=f"epoch {p.epoch + 1}/{a.epochs}",
                   disable=a.no_progress or not self.dist.is_main, leave=False, dynamic_ncols=True)
        for images, targets, bad in self.train_loader:
            if p.batch >= self.batches_per_epoch:
                break
            self.bad.add(bad)
            if images is not None:
                self.train_step(images, targets)
            p.batch += 1
            bar.update(1)
            if p.loss_count:
                bar.set_postfix(loss=f"{p.loss_sum / p.loss_count:.4f}", refresh=False)
            last = p.batch == self.batches_per_epoch
            if p.batch % a.grad_accum_steps == 0 or last:
                self.optimizer_step()
                if not a.deterministic:  # a deterministic run keeps one count: reductions split by it
                    recheck_threads()  # at most once a second: other work may have come or gone
                if a.save_interval and p.updates % a.save_interval == 0 and not last:
                    p.seconds = time.perf_counter() - start
                    self.save(f"epoch{p.epoch:04d}-update{p.updates:07d}", None, False)
        bar.close()

    def train_step(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        a, p = self.args, self.progress
        images = images.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        if self.mixup is not None:
            if len(images) % 2:  # a skipped bad image left an odd batch; Mixup needs pairs
                images, targets = images[:-1], targets[:-1]
            images, targets_in = self.mixup(images, targets)
        else:
            targets_in = targets
        accumulate = (p.batch + 1) % a.grad_accum_steps != 0 and p.batch + 1 != self.batches_per_epoch
        sync = self.train_model.no_sync() if self.dist.enabled and accumulate else nullcontext()
        with sync:
            with self.autocast():
                loss = self.compute_loss(images, targets_in)
            scaled = loss / a.grad_accum_steps
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        p.loss_sum += loss.item() * len(images)
        p.loss_count += len(images)

    def optimizer_step(self) -> None:
        from timm.utils import dispatch_clip_grad

        a, p = self.args, self.progress
        if self.scaler is not None:
            if a.clip_grad:
                self.scaler.unscale_(self.optimizer)
                dispatch_clip_grad(self.model.parameters(), a.clip_grad, mode=a.clip_mode)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            if a.clip_grad:
                dispatch_clip_grad(self.model.parameters(), a.clip_grad, mode=a.clip_mode)
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        p.updates += 1
        if self.ema is not None:
            self.ema.update(self.model, step=p.updates)
        self.scheduler.step_update(num_updates=p.updates)


def fused_optimizer(name: str) -> bool:
    """Whether timm's `name` is one of torch's optimizers with a fused kernel, which updates every parameter in
    one pass instead of a Python loop over them (a quarter of a small model's training step on the CPU)."""
    from timm.optim import get_optimizer_class

    try:
        cls = get_optimizer_class(name, bind_defaults=False)
    except ValueError:  # a prefixed or unknown name: create_optimizer_v2 reports it
        return False
    return cls in (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD)


def default_run_dir(args) -> Path:
    if args.output:
        return Path(args.output)
    name = args.experiment or f"{time.strftime('%Y%m%d-%H%M%S')}-{args.model}"
    return Path("output") / "train" / name


def train(args, trainer_class: type[Trainer] = Trainer) -> Path | None:
    """Run `zoo train` with parsed args and the task's Trainer (the engine's own classification one, or a
    subclass); returns the run folder (on the main process)."""
    if args.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before CUDA starts, for cuBLAS
    dist = ddp.setup(args.device)
    try:
        return _train(args, trainer_class, dist)
    finally:
        ddp.teardown(dist)  # after _train returned: its trainer no longer holds the process group


def _train(args, trainer_class: type[Trainer], dist: ddp.Dist) -> Path | None:
    """The run; its trainer (with the DDP model, which holds the process group) lives in this frame only."""
    # Each process decides for itself; the processes on this machine divide its free cores among them.
    threads = use_threads(getattr(args, "threads", None), log=_log_threads if dist.is_main else None)
    run_dir = None
    if dist.is_main:
        run_dir = checkpoint.run_dir_of(checkpoint.find(args.resume, ("last",))) \
            if args.resume and not args.output else default_run_dir(args)
        run_dir.mkdir(parents=True, exist_ok=True)
    trainer = trainer_class(args, dist, run_dir)
    if args.resume:
        trainer.resume(args.resume)
    if dist.is_main:
        report.write_args(run_dir, {**{k: (list(v) if isinstance(v, tuple) else v)
                                       for k, v in vars(args).items() if k not in ("func",)},
                                    "threads_used": str(threads)})
        n_train, n_val = len(trainer.train_loader.dataset), len(trainer.val_loader.dataset)
        trainer.log(f"run folder: {run_dir}  ({trainer.describe()}, {n_train} train / "
                    f"{n_val} val images, device {dist.device}, {dist.world_size} process(es), {threads})")
    metrics = trainer.run()
    if metrics is None:  # resumed a finished run: evaluate once more for the final report
        metrics = trainer.evaluate_epoch()
    if dist.is_main:
        trainer.finish(metrics)
    ddp.barrier(dist)
    return run_dir


def _log_threads(message: str) -> None:
    tqdm.write(f"threads: {message}")
