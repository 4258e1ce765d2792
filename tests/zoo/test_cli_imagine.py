"""`zoo train --task autoencoder`, `zoo train --task text-to-image` and `zoo imagine` end to end at tiny
configs: the run folders, an exact resume, the images and their records, and one-line refusals."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import zoo
from tests.zoo.crash import kill_at_checkpoint
from zoo.cli import main

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--train-subset", "128", "--val-subset", "8", "-b", "32", "--no-progress", "--threads", "1"]


def _train(*args) -> int:
    return main(["train", *map(str, args), *SMALL])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagine_runs")
    assert _train("--task", "autoencoder", "--model", "autoencoder_kl_test", "--epochs", "1",
                  "--output", root / "ae") == 0
    assert _train("--task", "text-to-image", "--model", "text_to_image_test", "--autoencoder", root / "ae",
                  "--epochs", "2", "--output", root / "t2i") == 0
    return root


def _zoo(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zoo", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_the_runs_leave_what_people_read(runs):
    ae, t2i = runs / "ae", runs / "t2i"
    assert (ae / "summary.csv").read_text().splitlines()[0].startswith("epoch,train_loss,eval_l1,eval_psnr")
    header, *rows = (t2i / "summary.csv").read_text().splitlines()
    assert header.startswith("epoch,train_loss,eval_loss,eval_exact") and len(rows) == 2
    assert sorted(p.name for p in (t2i / "samples").iterdir()) == ["epoch0001.png", "epoch0002.png"]
    scores = json.loads((t2i / "imagine_eval.json").read_text())
    assert set(scores) == {"test", "holdout", "sampling"} and scores["test"]["count_of"] == 8
    meta = json.loads((t2i / "best" / "meta.json").read_text())
    assert meta["task"] == "text-to-image" and meta["model_overrides"]["latent_scale"] > 0


def test_a_killed_run_resumes_exactly(runs, tmp_path):
    """SIGKILL once the first epoch is checkpointed, --resume, and the weights equal the uninterrupted run's."""
    run = tmp_path / "killed"
    args = ["train", "--task", "text-to-image", "--model", "text_to_image_test", "--autoencoder", runs / "ae",
            "--epochs", "2", "--output", run, *SMALL]
    kill_at_checkpoint([sys.executable, "-m", "zoo", *args], run, timeout=300)
    assert os.readlink(run / "last").endswith("epoch0001"), "the run ended before it could be killed"
    result = _zoo(*args[:-len(SMALL)], "--resume", run, *SMALL)
    assert result.returncode == 0, result.stderr[-2000:]
    resumed = load_file(run / "last" / "model_ema.safetensors")
    straight = load_file(runs / "t2i" / "last" / "model_ema.safetensors")
    assert resumed.keys() == straight.keys() and all(torch.equal(resumed[k], straight[k]) for k in straight)


def test_imagine_writes_images_grid_and_records(runs, tmp_path):
    out = tmp_path / "out"
    result = _zoo("imagine", "a red circle", "a blue square left of a green cross", "--checkpoint", runs / "t2i",
                  "--num_images", "2", "--num_inference_steps", "3", "--seed", "7", "--output", out)
    assert result.returncode == 0, result.stderr
    pngs = sorted(out.glob("0*.png"))
    assert len(pngs) == 4 and (out / "grid.png").is_file()
    record = json.loads(pngs[3].with_suffix(".json").read_text())
    assert record["prompt"] == "a blue square left of a green cross" and record["seed"] == 10
    assert record["model"] == "text_to_image_test" and len(record["weights_sha256"]) == 12
    # image k of the run is that prompt drawn alone with seed + k
    alone = zoo.imagine("a blue square left of a green cross", runs / "t2i", seed=10, num_inference_steps=3)[0]
    with Image.open(pngs[3]) as saved:
        difference = np.array(saved.convert("RGB"), dtype=np.int16) - np.array(alone, dtype=np.int16)
        assert np.abs(difference).max() <= 1


def test_imagine_steers_away_from_a_negative_prompt(runs, tmp_path):
    out = tmp_path / "out"
    result = _zoo("imagine", "a red circle", "--checkpoint", runs / "t2i", "--negative_prompt", "a blue square",
                  "--num_inference_steps", "3", "--output", out)
    assert result.returncode == 0, result.stderr
    png = next(out.glob("000-*.png"))
    assert json.loads(png.with_suffix(".json").read_text())["negative_prompt"] == "a blue square"
    steered = zoo.imagine("a red circle", runs / "t2i", num_inference_steps=3, negative_prompt="a blue square")[0]
    plain = zoo.imagine("a red circle", runs / "t2i", num_inference_steps=3)[0]
    with Image.open(png) as saved:
        assert np.abs(np.array(saved.convert("RGB"), dtype=np.int16) - np.array(steered, dtype=np.int16)).max() <= 1
    assert not np.array_equal(np.array(plain), np.array(steered))


@pytest.mark.parametrize("args, message", [
    (["a red zebra"], "does not know the word 'zebra'"),
    (["a red circle", "--negative_prompt", "a red zebra"], "does not know the word 'zebra'"),
    (["a red circle", "--num_inference_steps", "0"], "num_inference_steps must be at least 1"),
    (["a red circle", "--guidance_scale", "-1"], "guidance_scale must be 0 or more"),
])
def test_bad_input_is_one_line(runs, args, message, tmp_path):
    result = _zoo("imagine", *args, "--checkpoint", runs / "t2i", "--output", tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 2


def test_a_checkpoint_of_another_task_is_refused(runs, tmp_path):
    result = _zoo("imagine", "a red circle", "--checkpoint", runs / "ae", "--output", tmp_path)
    assert result.returncode == 2 and "is not a text-to-image checkpoint" in result.stderr
    assert "Traceback" not in result.stderr
    classifier = tmp_path / "classifier"
    assert main(["train", "--model", "vit_test", "--epochs", "1", "--output", str(classifier), *SMALL]) == 0
    assert main(["train", "--task", "text-to-image", "--model", "text_to_image_test", "--autoencoder",
                 str(classifier), "--output", str(tmp_path / "x"), *SMALL]) == 2  # not an autoencoder


def test_a_text_to_image_run_lends_its_autoencoder(runs, tmp_path):
    """--autoencoder may name a text-to-image run: the new run diffuses in that model's latent space."""
    out = tmp_path / "again"
    assert _train("--task", "text-to-image", "--model", "text_to_image_test", "--autoencoder", runs / "t2i",
                  "--epochs", "1", "--output", out) == 0
    again, first = load_file(out / "last" / "model.safetensors"), load_file(runs / "t2i" / "last" / "model.safetensors")
    assert all(torch.equal(again[k], first[k]) for k in first if k.startswith("autoencoder."))
