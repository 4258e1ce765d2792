"""`zoo caption` end to end on a captioning checkpoint: captions printed, attention maps drawn, unreadable
files reported one by one."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import zoo
from vision.caption_data import CaptionVocab, ImageToTensor
from vision.shapes import ShapesDataset
from zoo.train import checkpoint
from zoo.train.caption_inference import caption_meta

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder holding a captioning checkpoint of the tiny test model, written by the engine's checkpoint
    writer: captions from random weights are nonsense, but every path of `zoo caption` runs."""
    out = tmp_path_factory.mktemp("caption_run")
    vocab = CaptionVocab.build(ShapesDataset("train", size=200, img_size=16).captions)
    torch.manual_seed(0)
    model = zoo.create_model("captioner_test", vocab_size=len(vocab))
    meta = caption_meta("captioner_test", {"vocab_size": len(vocab)}, vocab, ImageToTensor(16))
    checkpoint.save(out, "e0001", model, model, meta, {}, best=True)
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scenes")
    scenes = ShapesDataset("test", size=2, img_size=16)
    paths = []
    for i in range(len(scenes)):
        paths.append(folder / f"scene{i}.png")
        scenes[i][0].save(paths[-1])
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return paths, folder / "broken.png"


def _zoo(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zoo", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_captions_and_attention_map(run_dir, images, tmp_path):
    paths, _ = images
    out = tmp_path / "attention.png"
    result = _zoo("caption", *paths, "--checkpoint", run_dir, "--attention-map", out)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [str(p) for p in paths]
    with Image.open(out) as figure:
        assert figure.format == "PNG" and figure.size[0] > 100 and figure.size[1] > 100


def test_bad_files_are_reported_and_the_rest_captioned(run_dir, images):
    paths, broken = images
    missing = broken.with_name("missing.png")
    result = _zoo("caption", paths[0], broken, missing, paths[1], "--checkpoint", run_dir, "--beam_size", "3")
    assert result.returncode == 1
    captioned = [line.split(":")[0] for line in result.stdout.strip().splitlines()]
    assert captioned == [str(paths[0]), str(paths[1])]
    errors = result.stderr.strip().splitlines()
    assert any(str(broken) in e and "image" in e for e in errors)
    assert any(str(missing) in e and "no such file" in e for e in errors)
    assert "Traceback" not in result.stderr


def test_each_word_map_sums_to_one(run_dir, images):
    from zoo.train.caption_inference import caption_files, load_captioner

    cap = load_captioner(run_dir, device="cpu")
    paths, _ = images
    for _, (caption, words, maps, _) in caption_files(cap, [str(p) for p in paths], with_attention=True):
        assert maps.shape == (len(words), 4, 4)  # vit_test: a 4x4 patch grid
        torch.testing.assert_close(maps.sum(dim=(1, 2)), torch.ones(len(words)))
        assert caption == " ".join(w for w in words if w not in ("<eos>", "<bos>", "<pad>"))


def test_a_classifier_checkpoint_is_refused(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "meta.json").write_text(json.dumps({"model": "vit_test", "classes": ["a", "b"]}))
    result = _zoo("caption", "x.png", "--checkpoint", folder)
    assert result.returncode == 2
    assert "not a captioning checkpoint" in result.stderr and "Traceback" not in result.stderr
