"""`zoo train` flags, named as in timm's train.py. Their defaults are the digits recipe, so a bare `zoo train`
trains the default model on scikit-learn's digits and reaches the figure quoted in the README."""

import argparse
import ast

DEFAULT_MODEL = "vit_digits_patch4_16"


class KeyValues(argparse.Action):
    """`key=value ...` into a dict; values read as Python literals (numbers, True, tuples), else strings."""

    def __call__(self, parser, namespace, values, option_string=None):
        out = {}
        for item in values:
            key, sep, value = item.partition("=")
            if not sep:
                parser.error(f"{option_string}: expected key=value, got {item!r}")
            try:
                out[key] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                out[key] = value
        setattr(namespace, self.dest, out)


def _floats(n: int):
    return dict(type=float, nargs=n, metavar="F")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """Add every training flag to `p` (defaults: the digits recipe)."""
    g = p.add_argument_group("model and data")
    g.add_argument("--task", default="classification",
                   choices=("classification", "caption", "autoencoder", "text-to-image", "text-to-music"),
                   help="what to train: an image classifier, a captioner, the autoencoder of text-to-image, "
                        "text-to-image (these three default to their shapes recipes) or text-to-music (the melodies "
                        "recipe)")
    g.add_argument("--autoencoder", default=None, metavar="RUN_DIR",
                   help="text-to-image: the `--task autoencoder` run (or a text-to-image run, for its autoencoder) "
                        "whose latents the model learns to draw (default: the shipped model's)")
    g.add_argument("--model", default=DEFAULT_MODEL, help=f"registered model name (default: {DEFAULT_MODEL})")
    g.add_argument("--dataset", default="digits", help="digits | imagefolder | cifar10 | cifar100")
    g.add_argument("--data-dir", default=None, help="dataset folder (imagefolder: DIR/train and DIR/val)")
    g.add_argument("--dataset-download", action="store_true", help="fetch CIFAR into --data-dir if missing")
    g.add_argument("--train-subset", type=int, default=None, help="train on a fixed random subset of N")
    g.add_argument("--val-subset", type=int, default=None, help="evaluate on a fixed random subset of N")
    g.add_argument("--img-size", type=int, default=16, help="input image size (default: 16)")
    g.add_argument("--in-chans", type=int, default=3, help="input channels (1 converts images to grayscale)")
    g.add_argument("--mean", **_floats("+"), default=None, help="normalisation mean (default: the model's)")
    g.add_argument("--std", **_floats("+"), default=None, help="normalisation std (default: the model's)")
    g.add_argument("--interpolation", default="bilinear", help="resize interpolation")
    g.add_argument("--crop-pct", type=float, default=1.0, help="eval centre-crop fraction")
    g.add_argument("--model-kwargs", nargs="*", default={}, action=KeyValues,
                   help="more config overrides for the model, e.g. depth=6 dim=128")
    g.add_argument("--drop", type=float, default=None, help="dropout rate (the model's drop_rate)")
    g.add_argument("--drop-path", type=float, default=0.05, help="stochastic depth rate (drop_path_rate)")
    g.add_argument("-b", "--batch-size", type=int, default=32, help="batch size per process")
    g.add_argument("-vb", "--validation-batch-size", type=int, default=None, help="eval batch size")
    g.add_argument("-j", "--workers", type=int, default=0, help="data loading processes (0: in the main one)")
    g.add_argument("--pin-mem", action="store_true", help="pin loader memory (CUDA)")
    g.add_argument("--max-bad-images", type=int, default=10,
                   help="stop with an error once more than this many images failed to decode")

    g = p.add_argument_group("optimizer and schedule")
    g.add_argument("--opt", default="adamw", help="optimizer name for timm's create_optimizer_v2")
    g.add_argument("--opt-eps", type=float, default=None)
    g.add_argument("--opt-betas", **_floats("+"), default=None)
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--lr", type=float, default=2e-3, help="learning rate")
    g.add_argument("--weight-decay", type=float, default=0.05)
    g.add_argument("--layer-decay", type=float, default=None, help="layer-wise lr decay (e.g. 0.75)")
    g.add_argument("--clip-grad", type=float, default=1.0, help="gradient clipping value (0: off)")
    g.add_argument("--clip-mode", default="norm", help="norm | value | agc")
    g.add_argument("--grad-accum-steps", type=int, default=1, help="micro-batches per optimizer step")
    g.add_argument("--sched", default="cosine", help="timm scheduler name")
    g.add_argument("--sched-on-updates", action=argparse.BooleanOptionalAction, default=True,
                   help="step the schedule every update rather than every epoch")
    g.add_argument("--epochs", type=int, default=70)
    g.add_argument("--warmup-epochs", type=int, default=10)
    g.add_argument("--warmup-lr", type=float, default=1e-5)
    g.add_argument("--min-lr", type=float, default=1e-5)
    g.add_argument("--cooldown-epochs", type=int, default=0)

    g = p.add_argument_group("augmentation and regularisation")
    g.add_argument("--scale", **_floats(2), default=(0.75, 1.0), help="random-resized-crop area range")
    g.add_argument("--ratio", **_floats(2), default=(0.8, 1.25), help="random-resized-crop aspect range")
    g.add_argument("--hflip", type=float, default=0.0, help="horizontal flip probability")
    g.add_argument("--vflip", type=float, default=0.0)
    g.add_argument("--color-jitter", type=float, default=None)
    g.add_argument("--aa", default="rand-m4-mstd0.5-inc1", help="RandAugment policy, e.g. rand-m9-mstd0.5")
    g.add_argument("--reprob", type=float, default=0.0, help="random erasing probability")
    g.add_argument("--remode", default="pixel")
    g.add_argument("--recount", type=int, default=1)
    g.add_argument("--mixup", type=float, default=0.0, help="mixup alpha (0: off)")
    g.add_argument("--cutmix", type=float, default=0.0, help="cutmix alpha (0: off)")
    g.add_argument("--cutmix-minmax", **_floats(2), default=None)
    g.add_argument("--mixup-prob", type=float, default=1.0)
    g.add_argument("--mixup-switch-prob", type=float, default=0.5)
    g.add_argument("--mixup-mode", default="batch")
    g.add_argument("--mixup-off-epoch", type=int, default=0, help="turn mixup off from this epoch (0: never)")
    g.add_argument("--smoothing", type=float, default=0.1, help="label smoothing")
    g.add_argument("--model-ema", action=argparse.BooleanOptionalAction, default=True,
                   help="keep an EMA of the weights; it is what gets evaluated and saved as best")
    g.add_argument("--model-ema-decay", type=float, default=0.995)
    g.add_argument("--model-ema-warmup", action=argparse.BooleanOptionalAction, default=True)

    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--deterministic", action="store_true",
                   help="deterministic algorithms: a resumed run ends bit-identical to an unbroken one")
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, default=False,
                   help="mixed precision (bf16 on CPU, fp16 on CUDA); --no-amp turns off a recipe's own")
    g.add_argument("--amp-dtype", default=None, help="float16 | bfloat16 (default by device)")
    g.add_argument("--torchcompile", nargs="?", const="inductor", default=None, help="torch.compile backend")
    g.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda when present)")
    g.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads per process (default: the allowed cores that no other work keeps busy, "
                        "shared by the processes on this machine, re-checked as the run goes; ZOO_NUM_THREADS "
                        "and OMP_NUM_THREADS also set it)")
    g.add_argument("--output", default=None, help="run folder (default: output/train/<time>-<model>)")
    g.add_argument("--experiment", default=None, help="run folder name under output/train")
    g.add_argument("--resume", default=None, help="run folder or checkpoint to continue")
    g.add_argument("--save-interval", type=int, default=0,
                   help="also checkpoint every N optimizer steps inside an epoch (0: at epoch ends only)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


# Flags that describe where and how a run writes, not what it trains; --resume never inherits these.
NOT_INHERITED = {"resume", "output", "experiment", "no_progress", "device", "workers", "threads", "debug",
                 "func", "command"}
