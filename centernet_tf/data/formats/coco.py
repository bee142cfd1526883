"""``data.format: coco``: a COCO detection JSON and its image folder."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from centernet_tf.data.formats.base import (
    Collector, RawObject, check_unique, image_check_for, inside_folder, parse_coords, require_path, to_int,
)
from centernet_tf.data.formats.registry import DataSection, SourceSpec
from centernet_tf.data.image_check import ImageCheck
from centernet_tf.data.index import DatasetIndex
from centernet_tf.progress import progress

logger = logging.getLogger(__name__)


def load_coco(
    annotation_file: str | Path,
    image_dir: str | Path,
    class_names: Sequence[str] | None = None,
    name: str = "",
    *,
    check: ImageCheck | None = None,
) -> DatasetIndex:
    """Load a COCO-format detection json.

    Categories become contiguous ids in ascending category-id order unless
    ``class_names`` is given, in which case categories are matched by name and any other
    category is an unknown class. Crowd annotations are skipped (they are not single
    objects). ``check`` says how image files are checked (default: decoded at 1/8 scale).
    """
    from pycocotools.coco import COCO  # local: only needed for this format

    annotation_file = Path(annotation_file)
    image_dir = Path(image_dir)
    name = name or annotation_file.stem
    if not annotation_file.is_file():
        raise FileNotFoundError(f"{name}: COCO annotation file not found: {annotation_file}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints progress
            coco = COCO(str(annotation_file))
    except (json.JSONDecodeError, AssertionError, KeyError, TypeError) as err:
        raise ValueError(f"{name}: cannot parse COCO annotation file {annotation_file}: {err}") from err

    listed_ids = [image.get("id") for image in coco.dataset.get("images", [])]
    duplicates = sorted({i for i in listed_ids if listed_ids.count(i) > 1}, key=str)
    if duplicates:  # pycocotools keeps the last one: the others' boxes would land on its pixels
        raise ValueError(
            f"{name}: duplicate image ids in {annotation_file}: {duplicates[:10]}"
            f"{' ...' if len(duplicates) > 10 else ''}; every image needs its own id"
        )
    cats = sorted(coco.cats.values(), key=lambda c: c["id"])
    cat_label = {c["id"]: str(c.get("name", c["id"])).strip() for c in cats}
    if class_names is None:
        class_names = [cat_label[c["id"]] for c in cats]
    class_names = [str(n).strip() for n in class_names]
    check_unique(class_names, name)
    class_to_id = {n: i for i, n in enumerate(class_names)}

    col = Collector(name, str(annotation_file), class_to_id, check or ImageCheck())
    for ann in coco.dataset.get("annotations", []):
        if ann.get("image_id") not in coco.imgs:
            col.report.add("annotation of an unknown image id", f"image id {ann.get('image_id')}")
    # Our image ids are int32 tensors: ids that are not all such integers (strings, a mix, 64-bit numbers) are
    # numbered 1..n in file order instead; the annotations still find their image by the file's own id.
    plain = all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 2**31 for i in coco.imgs)
    order = sorted(coco.imgs) if plain else list(coco.imgs)
    if not plain:
        logger.info("%s: image ids are not all 32-bit integers (e.g. %r): numbered 1-%d in file order", name,
                    next((i for i in order if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < 2**31)),
                    len(order))
    for position, image_id in enumerate(progress(order, len(order), f"reading {name} annotations"), start=1):
        info = coco.imgs[image_id]
        file_name = str(info.get("file_name", ""))
        col.listed += 1
        detail = file_name or f"image id {image_id}"
        if not file_name:
            col.report.add("bad annotation", detail)
            continue
        objects = []
        for ann in coco.imgToAnns.get(image_id, []):
            if ann.get("iscrowd", 0):
                col.report.add("crowd box", detail)
                continue
            cid = ann.get("category_id")
            label = cat_label.get(cid, f"category_id={cid}")
            objects.append(RawObject(label, _coco_coords(ann.get("bbox"))))
        if not inside_folder(image_dir / file_name, image_dir):
            col.report.add("file outside the image folder", detail)
            continue
        annotated = (to_int(info.get("width")), to_int(info.get("height")))
        col.add_image(image_dir / file_name, int(image_id) if plain else position, objects, detail, annotated)
    return col.finish(class_names)


def _coco_coords(bbox: object) -> tuple[float, float, float, float] | None:
    """[x, y, w, h] -> (x1, y1, x2, y2); None when it is not four numbers."""
    if not isinstance(bbox, (list, tuple)):
        return None
    xywh = parse_coords(bbox)
    if xywh is None:
        return None
    x, y, w, h = xywh
    return (x, y, x + w, y + h)


def _load_coco(data: DataSection, split: str, class_names: list[str] | None) -> DatasetIndex:
    annotations = getattr(data, f"{split}_annotations")
    images = getattr(data, f"{split}_images")
    if split == "test" and not annotations and not images:
        raise ValueError("no test split configured: set data.test_annotations and data.test_images")
    require_path(annotations, f"data.{split}_annotations")
    require_path(images, f"data.{split}_images")
    return load_coco(annotations, images, class_names=class_names, name=f"{split} ({annotations})",
                     check=image_check_for(data))


#: Registered by :mod:`centernet_tf.data.formats` (the order there is the order users see).
SOURCE = SourceSpec(
    "coco",
    _load_coco,
    description=(
        "COCO JSON: `train_annotations`/`train_images`, `val_annotations`/`val_images` and optionally "
        "`test_annotations`/`test_images`; `iscrowd` boxes are skipped."
    ),
)
