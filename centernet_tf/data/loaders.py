"""Load a dataset split from a :class:`~centernet_tf.config.DataConfig` through the ``data.format`` registry.

The formats live in :mod:`centernet_tf.data.formats` (one module each); :func:`load_split`, the config's
validation and the README's list of formats all read its registry, re-exported here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from centernet_tf.data.formats import (  # noqa: F401  (the registry, re-exported: the data API in one place)
    SPLITS, SourceLoader, SourceSpec, formats_markdown, get_source, register_source, source_names,
)
from centernet_tf.data.formats.shapes import default_shapes_dir  # noqa: F401
from centernet_tf.data.index import DatasetIndex

if TYPE_CHECKING:  # the config imports the data registry to check data.format: a type here, not an import
    from centernet_tf.config import DataConfig

logger = logging.getLogger(__name__)


def load_split(data: DataConfig, split: str, class_names: list[str] | None = None) -> DatasetIndex:
    """Load ``split`` ("train", "val" or "test") as a validated index and log its skip summary once.

    ``class_names`` (usually the training split's) fixes the class order of the other splits so they
    agree; otherwise ``data.class_names`` or the annotations decide.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    source = get_source(data.format)
    if split not in source.splits:
        raise ValueError(f"data.format {data.format!r} has no {split!r} split (it has {', '.join(source.splits)})")
    index = source.loader(data, split, class_names or data.class_names)
    index.report.log(logger, index.name or split)
    if split == "train":
        _warn_classes_without_boxes(index)
    return index


def _warn_classes_without_boxes(index: DatasetIndex) -> list[str]:
    """Name the classes no training box belongs to (a COCO export's super-category, a class never labelled):
    their heatmap channel would train on negatives only, and their AP has no ground truth to measure."""
    counts = np.bincount(np.concatenate([e.class_ids for e in index.examples] or [np.zeros(0, np.int32)]),
                         minlength=len(index.class_names))
    empty = [name for name, count in zip(index.class_names, counts) if count == 0]
    if empty:
        logger.warning(
            "%s: %d of %d classes have no box in the training split: %s. The model learns never to detect them; "
            "list only the classes you labelled in data.class_names to leave them out.",
            index.name or "train", len(empty), len(index.class_names), ", ".join(empty[:10]),
        )
    return empty
