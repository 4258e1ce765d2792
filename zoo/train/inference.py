"""Using a `zoo train` checkpoint: rebuild its model, classify image files, re-evaluate its dataset."""

import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from shared.errors import InputError, WeightsError
from shared.inference import prepare_for_inference
from vision.datasets import create_dataset, load_image
from zoo import registry
from zoo.train import checkpoint, ddp, report
from zoo.train.data import BadImageCounter, DataConfig, EpochSampler, Transformed, collate
from zoo.train.engine import evaluate


@dataclass
class Classifier:
    """A trained model with its class names and the preprocessing it was trained with."""

    model: torch.nn.Module
    classes: list[str]
    data: DataConfig
    meta: dict
    folder: Path
    weights_file: str

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def load_classifier(path: str | Path, model_name: str | None = None, use_ema: bool = True,
                    device: str | None = None) -> Classifier:
    """Rebuild the model a checkpoint (or a run folder's best) holds.

    model_name: when given, the checkpoint must be of that model (ConfigError otherwise). The weights are
    checked key by key and shape by shape (WeightsError naming the first mismatch).
    """
    folder = checkpoint.find(path)
    meta = checkpoint.read_meta(folder)
    if model_name is not None:
        checkpoint.check_same_model(meta, model_name, folder)
    model = registry.create_model(meta["model"], **meta.get("model_overrides", {}))
    weights_file = checkpoint.load_weights(model, folder, ema=use_ema)
    prepare_for_inference(model.to(ddp.pick_device(device)).eval())
    return Classifier(model, list(meta["classes"]), DataConfig(**meta["data"]), meta, folder, weights_file)


@torch.no_grad()
def classify_files(clf: Classifier, files: list[str], topk: int = 5, batch_size: int = 32):
    """Yield (file, [(label, probability), ...] best first) or (file, InputError) for each file, in order."""
    transform = clf.data.eval_transform()
    k = max(1, min(topk, len(clf.classes)))
    for start in range(0, len(files), batch_size):
        chunk, tensors, results = files[start:start + batch_size], [], {}
        for f in chunk:
            try:
                image = load_image(f)
                tensors.append((f, transform(image.convert("L") if clf.data.in_chans == 1 else image)))
            except InputError as err:
                results[f] = err
        if tensors:
            batch = torch.stack([t for _, t in tensors]).to(clf.device)  # (B, C, H, W)
            probs = clf.model(batch).float().softmax(dim=-1)
            values, indices = probs.topk(k, dim=-1)
            for (f, _), vals, idx in zip(tensors, values.tolist(), indices.tolist()):
                results[f] = [(clf.classes[i], v) for i, v in zip(idx, vals)]
        for f in chunk:
            yield f, results[f]


def validate(clf: Classifier, args_override: dict | None = None, batch_size: int = 64, workers: int = 0):
    """Re-evaluate on the validation split recorded in the run's args.yaml; returns the metrics dict.
    Images that fail to decode are reported by name on stderr and left out of the count."""
    run_args = report.read_args(checkpoint.run_dir_of(clf.folder)) or {"dataset": clf.meta.get("dataset")}
    run_args.update({k: v for k, v in (args_override or {}).items() if v is not None})
    dataset = create_dataset(run_args["dataset"], "val", run_args.get("data_dir"))
    dataset = dataset.subset(run_args.get("val_subset"))
    if list(dataset.classes) != clf.classes:
        raise InputError(f"the {run_args['dataset']} validation classes ({len(dataset.classes)}) are not the "
                         f"{len(clf.classes)} the checkpoint was trained on; pass the --data-dir it used")
    loader = torch.utils.data.DataLoader(
        Transformed(dataset, clf.data.eval_transform(), clf.data.in_chans == 1), batch_size=batch_size,
        sampler=EpochSampler(len(dataset), shuffle=False), num_workers=workers, collate_fn=collate)
    bad = BadImageCounter(limit=len(dataset), report=lambda message: print(message, file=sys.stderr))
    return evaluate(clf.model, loader, clf.device, nullcontext, len(clf.classes), ddp.Dist(device=clf.device),
                    bad)


def load_task_model(path: str | Path, task: str, use_ema: bool = True, device: str | None = None):
    """(model, meta, folder, weights file) of a `zoo train --task TASK` checkpoint or run folder: the registered
    model rebuilt with the run's overrides, its weights loaded, in eval mode on `device` (default: cuda when
    present); a checkpoint of another task is one WeightsError."""
    folder = checkpoint.find(path)
    meta = checkpoint.read_meta(folder)
    if meta.get("task") != task or "vocab" not in meta:
        raise WeightsError(f"{folder} is not a {task} checkpoint (it was trained for "
                           f"{meta.get('task', 'classification')}); train one with `zoo train --task {task}`")
    model = registry.create_model(meta["model"], **meta.get("model_overrides", {}))
    used = checkpoint.load_weights(model, folder, ema=use_ema)
    return model.to(ddp.pick_device(device)).eval(), meta, folder, used
