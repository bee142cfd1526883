"""Pictures of what the model sees and predicts: TensorBoard image summaries (TF ops, any batch size) and
labelled boxes on full-size images for ``predict.py``."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from centernet_tf.model.detections import Detections


def ground_truth_vs_prediction(
    images: np.ndarray,
    truths: list[tuple[np.ndarray, np.ndarray]],
    predictions: list[Detections],
    class_names: list[str] | None = None,
) -> np.ndarray:
    """``uint8 [B, H, 2W, 3]``: ground truth on the left (boxes labelled with class names), predictions on the
    right (labelled ``"name 0.87"``), boxes in input pixels, one colour per class."""
    pictures = []
    for image, (boxes, classes), found in zip(np.asarray(images), truths, predictions):
        pixels = np.clip(np.round(image), 0, 255).astype(np.uint8)
        truth = Detections(np.asarray(boxes, np.float32), np.ones(len(boxes), np.float32), np.asarray(classes))
        left = draw_detections(pixels, truth, class_names, show_scores=False)
        pictures.append(np.concatenate([left, draw_detections(pixels, found, class_names)], axis=1))
    return np.stack(pictures)


def heatmap_overlay(images: tf.Tensor, heatmap: tf.Tensor, opacity: float = 0.6) -> tf.Tensor:
    """``[B, H, W, 3]`` in 0-1: the image darkened, with the max-over-classes heatmap blended in red."""
    height, width = int(images.shape[1]), int(images.shape[2])
    peak = tf.image.resize(tf.reduce_max(heatmap, axis=-1, keepdims=True), [height, width], method="nearest")
    pixels = tf.cast(images, tf.float32) / 255.0 * (1.0 - opacity)
    red = tf.concat([peak, tf.zeros_like(peak), tf.zeros_like(peak)], axis=-1) * opacity
    return tf.clip_by_value(pixels + red, 0.0, 1.0)


#: Box colours by class id (cycled), chosen to stay readable on light and dark images.
_CLASS_COLOURS = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
                  (240, 50, 230), (210, 245, 60), (250, 190, 190), (0, 128, 128)]


def draw_detections(
    image: np.ndarray, detections: Detections, class_names: list[str] | None = None, show_scores: bool = True
) -> np.ndarray:
    """A copy of the RGB ``uint8`` image with each box drawn and labelled ``"name 0.87"`` (for ``predict.py``;
    ``show_scores=False`` for ground truth: ``"name"``)."""
    from PIL import Image, ImageDraw

    picture = Image.fromarray(np.asarray(image, np.uint8))
    draw = ImageDraw.Draw(picture)
    line = max(1, round(min(picture.size) / 300))
    for box, score, cls in zip(detections.boxes, detections.scores, detections.classes):
        colour = _CLASS_COLOURS[int(cls) % len(_CLASS_COLOURS)]
        x1, x2 = sorted((float(box[0]), float(box[2])))
        y1, y2 = sorted((float(box[1]), float(box[3])))
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=line)
        name = class_names[int(cls)] if class_names and 0 <= cls < len(class_names) else str(int(cls))
        label = f"{name} {float(score):.2f}" if show_scores else name
        left, top, right, bottom = draw.textbbox((x1, y1), label)
        lift = bottom - top + 2
        y_text = y1 - lift if y1 - lift >= 0 else y1
        draw.rectangle([x1, y_text, x1 + right - left + 2, y_text + lift], fill=colour)
        draw.text((x1 + 1, y_text), label, fill=(255, 255, 255))
    return np.asarray(picture)
