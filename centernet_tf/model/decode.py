"""Turn CenterNet's output maps into boxes, in the graph, so evaluation and export share one decoder."""

from __future__ import annotations

import inspect
from typing import Any

import keras
import tensorflow as tf

#: How detections of several test scales are merged.
SCALE_MERGES = ("soft_nms", "nms")
#: The decoder's optional NMS: "hard" removes overlapping boxes, "soft" lowers their scores (Gaussian).
NMS_METHODS = ("hard", "soft")


@keras.saving.register_keras_serializable(package="centernet_tf")
class CenterNetDecoder(keras.layers.Layer):
    """Peaks -> top-K -> boxes, with optional class-wise NMS and the letterbox undone.

    Inputs: a dict with ``"heatmap"`` ``[B, h, w, C]``, ``"wh"`` and ``"offset"`` ``[B, h, w, 2]`` (the model's
    outputs; a 4-channel ``"wh"`` is the ``giou_ttf`` head's distances to the box sides, and needs no offset) and optionally ``"letterbox"`` ``[B, 3]`` = ``(scale, pad_x, pad_y)`` plus
    ``"image_size"`` ``[B, 2]`` = original ``(height, width)``; without them boxes stay in input pixels.
    Outputs a dict of fixed-size tensors (padded to ``max_detections``):
    ``boxes`` ``[B, K, 4]`` as ``x1, y1, x2, y2`` pixels, ``scores`` ``[B, K]``, ``classes`` ``[B, K]`` int32
    (0-based, -1 for padding) and ``num_detections`` ``[B]`` int32. Rows are sorted by score; rows past
    ``num_detections`` have score 0.

    A peak is a cell equal to the max of its 3x3 neighbourhood (the paper's NMS-free decoding); ``nms=True``
    additionally runs ``tf.image.combined_non_max_suppression`` per class, useful when objects of one class
    produce adjacent peaks.

    Test-time augmentation settings travel here too, since they decide how an image becomes detections (they
    are applied by :mod:`centernet_tf.deploy.tta`, around the network): ``flip_test`` averages the heatmap and
    wh of the image and its mirror (the original ``--flip_test``); ``test_scales`` runs the network on the
    image zoomed by each factor and merges the detections per class with ``scale_merge`` (``"soft_nms"``,
    Gaussian with sigma ``soft_nms_sigma``, as the original ``--test_scales``, or ``"nms"``).
    """

    def __init__(
        self,
        max_detections: int = 100,
        score_threshold: float = 0.01,
        nms: bool = False,
        nms_iou_threshold: float = 0.5,
        stride: int = 4,
        flip_test: bool = False,
        test_scales: tuple[float, ...] | list[float] = (1.0,),
        scale_merge: str = "soft_nms",
        soft_nms_sigma: float = 0.5,
        nms_method: str = "hard",
        nms_class_agnostic: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_detections = int(max_detections)
        self.score_threshold = float(score_threshold)
        self.nms = bool(nms)
        self.nms_iou_threshold = float(nms_iou_threshold)
        self.stride = int(stride)
        self.flip_test = bool(flip_test)
        self.test_scales = tuple(float(s) for s in test_scales)
        if not self.test_scales or min(self.test_scales) <= 0:
            raise ValueError(f"test_scales must be positive zoom factors, got {list(test_scales)}")
        if scale_merge not in SCALE_MERGES:
            raise ValueError(f"scale_merge must be one of {', '.join(SCALE_MERGES)}, got {scale_merge!r}")
        self.scale_merge = scale_merge
        self.soft_nms_sigma = float(soft_nms_sigma)
        if nms_method not in NMS_METHODS:
            raise ValueError(f"nms_method must be one of {', '.join(NMS_METHODS)}, got {nms_method!r}")
        self.nms_method = nms_method
        self.nms_class_agnostic = bool(nms_class_agnostic)

    def call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        heatmap = tf.convert_to_tensor(inputs["heatmap"], tf.float32)
        wh = tf.convert_to_tensor(inputs["wh"], tf.float32)
        shape = tf.shape(heatmap)
        batch, map_w, num_classes = shape[0], shape[2], shape[3]

        peaks = tf.nn.max_pool2d(heatmap, ksize=3, strides=1, padding="SAME")
        heatmap = tf.where(tf.equal(heatmap, peaks), heatmap, tf.zeros_like(heatmap))
        flat = tf.reshape(heatmap, [batch, -1])
        k = tf.minimum(self.max_detections, tf.shape(flat)[1])
        scores, flat_idx = tf.math.top_k(flat, k=k, sorted=True)
        classes = flat_idx % num_classes
        cell = flat_idx // num_classes
        ys = tf.cast(cell // map_w, tf.float32)
        xs = tf.cast(cell % map_w, tf.float32)
        channels = int(wh.shape[-1])
        # A negative size (an untrained or diverging wh head) would give an inverted box: clamp it to 0.
        size_at = tf.maximum(tf.gather(tf.reshape(wh, [batch, -1, channels]), cell, batch_dims=1), 0.0)
        if channels == 4:  # giou_ttf: distances from the peak pixel to the left, top, right and bottom sides
            corners = tf.stack([xs - size_at[..., 0], ys - size_at[..., 1], xs + size_at[..., 2], ys + size_at[..., 3]], -1)
        else:  # the paper's width and height around the peak moved by its sub-pixel offset
            offset = tf.convert_to_tensor(inputs["offset"], tf.float32)
            off_at = tf.gather(tf.reshape(offset, [batch, -1, 2]), cell, batch_dims=1)
            cx, cy = xs + off_at[..., 0], ys + off_at[..., 1]
            half_w, half_h = size_at[..., 0] / 2.0, size_at[..., 1] / 2.0
            corners = tf.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=-1)
        boxes = corners * float(self.stride)

        # NMS on the boxes in input pixels, before the letterbox is undone and the boxes clipped to the image:
        # that is what a TFLite file (which gets no letterbox) can do too, so every runtime keeps the same boxes.
        if self.nms:
            found = self.class_wise_nms(boxes, scores, classes, num_classes)
        else:
            found = self._threshold_and_pad(boxes, scores, classes, k)
        if "letterbox" in inputs and inputs["letterbox"] is not None:
            restored = undo_letterbox(found["boxes"], inputs["letterbox"], inputs.get("image_size"))
            found["boxes"] = tf.where((found["classes"] >= 0)[..., None], restored, 0.0)
        return found

    def _threshold_and_pad(self, boxes: tf.Tensor, scores: tf.Tensor, classes: tf.Tensor, k: tf.Tensor) -> dict:
        keep = scores >= self.score_threshold
        # Scores are sorted, so the kept detections are a prefix of each row.
        num = tf.reduce_sum(tf.cast(keep, tf.int32), axis=1)
        pad = self.max_detections - k
        scores = tf.pad(tf.where(keep, scores, 0.0), [[0, 0], [0, pad]])
        classes = tf.pad(tf.where(keep, classes, -1), [[0, 0], [0, pad]], constant_values=-1)
        boxes = tf.pad(tf.where(keep[..., None], boxes, 0.0), [[0, 0], [0, pad], [0, 0]])
        return {"boxes": boxes, "scores": scores, "classes": tf.cast(classes, tf.int32), "num_detections": num}

    def class_wise_nms(
        self, boxes: tf.Tensor, scores: tf.Tensor, classes: tf.Tensor, num_classes: tf.Tensor
    ) -> dict:
        """Per-class NMS with one ``NonMaxSuppressionV5`` per image: boxes of different classes are moved
        apart (by more than any coordinate) so they never overlap (not moved: ``nms_class_agnostic``).
        ``combined_non_max_suppression`` does the per-class part itself but is not a TFLite builtin; NMS V5 is,
        so a TFLite export with NMS runs builtin ops. ``nms_method="soft"``: Gaussian soft-NMS, neighbours'
        scores times ``exp(-iou^2 / soft_nms_sigma)`` (the original's convention; TensorFlow's sigma is half)."""
        offset = 0.0 if self.nms_class_agnostic else tf.reduce_max(tf.abs(boxes)) + 1.0
        shifted = boxes + tf.cast(classes, boxes.dtype)[..., None] * offset
        yx = tf.gather(shifted, [1, 0, 3, 2], axis=-1)
        soft = self.nms_method == "soft"
        sigma = self.soft_nms_sigma / 2.0 if soft else 0.0

        def one_image(args: tuple[tf.Tensor, ...]) -> tuple[tf.Tensor, ...]:
            image_yx, image_boxes, image_scores, image_classes = args
            keep, kept_scores, count = tf.raw_ops.NonMaxSuppressionV5(
                boxes=image_yx, scores=image_scores, max_output_size=self.max_detections,
                iou_threshold=1.0 if soft else self.nms_iou_threshold, score_threshold=self.score_threshold,
                soft_nms_sigma=sigma, pad_to_max_output_size=True,
            )
            valid = tf.range(self.max_detections) < count
            return (
                tf.where(valid[:, None], tf.gather(image_boxes, keep), 0.0),
                tf.where(valid, kept_scores, 0.0),
                tf.where(valid, tf.gather(image_classes, keep), -1),
                count,
            )

        if boxes.shape[0] == 1:  # the exported graphs: no loop op
            kept = [t[None] for t in one_image((yx[0], boxes[0], scores[0], tf.cast(classes[0], tf.int32)))]
        else:
            kept = tf.map_fn(
                one_image, (yx, boxes, scores, tf.cast(classes, tf.int32)),
                fn_output_signature=(tf.float32, tf.float32, tf.int32, tf.int32),
            )
        return {"boxes": kept[0], "scores": kept[1], "classes": kept[2], "num_detections": tf.cast(kept[3], tf.int32)}

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            max_detections=self.max_detections,
            score_threshold=self.score_threshold,
            nms=self.nms,
            nms_iou_threshold=self.nms_iou_threshold,
            stride=self.stride,
            flip_test=self.flip_test,
            test_scales=list(self.test_scales),
            scale_merge=self.scale_merge,
            soft_nms_sigma=self.soft_nms_sigma,
            nms_method=self.nms_method,
            nms_class_agnostic=self.nms_class_agnostic,
        )
        return config


