"""The readers' former home, kept so code written against it still imports: the index is now
:mod:`centernet_tf.data.index`, the image-file check :mod:`centernet_tf.data.image_check`, and each format a
module of :mod:`centernet_tf.data.formats`."""

from centernet_tf.data.formats import load_coco, load_tfds, load_voc, load_yolo, yolo_label_path  # noqa: F401
from centernet_tf.data.image_check import IMAGE_CHECKS, MAX_IMAGE_PIXELS, ImageCheck, exif_orientation  # noqa: F401
from centernet_tf.data.index import DatasetIndex, Example, SkipReport  # noqa: F401
