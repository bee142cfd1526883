"""Pick and load a dataset split from a :class:`~centernet_tf.config.DataConfig`."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from centernet_tf.config import DataConfig
from centernet_tf.data.shapes import build_shapes_index, generate_shapes_dataset
from centernet_tf.data.sources import DatasetIndex, load_coco, load_voc

logger = logging.getLogger(__name__)


def default_shapes_dir() -> Path:
    """Cache of the generated shapes dataset (``$CENTERNET_TF_CACHE`` or ``~/.cache/centernet_tf``)."""
    root = os.environ.get("CENTERNET_TF_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "centernet_tf")
    return Path(root) / "shapes"


def load_split(data: DataConfig, split: str, class_names: list[str] | None = None) -> DatasetIndex:
    """Load ``split`` ("train" or "val") as a validated index and log its skip summary once.

    ``class_names`` (usually the training split's) fixes the class order of the validation split so both
    agree; otherwise ``data.class_names`` or the annotations decide.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    class_names = class_names or data.class_names
    if data.format == "shapes":
        height, width = data.shapes_image_size
        shapes_dir = Path(data.shapes_dir) if data.shapes_dir else default_shapes_dir()
        paths = generate_shapes_dataset(
            shapes_dir,
            num_train=data.shapes_num_train,
            num_val=data.shapes_num_val,
            image_size=(height, width),
            seed=data.shapes_seed,
        )
        index = build_shapes_index(paths, split)
    elif data.format == "coco":
        annotations = data.train_annotations if split == "train" else data.val_annotations
        images = data.train_images if split == "train" else data.val_images
        _require_path(annotations, f"data.{split}_annotations")
        _require_path(images, f"data.{split}_images")
        index = load_coco(annotations, images, class_names=class_names, name=f"{split} ({annotations})")
    else:
        _require_path(data.root, "data.root")
        voc_split = data.train_split if split == "train" else data.val_split
        index = load_voc(data.root, voc_split, class_names=class_names, name=f"{Path(data.root).name} {voc_split}")
    index.report.log(logger, index.name or split)
    return index


def _require_path(path: str, key: str) -> None:
    if not path:
        raise ValueError(f"{key} is not set in the config")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{key} = {path!r} does not exist (relative paths are read from {os.getcwd()})")