#: What a user chooses about decoding: every constructor argument of :class:`CenterNetDecoder` but the stride
#: (the model's). The config's ``eval`` section holds these keys and the model saves them; nothing lists them
#: by hand elsewhere.
DECODER_SETTINGS = tuple(
    name for name, parameter in inspect.signature(CenterNetDecoder.__init__).parameters.items()
    if name not in ("self", "stride") and parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
)


def decoder_settings(source: Any) -> dict[str, Any]:
    """The decoder settings of ``source``: a mapping or an object (the config's ``eval`` section, a decoder),
    keys outside :data:`DECODER_SETTINGS` ignored, absent ones left to the decoder's defaults."""
    get = source.get if isinstance(source, dict) else lambda name, default: getattr(source, name, default)
    missing = object()
    found = {name: get(name, missing) for name in DECODER_SETTINGS}
    return {name: list(v) if isinstance(v, tuple) else v for name, v in found.items() if v is not missing}


def undo_letterbox(boxes: tf.Tensor, letterbox: tf.Tensor, image_size: tf.Tensor | None = None) -> tf.Tensor:
    """Map ``[B, K, 4]`` boxes from network-input pixels back to original-image pixels, clipped to the image.

    ``letterbox`` is ``[B, 3]`` with ``(scale, pad_x, pad_y, ...)`` as produced by
    :func:`centernet_tf.data.letterbox.letterbox_image`; ``image_size`` is ``[B, 2]`` original ``(height, width)``.
    """
    letterbox = tf.cast(letterbox, tf.float32)
    scale = letterbox[:, 0][:, None, None]
    pad = tf.stack([letterbox[:, 1], letterbox[:, 2], letterbox[:, 1], letterbox[:, 2]], axis=-1)[:, None, :]
    boxes = (boxes - pad) / scale
    if image_size is not None:
        size = tf.cast(image_size, tf.float32)
        upper = tf.stack([size[:, 1], size[:, 0], size[:, 1], size[:, 0]], axis=-1)[:, None, :]
        boxes = tf.clip_by_value(boxes, 0.0, upper)
    return boxes
