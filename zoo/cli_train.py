"""`zoo train`, `zoo validate` and `zoo classify`: train an image classifier, re-evaluate it, use it."""

import argparse
import importlib
import sys

from shared.errors import ConfigError
from zoo import cli_threads
from zoo.train.args import NOT_INHERITED, add_train_arguments


def train_defaults() -> dict:
    """Every train flag's default (the digits recipe)."""
    parser = argparse.ArgumentParser(add_help=False)
    add_train_arguments(parser)
    return vars(parser.parse_args([]))


def resolve_train_args(explicit: argparse.Namespace) -> argparse.Namespace:
    """Defaults, then (with --resume) the resumed run's args.yaml, then the flags given on the command
    line."""
    from zoo.train import checkpoint, report

    given = {k: v for k, v in vars(explicit).items() if k not in ("func", "command", "debug")}
    values = train_defaults()
    saved = {}
    if given.get("resume"):
        saved = report.read_args(checkpoint.run_dir_of(checkpoint.find(given["resume"], ("last",))))
    task = given.get("task", saved.get("task"))
    if task in TASK_DEFAULTS:  # the task's own recipe replaces the classification defaults
        values.update(importlib.import_module(TASK_DEFAULTS[task]).DEFAULTS)
    if saved:
        values.update({k: v for k, v in saved.items() if k in values and k not in NOT_INHERITED})
    values.update(given)
    return argparse.Namespace(**values)


# --task -> the module whose DEFAULTS replace the classification ones (and whose Trainer runs it)
TASK_DEFAULTS = {"caption": "zoo.train.caption", "autoencoder": "zoo.train.autoencoder",
                 "text-to-image": "zoo.train.imagine", "text-to-music": "zoo.train.compose"}


def train_tasks() -> dict[str, type]:
    """--task -> the Trainer that runs it: the engine's own for classification, a subclass for another task."""
    from zoo.train.autoencoder import AutoencoderTrainer
    from zoo.train.caption import CaptionTrainer
    from zoo.train.compose import ComposeTrainer
    from zoo.train.engine import Trainer
    from zoo.train.imagine import ImagineTrainer

    return {"classification": Trainer, "caption": CaptionTrainer, "autoencoder": AutoencoderTrainer,
            "text-to-image": ImagineTrainer, "text-to-music": ComposeTrainer}


def train(args: argparse.Namespace):
    """Run `zoo train` with resolved args (resolve_train_args); returns the run folder (on the main process)."""
    from zoo.train import engine

    tasks = train_tasks()
    if args.task not in tasks:
        raise ConfigError(f"unknown --task {args.task!r}; use {' or '.join(tasks)}")
    return engine.train(args, tasks[args.task])


def run_train(args) -> int:
    train(resolve_train_args(args))
    return 0


def run_validate(args) -> int:
    from zoo.train.inference import load_classifier, validate

    clf = load_classifier(args.checkpoint, args.model, use_ema=not args.no_ema, device=args.device)
    cli_threads.start_threads("validate", args.threads)
    metrics = validate(clf, {"data_dir": args.data_dir}, batch_size=args.batch_size, workers=args.workers)
    print(f"{clf.folder} ({clf.weights_file}): {metrics['count']} images  top-1 {metrics['top1']:.2f}%  "
          f"top-5 {metrics['top5']:.2f}%  loss {metrics['loss']:.4f}")
    return 0


def run_classify(args) -> int:
    from zoo.train.inference import classify_files, load_classifier

    clf = load_classifier(args.checkpoint, args.model, use_ema=not args.no_ema, device=args.device)
    cli_threads.start_threads("classify", args.threads)
    failed = 0
    for path, result in classify_files(clf, args.images, topk=args.topk):
        if isinstance(result, Exception):
            failed += 1
            print(f"zoo classify: skipped {result}", file=sys.stderr)
            continue
        print(f"{path}: " + ", ".join(f"{label} {p:.4f}" for label, p in result))
    if failed:
        print(f"zoo classify: {failed} of {len(args.images)} file(s) could not be read", file=sys.stderr)
        return 1
    return 0


def _use_arguments(p) -> None:
    p.add_argument("--checkpoint", required=True, help="run folder (uses best/) or a checkpoint folder")
    p.add_argument("--model", default=None, help="fail unless the checkpoint is of this model")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights, not the EMA ones")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when present)")
    cli_threads.add_argument(p)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train an image classifier (default: a ViT on the digits)",
                              description="Train an image classifier. With no flags: the digits recipe.",
                              argument_default=argparse.SUPPRESS)
    add_train_arguments(p)
    for action in p._actions:  # only the flags actually given reach run_train; it fills in the rest
        action.default = argparse.SUPPRESS
    p.set_defaults(func=run_train)

    p = subparsers.add_parser("validate", help="re-evaluate a trained checkpoint on its dataset")
    _use_arguments(p)
    p.add_argument("--data-dir", default=None, help="dataset folder, if not the one recorded in args.yaml")
    p.add_argument("-b", "--batch-size", type=int, default=64)
    p.add_argument("-j", "--workers", type=int, default=0)
    p.set_defaults(func=run_validate)

    p = subparsers.add_parser("classify", help="label image files with a trained checkpoint")
    p.add_argument("images", nargs="+", help="image files")
    _use_arguments(p)
    p.add_argument("--topk", type=int, default=5, help="labels to print per image")
    p.set_defaults(func=run_classify)
