"""``data.format: shapes``: the built-in synthetic dataset (:mod:`centernet_tf.data.shapes` draws it), read
as the plain COCO dataset it is on disk."""

from __future__ import annotations

import os
from pathlib import Path

from centernet_tf.data.formats.coco import load_coco
from centernet_tf.data.formats.registry import DataSection, SourceSpec
from centernet_tf.data.index import DatasetIndex
from centernet_tf.data.shapes import SHAPE_CLASSES, ShapesPaths, generate_shapes_dataset


def default_cache_dir() -> Path:
    """Where generated and converted data is cached: ``$CENTERNET_TF_CACHE`` or ``~/.cache/centernet_tf``."""
    root = os.environ.get("CENTERNET_TF_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "centernet_tf")
    return Path(root)


def default_shapes_dir() -> Path:
    """Cache of the generated shapes dataset (``<cache>/shapes``)."""
    return default_cache_dir() / "shapes"


def build_shapes_index(paths: ShapesPaths, split: str) -> DatasetIndex:
    """Load one split of a generated shapes dataset through the ordinary COCO loader."""
    image_dir, annotation_file = paths.split(split)
    return load_coco(annotation_file, image_dir, class_names=SHAPE_CLASSES, name=f"shapes {split}")


def _load_shapes(data: DataSection, split: str, class_names: list[str] | None) -> DatasetIndex:
    height, width = data.shapes_image_size
    shapes_dir = Path(data.shapes_dir) if data.shapes_dir else default_shapes_dir()
    paths = generate_shapes_dataset(
        shapes_dir,
        num_train=data.shapes_num_train,
        num_val=data.shapes_num_val,
        image_size=(height, width),
        seed=data.shapes_seed,
    )
    return build_shapes_index(paths, split)


#: Registered by :mod:`centernet_tf.data.formats` (the order there is the order users see).
SOURCE = SourceSpec(
    "shapes",
    _load_shapes,
    description=(
        "built-in synthetic circles, squares and triangles of varied size and colour on varied backgrounds "
        "(deterministic from `shapes_seed`, cached under `~/.cache/centernet_tf/shapes` or `shapes_dir`), "
        "written as real JPEG files plus COCO JSON; train and val only."
    ),
    splits=("train", "val"),
)
