"""Lay out a folder of Pascal VOC xml files + photos (e.g. a public GitHub photo set) as a VOC root with
``ImageSets/Main/{train,test}.txt``: every 5th image (sorted by name) is test, the rest train.

The photos are linked, not copied, and the layout lives wherever ``--output`` points (outside the repository).
Used for the large-object check sets of ``benchmarks/README.md``::

    python benchmarks/voc_check_set.py --annotations SRC/annots --images SRC/images --output /data/kangaroo_voc
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", required=True, help="folder of VOC xml files")
    parser.add_argument("--images", required=True, help="folder of the photos (same stems as the xml files)")
    parser.add_argument("--output", required=True, help="VOC root to create (must not exist yet)")
    parser.add_argument("--test-every", type=int, default=5, help="every N-th image goes to test (default 5)")
    args = parser.parse_args()
    output = Path(args.output)
    if output.exists():
        raise SystemExit(f"{output} exists already; choose a new folder")
    images = {p.stem: p for p in Path(args.images).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")}
    stems = sorted(p.stem for p in Path(args.annotations).glob("*.xml") if p.stem in images)
    (output / "ImageSets" / "Main").mkdir(parents=True)
    (output / "Annotations").symlink_to(Path(args.annotations).resolve(), target_is_directory=True)
    (output / "JPEGImages").symlink_to(Path(args.images).resolve(), target_is_directory=True)
    test = stems[args.test_every - 1 :: args.test_every]
    train = [s for s in stems if s not in set(test)]
    for split, names in (("train", train), ("test", test)):
        (output / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(names) + "\n")
    print(f"{output}: {len(train)} train / {len(test)} test images")


if __name__ == "__main__":
    main()
