"""How long loading a COCO-format split takes, per ``data.image_check`` mode and number of checking threads.

    python benchmarks/image_check.py --images 2000

Writes ``--images`` JPEG photos-sized files (640x480, noise, as COCO's typical size) and a COCO json with a box
each into a temporary folder, then times ``load_coco`` for every mode (``decode``, ``header``,
``annotation_sizes``) with 1 thread and with one per CPU, taking turns over ``--rounds`` rounds (medians; the
files are read once before timing, so the page cache is warm for all, as on a second run). Reports images per
second and the time the 118,287 images of COCO train2017 would take. Writes
``benchmarks/results/image_check.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from centernet_tf.data.formats import load_coco  # noqa: E402
from centernet_tf.data.image_check import IMAGE_CHECKS, ImageCheck  # noqa: E402

COCO_TRAIN_IMAGES = 118_287


def write_split(folder: Path, count: int) -> Path:
    rng = np.random.default_rng(0)
    tile = rng.integers(0, 256, (480, 640, 3), np.uint8)
    images, annotations = [], []
    for i in range(count):
        name = f"{i:012d}.jpg"
        Image.fromarray(np.roll(tile, i, axis=1)).save(folder / name, quality=90)
        images.append({"id": i, "file_name": name, "width": 640, "height": 480})
        annotations.append({"id": i, "image_id": i, "category_id": 1, "bbox": [10, 20, 100, 80], "area": 8000.0,
                            "iscrowd": 0})
    path = folder / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "thing"}]}))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "image_check.json"))
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    variants = [(mode, workers) for mode in IMAGE_CHECKS for workers in sorted({1, cpus})]
    times: dict[str, list[float]] = {f"{mode}/{workers}_threads": [] for mode, workers in variants}
    with tempfile.TemporaryDirectory() as tmp:
        annotations = write_split(Path(tmp), args.images)
        load_coco(annotations, tmp, check=ImageCheck("decode", cpus))  # warm the page cache
        for _ in range(args.rounds):
            for mode, workers in variants:
                started = time.perf_counter()
                index = load_coco(annotations, tmp, check=ImageCheck(mode, workers))
                times[f"{mode}/{workers}_threads"].append(time.perf_counter() - started)
                assert len(index.examples) == args.images
    results = {}
    for name, samples in times.items():
        seconds = float(np.median(samples))
        results[name] = {"seconds": round(seconds, 2), "images_per_second": round(args.images / seconds),
                         "coco_train2017_minutes": round(COCO_TRAIN_IMAGES / (args.images / seconds) / 60, 1)}
    print(json.dumps(results, indent=2))
    Path(args.output).write_text(json.dumps({
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "cpus": cpus, "images": args.images, "image_size": [640, 480], "rounds": args.rounds, "results": results,
    }, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
