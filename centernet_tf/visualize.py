"""Pictures of what the model sees and predicts, for TensorBoard image summaries (TF ops, any batch size)."""

from __future__ import annotations

import tensorflow as tf

_GT_COLOUR = [0.0, 1.0, 0.0, 1.0]
_PRED_COLOUR = [1.0, 0.2, 0.2, 1.0]


def _normalised_yx(boxes: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """``x1, y1, x2, y2`` pixels -> ``y1, x1, y2, x2`` in 0-1, the layout ``tf.image.draw_bounding_boxes`` wants."""
    # draw_bounding_boxes puts coordinate c at pixel floor(c * (size - 1)); dividing by size - 1 draws the
    # edges on the boxes' own pixel rows and columns.
    scale = tf.constant([height - 1, width - 1, height - 1, width - 1], tf.float32)
    return tf.gather(tf.cast(boxes, tf.float32), [1, 0, 3, 2], axis=-1) / scale


def ground_truth_vs_prediction(images: tf.Tensor, gt_boxes: tf.Tensor, pred_boxes: tf.Tensor) -> tf.Tensor:
    """``[B, H, 2W, 3]`` in 0-1: ground truth (green) on the left, predictions (red) on the right.

    Boxes are ``[B, N, 4]`` in input pixels; rows of zeros (padding) draw nothing visible.
    """
    height, width = int(images.shape[1]), int(images.shape[2])
    pixels = tf.cast(images, tf.float32) / 255.0
    left = tf.image.draw_bounding_boxes(pixels, _normalised_yx(gt_boxes, height, width), [_GT_COLOUR])
    right = tf.image.draw_bounding_boxes(pixels, _normalised_yx(pred_boxes, height, width), [_PRED_COLOUR])
    return tf.concat([left, right], axis=2)


def heatmap_overlay(images: tf.Tensor, heatmap: tf.Tensor, opacity: float = 0.6) -> tf.Tensor:
    """``[B, H, W, 3]`` in 0-1: the image darkened, with the max-over-classes heatmap blended in red."""
    height, width = int(images.shape[1]), int(images.shape[2])
    peak = tf.image.resize(tf.reduce_max(heatmap, axis=-1, keepdims=True), [height, width], method="nearest")
    pixels = tf.cast(images, tf.float32) / 255.0 * (1.0 - opacity)
    red = tf.concat([peak, tf.zeros_like(peak), tf.zeros_like(peak)], axis=-1) * opacity
    return tf.clip_by_value(pixels + red, 0.0, 1.0)
