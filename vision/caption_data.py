"""Captioning data: a word-level vocabulary, the on-disk caption formats, image preprocessing and batching.

Every caption dataset yields `(PIL RGB image, [reference captions])` and has `.captions` (all its captions,
which the vocabulary is built from). Formats:

- the generated scenes of vision.shapes (`shapes`);
- a folder of images with `captions.jsonl` (`captions`): one JSON object a line, `{"image": "cat.jpg",
  "caption": "a cat on a mat"}` or `{"image": ..., "captions": [...]}`, image paths relative to the file;
- COCO-style captions JSON (`coco`): `{"images": [{"id", "file_name"}], "annotations": [{"image_id",
  "caption"}]}`.
"""

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from shared.errors import InputError
from vision.datasets import load_image
from vision.shapes import ShapesDataset

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
WORD = re.compile(r"[\w']+")


def words(caption: str) -> list[str]:
    """Lower-cased words of a caption; punctuation is dropped."""
    return WORD.findall(caption.lower())


class CaptionVocab:
    """Word <-> id. Ids 0-3 are <pad>, <bos>, <eos>, <unk>; then the words, most frequent first."""

    def __init__(self, tokens: list[str]):
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise InputError(f"a caption vocabulary must start with {', '.join(SPECIALS)}")
        if len(set(tokens)) != len(tokens):
            raise InputError("a caption vocabulary lists a word twice")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = range(len(SPECIALS))

    @classmethod
    def build(cls, captions, min_count: int = 1) -> "CaptionVocab":
        """The words of `captions` seen at least min_count times (ties in frequency broken alphabetically)."""
        counts = Counter(w for c in captions for w in words(c))
        kept = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        if not kept:
            raise InputError("no words in the training captions; check the caption files")
        return cls([*SPECIALS, *kept])

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, caption: str) -> list[int]:
        """A caption -> [bos, word ids..., eos]; unknown words become <unk>."""
        return [self.bos_id, *(self.index.get(w, self.unk_id) for w in words(caption)), self.eos_id]

    def decode(self, ids) -> str:
        """Token ids -> the caption text, up to the first <eos>; <bos> and <pad> are skipped."""
        out = []
        for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids):
            if i == self.eos_id:
                break
            if i not in (self.bos_id, self.pad_id):
                out.append(self.tokens[i] if 0 <= i < len(self.tokens) else UNK)
        return " ".join(out)

    def to_dict(self) -> dict:
        return {"tokens": self.tokens}

    @classmethod
    def from_dict(cls, data: dict) -> "CaptionVocab":
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise InputError("not a caption vocabulary (expected {\"tokens\": [...]})")
        return cls(data["tokens"])

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "CaptionVocab":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(f"{path}: cannot read the caption vocabulary ({err})") from None


class CaptionFiles:
    """Image files with their reference captions; images are decoded when indexed (InputError if they
    cannot be)."""

    def __init__(self, files: list[Path], references: list[list[str]]):
        self.files, self.references = files, references
        self.captions = [c for refs in references for c in refs]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Image.Image, list[str]]:
        return load_image(self.files[index]), self.references[index]

    def subset(self, n: int | None, seed: int = 0) -> "CaptionFiles":
        """A fixed random subset of n images (all of them when n is None or too large)."""
        if n is None or n >= len(self):
            return self
        keep = np.sort(np.random.default_rng(seed).permutation(len(self))[:n])
        return CaptionFiles([self.files[i] for i in keep], [self.references[i] for i in keep])


class ShapesCaptions:
    """vision.shapes scenes in the caption-dataset protocol (one reference per image)."""

    def __init__(self, scenes: ShapesDataset):
        self.scenes = scenes
        self.captions = scenes.captions

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> tuple[Image.Image, list[str]]:
        image, caption = self.scenes[index]
        return image, [caption]

    def subset(self, n: int | None, seed: int = 0) -> "ShapesCaptions":
        """The first n scenes (scenes are random already, and the first n do not depend on the split size)."""
        if n is None or n >= len(self):
            return self
        s = self.scenes
        return ShapesCaptions(ShapesDataset(s.split, size=n, seed=s.seed, img_size=s.img_size))


