"""`zoo train --task caption` on the training engine: summary, checkpoint extras, resume, and learning."""

import argparse
import csv
import json

import pytest
import torch

from shared.errors import ConfigError
from vision.shapes import ShapesDataset
from zoo.cli_train import resolve_train_args, train
from zoo.train import checkpoint
from zoo.train.caption_inference import load_captioner

TINY = dict(task="caption", model="captioner_test", dataset="shapes", train_subset=64, val_subset=16,
            epochs=1, batch_size=16, no_progress=True)


def _train(tmp_path, **flags):
    return train(resolve_train_args(argparse.Namespace(output=str(tmp_path), **{**TINY, **flags})))


def _rows(run_dir):
    with open(run_dir / "summary.csv") as f:
        return list(csv.DictReader(f))


def test_a_caption_run_writes_caption_metrics_and_its_vocabulary(tmp_path):
    run_dir = _train(tmp_path, amp=True)  # bf16 autocast on the CPU, fp16 with a grad scaler on CUDA
    rows = _rows(run_dir)
    assert len(rows) == 1
    assert {"eval_exact_match", "eval_bleu4", "eval_cider", "train_loss", "eval_loss"} <= set(rows[0])
    assert 0.0 <= float(rows[0]["eval_exact_match"]) <= 100.0
    meta = checkpoint.read_meta(checkpoint.find(run_dir))
    assert meta["task"] == "caption" and meta["model"] == "captioner_test"
    assert meta["vocab"]["tokens"][:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert meta["model_overrides"]["vocab_size"] == len(meta["vocab"]["tokens"])
    assert (run_dir / "curves.png").is_file()
    scores = json.loads((run_dir / "caption_eval.json").read_text())
    assert set(scores) == {"test", "holdout"}
    # What `zoo caption` loads: the run's best checkpoint, with the vocabulary and preprocessing it trained on.
    cap = load_captioner(run_dir, device="cpu")
    assert cap.vocab.tokens == meta["vocab"]["tokens"] and cap.transform.size == 16
    image, _ = ShapesDataset("test", size=1, img_size=16)[0]
    output = cap.model.generate(cap.transform(image)[None])
    assert output.tokens.shape[0] == 1 and int(output.lengths[0]) >= 1


def test_a_caption_run_resumes(tmp_path):
    _train(tmp_path)
    run_dir = train(resolve_train_args(argparse.Namespace(resume=str(tmp_path), epochs=2, no_progress=True)))
    rows = _rows(run_dir)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert checkpoint.read_meta(checkpoint.find(run_dir, ("last",)))["epoch"] == 2


def test_caption_task_refuses_mixup_and_classifiers(tmp_path):
    with pytest.raises(ConfigError, match="mixup"):
        _train(tmp_path / "a", mixup=0.8)
    with pytest.raises(ConfigError, match="needs a captioner"):
        _train(tmp_path / "b", model="vit_test")


@pytest.mark.slow
def test_default_recipe_captions_held_out_scenes(tmp_path):
    """The default `zoo train --task caption` recipe (the shapes scenes) reaches >= 90% exact match on the
    test scenes. The scenes with colour-shape pairs never seen in training are scored too (no target yet)."""
    run_dir = train(resolve_train_args(argparse.Namespace(task="caption", output=str(tmp_path),
                                                          no_progress=True)))
    scores = json.loads((run_dir / "caption_eval.json").read_text())
    print(f"\ntest: {scores['test']}\nheld-out colour-shape pairs: {scores['holdout']}")
    assert scores["test"]["count"] == 1000
    assert scores["test"]["exact_match"] >= 90.0


def test_the_shipped_captioner_captions_test_scenes():
    """The checkpoint in examples/caption (the default recipe's result) loads through `zoo caption`'s loader
    and captions unseen test scenes."""
    from pathlib import Path

    from vision.caption_metrics import exact_match

    folder = Path(__file__).resolve().parents[2] / "examples" / "caption" / "captioner_tiny_shapes"
    cap = load_captioner(folder, device="cpu")
    scenes = ShapesDataset("test", size=100, img_size=cap.transform.size)
    images = torch.stack([cap.transform(scenes[i][0]) for i in range(len(scenes))])
    hypotheses = [cap.vocab.decode(row) for row in cap.model.generate(images).tokens]
    assert exact_match(hypotheses, [[c] for c in scenes.captions]) >= 0.9  # a fraction
