"""The generated shapes scenes: reproducible, grammatical, true to the picture, with a pair hold-out."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from shared.errors import InputError
from vision.caption_data import CaptionVocab, ImageToTensor, create_caption_dataset, pad_captions
from vision.shapes import COLOURS, HOLDOUT_PAIRS, RELATIONS, SHAPES, SIZES, ShapesDataset, vocabulary_words


@pytest.fixture(scope="module")
def train():
    return ShapesDataset("train", size=300, seed=0)


def test_same_seed_same_scenes_and_pixels(train):
    again = ShapesDataset("train", size=300, seed=0)
    assert again.captions == train.captions
    for i in (0, 17, 299):
        assert np.array_equal(np.asarray(again[i][0]), np.asarray(train[i][0]))
    assert ShapesDataset("train", size=300, seed=1).captions != train.captions
    assert ShapesDataset("val", size=300, seed=0).captions != train.captions


def test_captions_follow_the_grammar(train):
    objects = {f"{'an' if colour == 'orange' else 'a'} {colour} {shape}"
               for colour in COLOURS for shape in SHAPES}
    counts = set()
    for scene, caption in zip(train.scenes, train.captions):
        parts = caption.split(f" {RELATIONS[scene.axis]} ")
        assert all(p in objects for p in parts), caption
        assert len(parts) == len(scene.shapes)
        counts.add(len(parts))
    assert counts == {1, 2, 3}
    assert set(w for c in train.captions for w in c.split()) <= set(vocabulary_words())


def test_shapes_are_in_reading_order_inside_the_image(train):
    for scene in train.scenes:
        along = [s.x if scene.axis == "row" else s.y for s in scene.shapes]
        across = [s.y if scene.axis == "row" else s.x for s in scene.shapes]
        assert along == sorted(along)
        for s in scene.shapes:
            assert s.radius <= min(s.x, s.y, train.img_size - s.x, train.img_size - s.y)
        if len(scene.shapes) > 1:  # the axis is never in doubt: spread along it exceeds spread across it
            assert min(np.diff(along)) > max(across) - min(across)


def test_each_shape_is_drawn_in_its_colour(train):
    radii = []
    for i in range(100):
        image, _ = train[i]
        pixels = np.asarray(image).astype(int)
        assert image.size == (train.img_size, train.img_size)
        for s in train.scenes[i].shapes:
            centre = pixels[int(s.y), int(s.x)]
            assert np.abs(centre - np.array(COLOURS[s.colour])).max() <= 2, (train.captions[i], centre)
            radii.append(s.radius)
    largest = train.img_size / 6 - 1  # three shapes fit a row
    assert largest * SIZES[0] <= min(radii) < largest * 0.7 and largest * 0.9 < max(radii) <= largest


def test_held_out_pairs_only_in_the_holdout_split():
    def pairs(dataset):
        return {(s.colour, s.shape) for scene in dataset.scenes for s in scene.shapes}

    for split in ("train", "val", "test"):
        assert not pairs(ShapesDataset(split, size=400)) & set(HOLDOUT_PAIRS)
    holdout = ShapesDataset("holdout", size=200)
    for scene in holdout.scenes:
        assert any((s.colour, s.shape) in HOLDOUT_PAIRS for s in scene.shapes)
    # every held-out colour and shape is still seen in training, in other pairs
    seen = pairs(ShapesDataset("train", size=400))
    for colour, shape in HOLDOUT_PAIRS:
        assert any(c == colour for c, _ in seen) and any(s == shape for _, s in seen)


def test_vocabulary_from_training_captions_round_trips(tmp_path):
    data = create_caption_dataset("shapes", "train", size=200)
    vocab = CaptionVocab.build(data.captions)
    assert set(vocab.tokens[4:]) == set(vocabulary_words())
    image, refs = data[0]
    ids = vocab.encode(refs[0])
    assert ids[0] == vocab.bos_id and ids[-1] == vocab.eos_id
    assert vocab.decode(ids + [vocab.pad_id]) == refs[0]
    vocab.save(tmp_path / "vocab.json")
    assert CaptionVocab.load(tmp_path / "vocab.json").tokens == vocab.tokens


def test_bad_arguments_are_input_errors():
    with pytest.raises(InputError, match="unknown shapes split"):
        ShapesDataset("training")
    with pytest.raises(InputError, match="too small"):
        ShapesDataset("train", img_size=8)


# --- the real-data caption formats --------------------------------------------------------------------------

def _folder(root, lines):
    root.mkdir(parents=True)
    for name in ("one.png", "two.png"):
        Image.new("RGB", (20, 10), (255, 0, 0)).save(root / name)
    (root / "captions.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return root


def test_captions_jsonl_folder(tmp_path):
    _folder(tmp_path / "train", [{"image": "one.png", "caption": "A red box."},
                                 {"image": "two.png", "captions": ["red", "a red thing"]},
                                 {"image": "one.png", "caption": "a red square"}])
    data = create_caption_dataset("captions", "train", tmp_path)
    assert len(data) == 2 and data.captions == ["A red box.", "a red square", "red", "a red thing"]
    image, refs = data[0]
    assert image.size == (20, 10) and refs == ["A red box.", "a red square"]
    vocab = CaptionVocab.build(data.captions)
    assert vocab.tokens[4:7] == ["red", "a", "box"]  # by frequency, then alphabetically
    assert vocab.decode(vocab.encode("a blue box")) == "a <unk> box"
    pixels = ImageToTensor(16)(image)
    assert pixels.shape == (3, 16, 16) and torch.allclose(pixels[0], torch.ones(16, 16), atol=1e-6)
    assert torch.allclose(pixels[1:], -torch.ones(2, 16, 16), atol=1e-6)


def test_coco_captions_json(tmp_path):
    _folder(tmp_path / "val2017", [])
    (tmp_path / "annotations").mkdir()
    coco = {"images": [{"id": 7, "file_name": "two.png"}, {"id": 3, "file_name": "one.png"}],
            "annotations": [{"image_id": 7, "caption": "second"}, {"image_id": 3, "caption": "first"},
                            {"image_id": 7, "caption": "again"}]}
    (tmp_path / "annotations" / "captions_val2017.json").write_text(json.dumps(coco))
    data = create_caption_dataset("coco", "val", tmp_path)
    assert [f.name for f in data.files] == ["one.png", "two.png"]
    assert data.references == [["first"], ["second", "again"]]
    assert data.subset(1).references in ([["first"]], [["second", "again"]])


def test_caption_format_errors_name_the_problem(tmp_path):
    _folder(tmp_path / "train", [{"image": "one.png"}])
    with pytest.raises(InputError, match=r"captions.jsonl:1: expected"):
        create_caption_dataset("captions", "train", tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "captions.jsonl").write_text(json.dumps({"image": "gone.png", "caption": "x"}) + "\n")
    data = create_caption_dataset("captions", "bad", tmp_path)
    with pytest.raises(InputError, match="gone.png: no such file"):
        data[0]
    with pytest.raises(InputError, match="needs --data-dir"):
        create_caption_dataset("coco", "train")
    with pytest.raises(InputError, match="unknown caption dataset"):
        create_caption_dataset("flickr", "train", tmp_path)
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "captions_train.json").write_text(json.dumps({"images": []}))
    with pytest.raises(InputError, match="not COCO captions JSON"):
        create_caption_dataset("coco", "train", tmp_path)


def test_pad_captions():
    tokens = pad_captions([[1, 5, 2], [1, 6, 7, 8, 2]], pad_id=0, max_len=4)
    assert tokens.tolist() == [[1, 5, 2, 0], [1, 6, 7, 8]]
