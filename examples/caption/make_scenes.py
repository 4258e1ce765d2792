"""Write generated shape scenes as image files with a captions.jsonl, the caption folder format of `zoo train`.

    python examples/caption/make_scenes.py OUT_DIR --count 6 --split test
    zoo caption OUT_DIR/*.png --checkpoint RUN_DIR --attention-map attention.png

The folder doubles as a caption dataset (`--dataset captions --data-dir DIR` reads DIR/<split>/captions.jsonl).
"""

import argparse
import json
from pathlib import Path

from vision.shapes import SPLITS, ShapesDataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder to write the PNG files and captions.jsonl into")
    parser.add_argument("--count", type=int, default=6, help="number of scenes")
    parser.add_argument("--split", default="test", choices=sorted(SPLITS), help="which split to draw from")
    parser.add_argument("--seed", type=int, default=0, help="data seed (the one zoo train used: 0)")
    parser.add_argument("--img-size", type=int, default=48, help="image size in pixels")
    args = parser.parse_args()

    scenes = ShapesDataset(args.split, size=args.count, seed=args.seed, img_size=args.img_size)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(len(scenes)):
        image, caption = scenes[i]
        name = f"{args.split}_{i:04d}.png"
        image.save(out / name)
        lines.append(json.dumps({"image": name, "caption": caption}))
        print(f"{out / name}: {caption}")
    (out / "captions.jsonl").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
