"""Datasets of `zoo train`: the digits split, image folders, CIFAR on disk and robust image decoding."""

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shared.errors import InputError
from vision import datasets
from vision.datasets import BadImage, SafeImages, create_dataset, load_image, to_rgb


def test_digits_split_is_sklearns_train_test_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    train, test = create_dataset("digits", "train"), create_dataset("digits", "val")
    assert (len(train), len(test)) == (1437, 360)
    data = load_digits()
    _, x_test, _, y_test = train_test_split(data.images, data.target, test_size=0.2, random_state=0)
    assert test.labels == y_test.tolist()
    image, label = test[7]
    assert image.mode == "RGB" and image.size == (8, 8) and label == y_test[7]
    # Pixel counts 0..16 are scaled to 0..255 in every channel.
    expected = np.round(x_test[7] * 255 / 16).astype(np.uint8)
    assert np.array_equal(np.asarray(image)[..., 0], expected)
    assert train.classes == tuple(str(i) for i in range(10))


def test_subset_is_fixed_and_sized():
    train = create_dataset("digits", "train")
    a, b = train.subset(50), train.subset(50)
    assert len(a) == 50 and a.labels == b.labels and a.items[0] is b.items[0]
    assert train.subset(None) is train and train.subset(10_000) is train


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "PA", "I;16", "CMYK", "1"])
def test_every_mode_becomes_rgb(mode):
    image = Image.new("RGBA", (5, 4), (10, 200, 30, 0)).convert(mode) if mode != "I;16" else \
        Image.fromarray(np.full((4, 5), 65535, dtype=np.uint16))
    rgb = to_rgb(image)
    assert rgb.mode == "RGB" and rgb.size == (5, 4)


def test_alpha_is_composited_and_16_bit_rescaled():
    transparent = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    assert to_rgb(transparent).getpixel((0, 0)) == (255, 255, 255)
    palette = Image.new("P", (2, 2), 0)
    palette.putpalette([0, 0, 0] * 256)
    palette.info["transparency"] = 0
    assert to_rgb(palette).getpixel((1, 1)) == (255, 255, 255)
    gray16 = Image.fromarray(np.full((2, 2), 32768, dtype=np.uint16))
    assert to_rgb(gray16).getpixel((0, 0))[0] in (127, 128)


def _png(path: Path, color=(0, 128, 255), mode="RGB", size=(12, 12)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color if mode == "RGB" else 128).save(path)
    return path


def test_load_image_errors_name_the_file(tmp_path):
    good = _png(tmp_path / "good.png")
    assert load_image(good).size == (12, 12)
    truncated = tmp_path / "truncated.jpg"
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    truncated.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    for path, words in ((truncated, "cannot decode"), (text, "not an image"),
                        (tmp_path / "missing.png", "no such file")):
        with pytest.raises(InputError, match=words) as err:
            load_image(path)
        assert path.name in str(err.value) and "\n" not in str(err.value)


def test_image_folder_classes_and_bad_files(tmp_path):
    _png(tmp_path / "train" / "cat" / "a.png")
    _png(tmp_path / "train" / "cat" / "nested" / "b.png", mode="L")
    _png(tmp_path / "train" / "dog" / "c.png")
    (tmp_path / "train" / "dog" / "readme.txt").write_text("ignored: not an image extension")
    (tmp_path / "train" / "empty").mkdir()
    (tmp_path / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    _png(tmp_path / "val" / "cat" / "d.png")
    _png(tmp_path / "val" / "dog" / "e.png")
    train = create_dataset("imagefolder", "train", tmp_path)
    assert train.classes == ("cat", "dog") and len(train) == 4  # empty folder is not a class
    assert sorted(train.labels) == [0, 0, 1, 1]
    safe = SafeImages(train)
    items = [safe[i][0] for i in range(len(safe))]
    bad = [x for x in items if isinstance(x, BadImage)]
    assert len(bad) == 1 and "broken.png" in bad[0].path and "broken.png" in bad[0].reason
    assert all(x.mode == "RGB" for x in items if not isinstance(x, BadImage))
    assert len(create_dataset("imagefolder", "val", tmp_path)) == 2


def test_image_folder_errors(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(InputError, match="no class folders"):
        create_dataset("imagefolder", "train", tmp_path)
    with pytest.raises(InputError, match="no val or validation or test/ folder"):
        create_dataset("imagefolder", "val", tmp_path)
    with pytest.raises(InputError, match="needs --data-dir"):
        create_dataset("imagefolder", "train", None)
    with pytest.raises(InputError, match="unknown dataset 'mnist'"):
        create_dataset("mnist", "train", tmp_path)


def _write_batch(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(payload, protocol=2))


def test_cifar10_on_disk_format(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    rng = np.random.default_rng(0)
    names = [f"class{i}" for i in range(10)]
    _write_batch(folder / "batches.meta", {"label_names": names})
    for i in range(1, 6):
        _write_batch(folder / f"data_batch_{i}", {"data": rng.integers(0, 255, (4, 3072), dtype=np.uint8),
                                                  "labels": [i, 0, 1, 2]})
    test_data = rng.integers(0, 255, (3, 3072), dtype=np.uint8)
    _write_batch(folder / "test_batch", {"data": test_data, "labels": [9, 8, 7]})
    train, test = create_dataset("cifar10", "train", tmp_path), create_dataset("cifar10", "val", tmp_path)
    assert (len(train), len(test)) == (20, 3) and test.classes == tuple(names)
    image, label = test[1]
    assert label == 8 and image.size == (32, 32)
    # Channel-major rows: the red plane is the first 1024 bytes.
    assert np.array_equal(np.asarray(image)[..., 0].ravel(), test_data[1, :1024])


def test_cifar100_and_errors(tmp_path):
    folder = tmp_path / "cifar-100-python"
    _write_batch(folder / "meta", {"fine_label_names": [f"c{i}" for i in range(100)]})
    _write_batch(folder / "train", {"data": np.zeros((2, 3072), np.uint8), "fine_labels": [5, 99]})
    _write_batch(folder / "test", {"data": np.zeros((1, 3072), np.uint8), "fine_labels": [3]})
    assert create_dataset("cifar100", "train", tmp_path).labels == [5, 99]
    with pytest.raises(InputError, match="--dataset-download"):
        create_dataset("cifar10", "train", tmp_path)


def test_cifar_reader_refuses_code(tmp_path):
    class Exploit:
        def __reduce__(self):
            import os

            return os.system, ("echo pwned",)

    folder = tmp_path / "cifar-10-batches-py"
    _write_batch(folder / "batches.meta", Exploit())
    with pytest.raises(InputError, match="refusing to load"):
        datasets.cifar("cifar10", tmp_path, "train")
