"""`zoo classify` and `zoo validate` on a checkpoint written by a tiny `zoo train` run."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.cli import main
from zoo.train.inference import classify_files, load_classifier


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("classify") / "run"
    code = main(["train", "--model", "vit_test", "--epochs", "1", "--train-subset", "64", "--val-subset",
                 "40", "-b", "16", "--no-progress", "--output", str(run)])
    assert code == 0
    return run


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory) -> list[Path]:
    """Held-out digits as files in the modes users have: grayscale, RGB, RGBA and palette PNGs."""
    from vision.datasets import digits

    folder = tmp_path_factory.mktemp("digits")
    test = digits("val")
    files = []
    for i, mode in enumerate(["L", "RGB", "RGBA", "P"]):
        image = test[i][0].resize((32, 32)).convert(mode)
        files.append(folder / f"digit{i}_{mode}.png")
        image.save(files[-1])
    return files


def test_classify_prints_topk_labels_and_probabilities(run, digit_files, capsys):
    assert main(["classify", *map(str, digit_files), "--checkpoint", str(run), "--topk", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(digit_files)
    for line, path in zip(lines, digit_files):
        name, _, rest = line.partition(": ")
        assert name == str(path)
        pairs = [p.split() for p in rest.split(", ")]
        assert len(pairs) == 3 and all(label in "0123456789" for label, _ in pairs)
        probs = [float(p) for _, p in pairs]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001


def test_classify_matches_the_model_on_the_tensor(run, digit_files):
    """The printed probabilities are the model's softmax on the eval transform of the file."""
    import torch

    from vision.datasets import load_image

    clf = load_classifier(run)
    assert clf.weights_file == "model_ema.safetensors" and clf.classes == [str(i) for i in range(10)]
    (path, result), = classify_files(clf, [str(digit_files[2])], topk=10)
    x = clf.data.eval_transform()(load_image(digit_files[2]))[None]
    with torch.no_grad():
        probs = clf.model(x).softmax(-1)[0]
    assert [label for label, _ in result] == [str(i) for i in probs.argsort(descending=True).tolist()]
    assert np.allclose([p for _, p in result], probs.sort(descending=True).values.numpy(), atol=1e-6)


def test_bad_files_are_named_and_skipped(run, digit_files, tmp_path, capsys):
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(digit_files[0].read_bytes()[:40])
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    code = main(["classify", str(truncated), str(digit_files[0]), str(text), str(tmp_path / "missing.png"),
                 "--checkpoint", str(run)])
    out = capsys.readouterr()
    assert code == 1
    assert out.out.startswith(str(digit_files[0]) + ": ") and len(out.out.strip().splitlines()) == 1
    for name in ("truncated.png", "notes.jpg", "missing.png"):
        assert name in out.err
    assert "3 of 4 file(s) could not be read" in out.err


def test_validate_reproduces_the_recorded_accuracy(run, capsys):
    assert main(["validate", "--checkpoint", str(run / "last")]) == 0
    recorded = json.loads((run / "last" / "meta.json").read_text())["eval_top1"]
    out = capsys.readouterr().out
    assert "40 images" in out and f"top-1 {recorded:.2f}%" in out


def test_checkpoint_of_another_model_is_refused(run, tmp_path, capsys):
    assert main(["classify", str(tmp_path), "--checkpoint", str(run), "--model", "vit_tiny_patch2_16"]) == 2
    err = capsys.readouterr().err
    assert "holds a vit_test checkpoint, not vit_tiny_patch2_16" in err and len(err.strip().splitlines()) == 1

    # Weights that do not fit the recorded model (here: another model's) name the first bad key.
    other = tmp_path / "other"
    shutil.copytree(run / "last", other)
    meta = json.loads((other / "meta.json").read_text())
    meta["model_overrides"]["depth"] = 3
    (other / "meta.json").write_text(json.dumps(meta))
    assert main(["validate", "--checkpoint", str(other)]) == 2
    err = capsys.readouterr().err
    assert "missing weight 'encoder.blocks.2." in err and "model_ema.safetensors" in err

    # Resuming with a different --model is refused before anything is trained.
    assert main(["train", "--resume", str(run), "--model", "vit_tiny_patch4_32"]) == 2
    assert "not vit_tiny_patch4_32" in capsys.readouterr().err


def test_missing_or_foreign_checkpoint_folder(tmp_path, capsys):
    assert main(["validate", "--checkpoint", str(tmp_path / "nowhere")]) == 2
    assert "no such run or checkpoint folder" in capsys.readouterr().err
    Image.new("RGB", (4, 4)).save(tmp_path / "x.png")
    assert main(["classify", str(tmp_path / "x.png"), "--checkpoint", str(tmp_path)]) == 2
    assert "no checkpoint here" in capsys.readouterr().err
