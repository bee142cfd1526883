"""The ``tf.data`` input pipeline: read -> RGB -> letterbox -> flip -> targets -> batch -> prefetch.

Everything after the file list is TensorFlow ops, so the pipeline runs in parallel C++ threads with no
Python in the per-image path.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import tensorflow as tf

from centernet_tf.data.augment import Augmentation, colour_jitter, mosaic, pca_lighting, random_scale_crop
from centernet_tf.data.index import DatasetIndex
from centernet_tf.data.letterbox import letterbox_boxes, letterbox_image
from centernet_tf.model.targets import encode_targets, keras_targets

logger = logging.getLogger(__name__)
AUTOTUNE = tf.data.AUTOTUNE


def _index_tensors(index: DatasetIndex) -> dict[str, Any]:
    """The index as tensors: file paths, ragged boxes / classes, ids and original sizes."""
    examples = index.examples
    lengths = np.array([len(e.class_ids) for e in examples], np.int64)
    flat_boxes = np.concatenate([np.asarray(e.boxes, np.float32).reshape(-1, 4) for e in examples], axis=0)
    flat_classes = np.concatenate([np.asarray(e.class_ids, np.int32).reshape(-1) for e in examples], axis=0)
    return {
        "path": tf.constant([e.image_path for e in examples]),
        "boxes": tf.RaggedTensor.from_row_lengths(flat_boxes, lengths),
        "class_ids": tf.RaggedTensor.from_row_lengths(flat_classes, lengths),
        "image_id": tf.constant([e.image_id for e in examples], tf.int64),
        "image_size": tf.constant([[e.height, e.width] for e in examples], tf.int32),
        "orientation": tf.constant([e.orientation for e in examples], tf.int32),
    }


def read_image(path: tf.Tensor, orientation: tf.Tensor | int = 1) -> tf.Tensor:
    """Decode JPEG/PNG/BMP/GIF to ``uint8 [h, w, 3]``; grayscale is expanded and alpha dropped.

    ``orientation`` (EXIF, 1-8) turns the stored pixels into the upright view: TensorFlow's decoders ignore
    the tag, so the index records it per image (:attr:`~centernet_tf.data.index.Example.orientation`).
    """
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return tf.ensure_shape(apply_exif_orientation(image, orientation), [None, None, 3])


def apply_exif_orientation(image: tf.Tensor, orientation: tf.Tensor | int) -> tf.Tensor:
    """The upright view of stored pixels with EXIF orientation 1-8 (as ``PIL.ImageOps.exif_transpose``)."""
    image = tf.convert_to_tensor(image)
    if isinstance(orientation, int) and orientation == 1:
        return image
    branches = [
        lambda: image,  # 1
        lambda: tf.reverse(image, [1]),  # 2: mirrored
        lambda: tf.reverse(image, [0, 1]),  # 3: 180 degrees
        lambda: tf.reverse(image, [0]),  # 4: upside-down mirror
        lambda: tf.transpose(image, [1, 0, 2]),  # 5: transpose
        lambda: tf.image.rot90(image, 3),  # 6: stored 90 degrees counter-clockwise
        lambda: tf.reverse(tf.transpose(image, [1, 0, 2]), [0, 1]),  # 7: transverse
        lambda: tf.image.rot90(image, 1),  # 8: stored 90 degrees clockwise
    ]
    index = tf.clip_by_value(tf.cast(orientation, tf.int32), 1, 8) - 1
    return tf.switch_case(index, branches)


def read_image_file(path: str) -> tf.Tensor:
    """An image file as ``uint8 [h, w, 3]``, upright (EXIF orientation applied), for prediction on a path."""
    from PIL import Image

    from centernet_tf.data.image_check import exif_orientation

    try:
        with Image.open(path) as opened:
            orientation = exif_orientation(opened)
    except Exception:  # TensorFlow's decoder gives the clearer error on a file PIL cannot open
        orientation = 1
    return read_image(path, orientation)


class DecodeWatch:
    """Which training images the pipeline started to read and which it decoded, one count per image.

    ``tf.data``'s ``ignore_errors`` drops a file TensorFlow cannot decode without telling Python which one (its
    log line is hidden with the C++ log). Counting in graph costs two scatter-adds per image; an image started
    but never decoded is a candidate, confirmed by decoding it once more here (one still being read when
    training stopped decodes and is not reported).
    """

    def __init__(self, num_images: int) -> None:
        self.started = tf.Variable(tf.zeros([num_images], tf.int32), trainable=False, name="images_started")
        self.decoded = tf.Variable(tf.zeros([num_images], tf.int32), trainable=False, name="images_decoded")

    def read(self, position: tf.Tensor, path: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
        """:func:`read_image`, counted before (in order, through the control dependency) and after."""
        with tf.control_dependencies([self.started.scatter_add(tf.IndexedSlices([1], [position]))]):
            image = read_image(path, orientation)
        with tf.control_dependencies([image]):  # counted only once the decode has succeeded
            counted = self.decoded.scatter_add(tf.IndexedSlices([1], [position]))
        with tf.control_dependencies([counted]):
            return tf.identity(image)

    def undecoded(self, index: DatasetIndex) -> list[Any]:
        """The examples of ``index`` the pipeline dropped because they do not decode."""
        started, decoded = self.started.numpy(), self.decoded.numpy()
        dropped = []
        for example in (e for i, e in enumerate(index.examples) if started[i] and not decoded[i]):
            try:
                read_image(tf.constant(example.image_path))
            except tf.errors.OpError:
                dropped.append(example)
        return dropped


def report_undecoded_training(watch: DecodeWatch, index: DatasetIndex) -> int:
    """Warn, with a count and names, about training images left out because they do not decode; the count."""
    dropped = watch.undecoded(index)
    if dropped:
        logger.warning(
            "%s: %d of %d training images could not be decoded and were left out of training with their %d "
            "objects (first: %s). Check them, or load with data.image_check: decode to skip them at load.",
            index.name or "dataset", len(dropped), len(index.examples), sum(e.num_boxes for e in dropped),
            ", ".join(e.image_path for e in dropped[:3]),
        )
    return len(dropped)


def _report_dropped_objects(index: DatasetIndex, max_objects: int) -> None:
    over = [len(e.class_ids) - max_objects for e in index.examples if len(e.class_ids) > max_objects]
    if over:
        logger.warning(
            "%s: %d objects in %d images exceed max_objects=%d and are left out of the targets "
            "(raise data.max_objects to keep them).",
            index.name or "dataset",
            sum(over),
            len(over),
            max_objects,
        )


def build_train_dataset(
    index: DatasetIndex,
    input_size: tuple[int, int],
    batch_size: int,
    max_objects: int = 128,
    flip: bool = True,
    shuffle: bool = True,
    seed: int | None = None,
    stride: int = 4,
    drop_remainder: bool = True,
    augmentation: Augmentation | None = None,
    deterministic: bool | None = None,
    box_targets: bool = False,
    radius: str = "cornernet",
    watch: DecodeWatch | None = None,
) -> tf.data.Dataset:
    """``(image, targets)`` batches for ``model.fit``; ``targets`` is keyed like the model outputs.

    Without ``augmentation.random_crop`` images are letterboxed as in evaluation. ``deterministic`` (default:
    when there is a ``seed`` or no shuffling) keeps the order of the parallel decoding; off, a slow file does
    not hold up the batch (``benchmarks/input_pipeline.py`` measures both). ``box_targets`` adds the dense
    targets of the ``giou_ttf`` box loss; ``radius`` is how the heatmap peaks are drawn (``loss.gaussian_radius``,
    :func:`~centernet_tf.model.targets.encode_targets`). ``augmentation.mosaic`` is the share
    of samples tiled from four photos (:func:`~centernet_tf.data.augment.mosaic`). A ``watch`` counts the
    images read and decoded, so the ones dropped for not decoding can be named after training.
    """
    augmentation = augmentation or Augmentation()
    num_classes = len(index.class_names)
    _report_dropped_objects(index, max_objects)
    input_size = (int(input_size[0]), int(input_size[1]))
    tensors = _index_tensors(index)
    tensors["position"] = tf.range(len(index.examples))
    items = tf.data.Dataset.from_tensor_slices(tensors)
    ds = items.shuffle(len(index.examples), seed=seed, reshuffle_each_iteration=True) if shuffle else items

    def sample(item: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """One photo read and augmented: image ``[H, W, 3]`` float32, boxes in input pixels, class ids."""
        if watch is None:
            image = read_image(item["path"], item["orientation"])
        else:
            image = watch.read(item["position"], item["path"], item["orientation"])
        boxes, class_ids = item["boxes"], item["class_ids"]
        if augmentation.random_crop:
            image, boxes, keep = random_scale_crop(
                image, boxes, input_size, augmentation.scale_range, augmentation.crop_border
            )
            class_ids = tf.boolean_mask(class_ids, keep)
        else:
            image, letterbox = letterbox_image(image, input_size)
            boxes = letterbox_boxes(boxes, letterbox)
        if flip:
            image, boxes = random_horizontal_flip(image, boxes)
        if augmentation.colour_jitter > 0:
            image = colour_jitter(image, augmentation.colour_jitter)
        if augmentation.lighting_std > 0:
            image = pca_lighting(image, augmentation.lighting_std)
        return image, boxes, class_ids

    def targets(
        image: tf.Tensor, boxes: tf.Tensor, class_ids: tf.Tensor
    ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        encoded = encode_targets(boxes, class_ids, input_size, num_classes, stride, max_objects,
                                 radius=radius, box_targets=box_targets)
        return image, keras_targets(encoded)

    def load(item: dict[str, tf.Tensor]) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        return targets(*sample(item))

    def load_or_mosaic(*items: dict[str, tf.Tensor]) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        # Partners are read only when the draw asks for a mosaic: a plain sample costs one decode, not four.
        def tiled() -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            images, boxes, class_ids = zip(*(sample(item) for item in items))
            return mosaic(list(images), list(boxes), list(class_ids), input_size)

        use_mosaic = tf.random.uniform([]) < augmentation.mosaic
        return targets(*tf.cond(use_mosaic, tiled, lambda: sample(items[0])))

    if augmentation.mosaic > 0:
        # Each photo leads one sample per epoch; its three partners come from independently shuffled copies
        # (shuffled even without ``shuffle``: fixed partners would repeat the same tilings every epoch).
        size = len(index.examples)
        partners = [
            items.shuffle(size, seed=None if seed is None else seed + k, reshuffle_each_iteration=True)
            for k in (1, 2, 3)
        ]
        ds, load = tf.data.Dataset.zip((ds, *partners)), load_or_mosaic

    # By default the order only varies when it is random anyway (shuffling without a seed).
    if deterministic is None:
        deterministic = not shuffle or seed is not None
    ds = ds.map(load, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    # A file that passed the index check but still fails to decode is dropped (named afterwards with a watch).
    ds = ds.ignore_errors(log_warning=True)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(AUTOTUNE)


def build_eval_dataset(index: DatasetIndex, input_size: tuple[int, int], batch_size: int) -> tf.data.Dataset:
    """Batches of ``{"image", "letterbox", "image_size", "image_id"}`` in index order, for evaluation."""
    input_size = (int(input_size[0]), int(input_size[1]))
    tensors = _index_tensors(index)
    del tensors["boxes"], tensors["class_ids"]
    ds = tf.data.Dataset.from_tensor_slices(tensors)

    def load(item: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        image, letterbox = letterbox_image(read_image(item["path"], item["orientation"]), input_size)
        return {
            "image": image,
            "letterbox": letterbox,
            "image_size": item["image_size"],
            "image_id": item["image_id"],
        }

    ds = ds.map(load, num_parallel_calls=AUTOTUNE, deterministic=True).ignore_errors(log_warning=True)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def random_horizontal_flip(
    image: tf.Tensor, boxes: tf.Tensor, probability: float = 0.5
) -> tuple[tf.Tensor, tf.Tensor]:
    """Flip the image left-right with ``probability`` and mirror the ``x1, y1, x2, y2`` boxes with it."""
    width = tf.cast(tf.shape(image)[1], tf.float32)
    do_flip = tf.random.uniform([]) < probability
    flipped_boxes = tf.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=-1)
    return (
        tf.cond(do_flip, lambda: tf.reverse(image, axis=[1]), lambda: image),
        tf.cond(do_flip, lambda: flipped_boxes, lambda: boxes),
    )
