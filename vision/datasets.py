"""Image classification datasets: scikit-learn's digits, image folders and CIFAR-10/100 on disk.

Every dataset yields `(PIL.Image in RGB, class index)` and has `.classes` (the label names). Images that
cannot be decoded are not fatal inside a dataset: `SafeImages` turns them into a `BadImage` record that the
training loader counts and drops, so one corrupt JPEG in a folder of thousands costs one sample, not the run.
"""

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from shared.errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
DIGITS_CLASSES = tuple(str(i) for i in range(10))


def to_rgb(image: Image.Image, background=(255, 255, 255)) -> Image.Image:
    """Any PIL mode as 8-bit RGB: palette and alpha are composited over `background`, 16-bit gray rescaled."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16/32-bit grayscale: PIL's own convert clips at 255, so scale the real range to 8 bits instead.
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1.0)
        image = Image.fromarray(np.clip(values / top * 255.0, 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, background + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def load_image(path: str | Path) -> Image.Image:
    """Decode an image file fully (so truncation is caught here) and convert it to RGB; InputError if not."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image PIL can read") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise InputError(f"{path}: cannot decode image ({err})") from None


@dataclass(frozen=True)
class BadImage:
    """Stands in for a sample whose file could not be decoded."""

    path: str
    reason: str


class ListDataset:
    """Samples held as a list of (loader argument, label); `load` turns the first into an RGB image."""

    def __init__(self, items: list, labels: list[int], classes, load):
        self.items, self.labels = items, [int(x) for x in labels]
        self.classes, self.load = tuple(classes), load

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.load(self.items[index]), self.labels[index]

    def subset(self, n: int | None, seed: int = 0) -> "ListDataset":
        """A fixed random subset of n samples (all of them when n is None or too large)."""
        if n is None or n >= len(self):
            return self
        keep = np.sort(np.random.default_rng(seed).permutation(len(self))[:n])
        return ListDataset([self.items[i] for i in keep], [self.labels[i] for i in keep], self.classes,
                           self.load)


def _array_to_image(array: np.ndarray) -> Image.Image:
    return Image.fromarray(array).convert("RGB")


def digits(split: str) -> ListDataset:
    """scikit-learn's 8x8 handwritten digits. The split is train_test_split(test_size=0.2, random_state=0):
    1,437 train and 360 test images; pixel counts 0..16 are scaled to 0..255 (white strokes on black)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(data.images, data.target, test_size=0.2,
                                                        random_state=0)
    images, labels = (x_train, y_train) if split == "train" else (x_test, y_test)
    arrays = [np.round(img * (255.0 / 16.0)).astype(np.uint8) for img in images]  # (8, 8) each
    return ListDataset(arrays, labels.tolist(), DIGITS_CLASSES, _array_to_image)


def image_folder(root: str | Path) -> ListDataset:
    """A folder of class folders (`root/<class>/<image>`); classes sorted by name like torchvision's."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder; expected class folders of images inside")
    classes, items, labels = [], [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        if files:
            items += [str(f) for f in files]
            labels += [len(classes)] * len(files)
            classes.append(folder.name)
    if not classes:
        raise InputError(f"{root}: no class folders with images ({', '.join(IMAGE_EXTENSIONS)}) found; "
                         f"expected {root}/<class name>/<image files>")
    return ListDataset(items, labels, classes, load_image)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR's python batches (dicts, lists, numpy arrays) and nothing else, so a tampered file
    cannot run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_batch(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return _ArrayUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise InputError(f"{path}: missing; pass --dataset-download or point --data-dir at the folder "
                         f"holding {path.parent.name}/") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise InputError(f"{path}: not a CIFAR python batch ({err})") from None


CIFAR_LAYOUT = {
    # name: (folder, train files, test files, meta file, label key, class-name key)
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                "batches.meta", "labels", "label_names"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", "fine_labels", "fine_label_names"),
}


def cifar(name: str, root: str | Path, split: str, download: bool = False) -> ListDataset:
    """CIFAR-10 or CIFAR-100 in torchvision's on-disk format (`root/cifar-10-batches-py/...`)."""
    folder, train_files, test_files, meta_file, label_key, names_key = CIFAR_LAYOUT[name]
    root = Path(root)
    if download and not (root / folder).is_dir():
        import torchvision

        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        try:
            cls(str(root), train=True, download=True)
        except Exception as err:  # network errors come in many types; the message is what matters
            raise InputError(f"cannot download {name} into {root} ({err})") from None
    if not (root / folder).is_dir():
        raise InputError(f"{root / folder}: not found; pass --dataset-download or point --data-dir at the "
                         f"folder that holds {folder}/")
    classes = [str(c) for c in _read_batch(root / folder / meta_file)[names_key]]
    arrays, labels = [], []
    for file in train_files if split == "train" else test_files:
        batch = _read_batch(root / folder / file)
        data = np.asarray(batch["data"], dtype=np.uint8)
        data = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (N, H, W, C)
        arrays += list(data)
        labels += list(batch[label_key])
    return ListDataset(arrays, labels, classes, _array_to_image)


DATASETS = ("digits", "imagefolder", "cifar10", "cifar100")


def create_dataset(name: str, split: str, data_dir: str | Path | None = None, download: bool = False):
    """The `split` ("train" or "val") of a named dataset. imagefolder reads `data_dir/train` and
    `data_dir/val` (or `validation`, `test`)."""
    name = name.lower()
    if split not in ("train", "val"):
        raise InputError(f"unknown split {split!r}; use train or val")
    if name == "digits":
        return digits(split)
    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if data_dir is None:
        raise InputError(f"--dataset {name} needs --data-dir DIR")
    if name == "imagefolder":
        root = Path(data_dir)
        names = ("train",) if split == "train" else ("val", "validation", "test")
        for sub in names:
            if (root / sub).is_dir():
                return image_folder(root / sub)
        raise InputError(f"{root}: no {' or '.join(names)}/ folder; expected {root}/train/<class>/<images> "
                         f"and {root}/val/<class>/<images>")
    return cifar(name, data_dir, split, download)


class SafeImages:
    """Wraps a dataset so a sample that fails to decode comes back as (BadImage, label) instead of raising."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.classes = dataset.classes

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        try:
            return self.dataset[index]
        except InputError as err:
            item = self.dataset.items[index] if hasattr(self.dataset, "items") else index
            return BadImage(str(item), str(err)), self.dataset.labels[index]
