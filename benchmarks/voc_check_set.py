"""Lay out a folder of Pascal VOC xml files + photos (e.g. a public GitHub photo set) as a check set:
every 5th image (sorted by name) is test, the rest train.

``--layout voc`` (default) writes a VOC root with ``ImageSets/Main/{train,test}.txt``; ``--layout coco`` writes
``annotations/{train,test}.json`` + ``images/`` for ``data.format: coco``, with the boxes the project's own VOC
reader keeps (the same validation, so both layouts hold the same boxes). The photos are linked, not copied, and
the layout lives wherever ``--output`` points (outside the repository). Used for the check sets of
``benchmarks/README.md``::

    python benchmarks/voc_check_set.py --annotations SRC/annots --images SRC/images --output /data/kangaroo_voc
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path


def write_voc(annotations: Path, images: Path, output: Path, test_every: int) -> dict[str, list[str]]:
    """A VOC root linking ``annotations`` and ``images``; returns the stems of each split."""
    photos = {p.stem for p in images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")}
    stems = sorted(p.stem for p in annotations.glob("*.xml") if p.stem in photos)
    (output / "ImageSets" / "Main").mkdir(parents=True)
    (output / "Annotations").symlink_to(annotations.resolve(), target_is_directory=True)
    (output / "JPEGImages").symlink_to(images.resolve(), target_is_directory=True)
    test = stems[test_every - 1 :: test_every]
    splits = {"train": [s for s in stems if s not in set(test)], "test": test}
    for split, names in splits.items():
        (output / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return splits


def write_coco(annotations: Path, images: Path, output: Path, test_every: int) -> dict[str, int]:
    """COCO JSON per split from the VOC reader's validated index; returns the images kept per split."""
    from centernet_tf.data.formats.voc import load_voc  # local: the VOC layout needs no TensorFlow
    from centernet_tf.evaluation.metrics import coco_ground_truth

    (output / "annotations").mkdir(parents=True)
    (output / "images").symlink_to(images.resolve(), target_is_directory=True)
    kept = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_voc(annotations, images, Path(tmp) / "voc", test_every)
        classes = load_voc(Path(tmp) / "voc", None).class_names  # of every xml, sorted: one id per name in both
        for split in ("train", "test"):
            index = load_voc(Path(tmp) / "voc", split, classes)
            print(index.report.summary(f"{output.name} {split}"))
            dataset = coco_ground_truth(index).dataset
            names = {e.image_id: os.path.basename(e.image_path) for e in index.examples}
            for image in dataset["images"]:
                image["file_name"] = names[image["id"]]
            (output / "annotations" / f"{split}.json").write_text(json.dumps(dataset))
            kept[split] = len(index)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", required=True, type=Path, help="folder of VOC xml files")
    parser.add_argument("--images", required=True, type=Path, help="folder of the photos (same stems as the xml)")
    parser.add_argument("--output", required=True, type=Path, help="folder to create (must not exist yet)")
    parser.add_argument("--layout", choices=("voc", "coco"), default="voc", help="the layout to write")
    parser.add_argument("--test-every", type=int, default=5, help="every N-th image goes to test (default 5)")
    args = parser.parse_args()
    if args.output.exists():
        raise SystemExit(f"{args.output} exists already; choose a new folder")
    if args.layout == "voc":
        counts = {split: len(stems) for split, stems in write_voc(args.annotations, args.images, args.output,
                                                                   args.test_every).items()}
    else:
        counts = write_coco(args.annotations, args.images, args.output, args.test_every)
    print(f"{args.output}: {counts['train']} train / {counts['test']} test images")


if __name__ == "__main__":
    main()
