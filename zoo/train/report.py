"""What a run leaves for people to read: args.yaml, summary.csv, the curves and the confusion matrix."""

import csv
import io
from pathlib import Path

import yaml

from zoo.train.checkpoint import atomic_write, atomic_write_text

COLUMNS = ("epoch", "train_loss", "eval_loss", "eval_top1", "eval_top5", "lr", "seconds")


def write_args(run_dir: Path, args: dict) -> None:
    atomic_write_text(Path(run_dir) / "args.yaml", yaml.safe_dump(args, sort_keys=True))


def read_args(run_dir: Path) -> dict:
    path = Path(run_dir) / "args.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else {}


def write_summary(run_dir: Path, rows: list[dict], columns: tuple[str, ...] = COLUMNS) -> None:
    """Rewrite summary.csv from all rows so far (the rows travel in the checkpoint, so a resumed run never
    duplicates or loses a line)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row[k] for k in columns})
    atomic_write_text(Path(run_dir) / "summary.csv", out.getvalue())


def format_row(row: dict) -> str:
    return (f"epoch {row['epoch']:>3}  train_loss {row['train_loss']:.4f}  eval_loss {row['eval_loss']:.4f}  "
            f"top1 {row['eval_top1']:.2f}  top5 {row['eval_top5']:.2f}  lr {row['lr']:.2e}  "
            f"{row['seconds']:.1f}s")


def _figure():
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    return plt


CURVES = {"top-1": "eval_top1", "top-5": "eval_top5"}


def plot_curves(path: Path, rows: list[dict], curves: dict[str, str] = CURVES, ylabel: str = "accuracy (%)",
                title: str = "eval accuracy") -> None:
    """Losses (left) and the evaluation's curves (right; label -> summary column, in %) per epoch."""
    if not rows:
        return
    plt = _figure()
    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r["train_loss"] for r in rows], label="train")
    if "eval_loss" in rows[0]:
        ax_loss.plot(epochs, [r["eval_loss"] for r in rows], label="eval")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    for label, column in curves.items():
        ax_acc.plot(epochs, [r[column] for r in rows], label=label)  # None (not measured) leaves a gap
    ax_acc.set(xlabel="epoch", ylabel=ylabel, title=title)
    ax_acc.legend()
    fig.tight_layout()
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def plot_confusion(path: Path, confusion, classes: list[str]) -> None:
    """Rows are true classes, columns predictions; counts written in the cells when they fit."""
    plt = _figure()
    matrix = confusion.cpu().numpy() if hasattr(confusion, "cpu") else confusion
    n = len(classes)
    size = min(4 + 0.4 * n, 20)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ticks = range(n) if n <= 50 else []
    ax.set_xticks(list(ticks), [classes[i] for i in ticks], rotation=90)
    ax.set_yticks(list(ticks), [classes[i] for i in ticks])
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    if n <= 20:
        top = matrix.max() or 1
        for i in range(n):
            for j in range(n):
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if matrix[i, j] > top / 2 else "black")
    fig.tight_layout()
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
