"""Every ``data.format``, one module each on the common base (:mod:`~centernet_tf.data.formats.base`).

A new format is one new module defining ``load_<format>`` and a ``SOURCE`` spec, plus its line below; users
can also call :func:`register_source` from their own code.
"""

from centernet_tf.data.formats import coco, shapes, tfds, voc, yolo
from centernet_tf.data.formats.coco import load_coco
from centernet_tf.data.formats.registry import (
    SPLITS, SourceLoader, SourceSpec, formats_markdown, get_source, register_source, source_names,
)
from centernet_tf.data.formats.tfds import load_tfds
from centernet_tf.data.formats.voc import load_voc
from centernet_tf.data.formats.yolo import load_yolo, yolo_label_path

for _module in (shapes, coco, voc, yolo, tfds):  # the order of the README's list and of error messages
    register_source(_module.SOURCE.name, _module.SOURCE.loader, description=_module.SOURCE.description,
                    splits=_module.SOURCE.splits)

__all__ = [
    "SPLITS", "SourceLoader", "SourceSpec", "formats_markdown", "get_source", "load_coco", "load_tfds", "load_voc",
    "load_yolo", "register_source", "source_names", "yolo_label_path",
]
