"""Letterboxing: resize keeping the aspect ratio, pad to the network input, and remember how to undo it.

Keras' ``Resizing(pad_to_aspect_ratio=True)`` does the same image operation but does not expose the scale and
padding, which the decoder (and the exported graph) need to map boxes back to the original image, so the
few lines of math live here, shared by the training pipeline, evaluation and export.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf


def letterbox_image(
    image: Any, input_size: tuple[int, int], pad_value: float = 0.0, zoom: float = 1.0
) -> tuple[tf.Tensor, tf.Tensor]:
    """Resize ``image`` ``[h, w, 3]`` into ``input_size`` ``(H, W)`` without distortion, centred, padded.

    Returns the float32 image (0-255 range kept) and ``letterbox = (scale, pad_x, pad_y)``: a point ``p`` of
    the original image lands at ``p * scale + pad`` in the network input. ``zoom`` multiplies the scale (the
    multi-scale test): above 1 the centre is kept and the borders cropped (``pad`` negative).
    """
    target_h, target_w = int(input_size[0]), int(input_size[1])
    shape = tf.shape(image)
    h = tf.cast(shape[0], tf.float32)
    w = tf.cast(shape[1], tf.float32)
    scale = tf.minimum(target_h / h, target_w / w) * zoom
    limit_h, limit_w = (target_h, target_w) if zoom <= 1.0 else (2**30, 2**30)
    new_h = tf.clip_by_value(tf.cast(tf.round(h * scale), tf.int32), 1, limit_h)
    new_w = tf.clip_by_value(tf.cast(tf.round(w * scale), tf.int32), 1, limit_w)
    resized = tf.image.resize(tf.cast(image, tf.float32), tf.stack([new_h, new_w]), method="bilinear")
    if zoom > 1.0:  # keep the centre window of what overflows the input
        crop_y, crop_x = tf.maximum(new_h - target_h, 0) // 2, tf.maximum(new_w - target_w, 0) // 2
        kept_h, kept_w = tf.minimum(new_h, target_h), tf.minimum(new_w, target_w)
        resized = resized[crop_y:crop_y + kept_h, crop_x:crop_x + kept_w]
    else:
        crop_y = crop_x = 0
        kept_h, kept_w = new_h, new_w
    pad_y = (target_h - kept_h) // 2
    pad_x = (target_w - kept_w) // 2
    padded = tf.pad(
        resized - pad_value,
        [[pad_y, target_h - kept_h - pad_y], [pad_x, target_w - kept_w - pad_x], [0, 0]],
    ) + pad_value
    padded = tf.ensure_shape(padded, [target_h, target_w, None])
    letterbox = tf.stack([scale, tf.cast(pad_x - crop_x, tf.float32), tf.cast(pad_y - crop_y, tf.float32)])
    return padded, letterbox


def letterbox_boxes(boxes: Any, letterbox: Any) -> tf.Tensor:
    """Map ``[N, 4]`` ``x1, y1, x2, y2`` boxes from original-image pixels into the letterboxed input."""
    boxes = tf.cast(boxes, tf.float32)
    scale, pad_x, pad_y = letterbox[0], letterbox[1], letterbox[2]
    return boxes * scale + tf.stack([pad_x, pad_y, pad_x, pad_y])


def letterbox_geometry(height: int, width: int, input_size: tuple[int, int]) -> tuple[float, int, int, int, int]:
    """``(scale, new_h, new_w, pad_x, pad_y)`` of :func:`letterbox_image`, in the same float32 arithmetic."""
    target_h, target_w = int(input_size[0]), int(input_size[1])
    scale = min(np.float32(target_h) / np.float32(height), np.float32(target_w) / np.float32(width))
    new_h = int(np.clip(np.round(np.float32(height) * scale), 1, target_h))
    new_w = int(np.clip(np.round(np.float32(width) * scale), 1, target_w))
    return float(scale), new_h, new_w, (target_w - new_w) // 2, (target_h - new_h) // 2


def letterbox_array(image: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`letterbox_image` on a numpy image with OpenCV, for TFLite inference without TensorFlow ops.

    Same geometry; pixels within ~0.01 of 255 of TensorFlow's (both are half-pixel, non-antialiased
    bilinear). Measured per 640x480 image before a 4.4 ms int8 TFLite network on 2 cores: detection took
    5.0 ms with this letterbox against 6.6 ms with the TensorFlow one, whose thread pool competes with the
    interpreter's.
    Raises ImportError without OpenCV (``pip install opencv-python-headless``).
    """
    import cv2

    height, width = image.shape[:2]
    scale, new_h, new_w, pad_x, pad_y = letterbox_geometry(height, width, input_size)
    padded = np.zeros((int(input_size[0]), int(input_size[1]), image.shape[2]), np.float32)
    resized = cv2.resize(image.astype(np.float32), (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    padded[pad_y:pad_y + new_h, pad_x:pad_x + new_w] = resized.reshape(new_h, new_w, -1)
    return padded, np.array([scale, pad_x, pad_y], np.float32)