def read_jsonl(path: str | Path) -> CaptionFiles:
    """A captions.jsonl file: one {"image": ..., "caption" or "captions": ...} object a line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: not found; expected a captions.jsonl next to the images")
    grouped: dict[Path, list[str]] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            refs = row["captions"] if "captions" in row else [row["caption"]]
            image = path.parent / row["image"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise InputError(f"{path}:{number}: expected {{\"image\": ..., \"caption\": ...}} "
                             f"({type(err).__name__}: {err})") from None
        if not refs or not all(isinstance(c, str) for c in refs):
            raise InputError(f"{path}:{number}: captions must be a non-empty list of strings")
        grouped.setdefault(image, []).extend(refs)
    if not grouped:
        raise InputError(f"{path}: no captions in this file")
    return CaptionFiles(list(grouped), list(grouped.values()))


def read_coco(path: str | Path, image_dir: str | Path | None = None) -> CaptionFiles:
    """COCO-style captions JSON; image_dir defaults to the folder named after the file's split
    (captions_val2017.json -> ../val2017) or, failing that, the JSON's own folder."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        names = {img["id"]: img["file_name"] for img in data["images"]}
        annotations = [(a["image_id"], a["caption"]) for a in data["annotations"]]
    except FileNotFoundError:
        raise InputError(f"{path}: not found") from None
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise InputError(f"{path}: not COCO captions JSON (needs images[].id/file_name and "
                         f"annotations[].image_id/caption; {type(err).__name__}: {err})") from None
    if image_dir is None:
        split = path.stem.split("_", 1)[-1]
        image_dir = path.parent.parent / split if (path.parent.parent / split).is_dir() else path.parent
    grouped: dict[int, list[str]] = {}
    for image_id, caption in annotations:
        if image_id not in names:
            raise InputError(f"{path}: an annotation names image id {image_id}, which is not in images[]")
        grouped.setdefault(image_id, []).append(caption)
    ids = sorted(grouped)
    return CaptionFiles([Path(image_dir) / names[i] for i in ids], [grouped[i] for i in ids])


CAPTION_DATASETS = ("shapes", "captions", "coco")


def create_caption_dataset(name: str, split: str, data_dir: str | Path | None = None, seed: int = 0,
                           img_size: int = 48, size: int | None = None):
    """A split ("train", "val", "test", and for shapes "holdout") of a named caption dataset.

    shapes: generated (data_dir unused; size = number of scenes). captions: DIR/<split>/captions.jsonl.
    coco: DIR/annotations/captions_<split>*.json with images in DIR/<that json's split name>/.
    """
    if name == "shapes":
        return ShapesCaptions(ShapesDataset(split, size=size, seed=seed, img_size=img_size))
    if name not in CAPTION_DATASETS:
        raise InputError(f"unknown caption dataset {name!r}; choose one of {', '.join(CAPTION_DATASETS)}")
    if data_dir is None:
        raise InputError(f"--dataset {name} needs --data-dir DIR")
    root = Path(data_dir)
    if name == "captions":
        return read_jsonl(root / split / "captions.jsonl")
    found = sorted((root / "annotations").glob(f"captions_{split}*.json"))
    if not found:
        raise InputError(f"{root}/annotations: no captions_{split}*.json; expected COCO's layout")
    return read_coco(found[0])


class ImageToTensor:
    """PIL image -> normalised float tensor (C, size, size): resized (bicubic) if needed, then
    (x / 255 - mean) / std."""

    def __init__(self, size: int, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
        self.size = size
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), Image.BICUBIC)
        array = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32).copy())  # (H, W, C)
        return (array.permute(2, 0, 1) / 255.0 - self.mean) / self.std  # (C, H, W)


def pad_captions(ids: list[list[int]], pad_id: int, max_len: int) -> torch.Tensor:
    """Token id lists -> (B, T) padded with pad_id, T = the longest (cut to max_len)."""
    width = min(max(len(x) for x in ids), max_len)
    out = torch.full((len(ids), width), pad_id, dtype=torch.long)
    for row, x in enumerate(ids):
        x = x[:width]
        out[row, : len(x)] = torch.tensor(x, dtype=torch.long)
    return out
