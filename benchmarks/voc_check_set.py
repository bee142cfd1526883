"""Lay out a folder of Pascal VOC xml files + photos (e.g. a public GitHub photo set) as a check set:
every 5th image (sorted by name) is test, the rest train.

``--layout voc`` (default) writes a VOC root with ``ImageSets/Main/{train,test}.txt``; ``--layout coco`` writes
``annotations/{train,test}.json`` + ``images/`` for ``data.format: coco``, with the boxes the project's own VOC
reader keeps (the same validation, so both layouts hold the same boxes; VOC's ``<difficult>`` flag has no COCO
field and is dropped, so a difficult box counts as an ordinary one there). The photos are linked, not copied, and
the layout lives wherever ``--output`` points (outside the repository); it is built beside it and renamed at the
end, so a failed run leaves nothing to remove. Used for the check sets of ``benchmarks/README.md``::

    python benchmarks/voc_check_set.py --annotations SRC/annots --images SRC/images --output /data/kangaroo_voc
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
    in_test = set(test)  # once, not per stem
    splits = {"train": [s for s in stems if s not in in_test], "test": test}
    for split, names in splits.items():
        (output / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return splits


def write_coco(annotations: Path, images: Path, output: Path, test_every: int) -> dict[str, int]:
    """COCO JSON per split from the VOC reader's validated index; returns the images kept per split."""
    from centernet_tf.data.formats.voc import load_voc  # local: the VOC layout needs no TensorFlow
    from centernet_tf.evaluation.metrics import coco_ground_truth

    (output / "annotations").mkdir(parents=True)
    (output / "images").symlink_to(images.resolve(), target_is_directory=True)
    kept: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        voc = Path(tmp) / "voc"
        write_voc(annotations, images, voc, test_every)
        indexes = {split: load_voc(voc, split) for split in ("train", "test")}
        # one id per name in both files: a class seen in one split only is still named in the other
        classes = sorted(set().union(*(index.class_names for index in indexes.values())))
        for split, index in indexes.items():
            if index.class_names != classes:
                index = load_voc(voc, split, classes)
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
    for folder in (args.annotations, args.images):
        if not folder.is_dir():
            raise SystemExit(f"{folder} is not a folder")
    if args.test_every < 2:
        raise SystemExit(f"--test-every must be at least 2, got {args.test_every}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{args.output.name}.", dir=args.output.parent))
    try:
        if args.layout == "voc":
            stems = write_voc(args.annotations, args.images, building / "out", args.test_every)
            counts = {split: len(names) for split, names in stems.items()}
        else:
            counts = write_coco(args.annotations, args.images, building / "out", args.test_every)
        (building / "out").rename(args.output)
    finally:
        shutil.rmtree(building)
    print(f"{args.output}: {counts['train']} train / {counts['test']} test images")


if __name__ == "__main__":
    main()
