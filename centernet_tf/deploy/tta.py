"""Image -> detections with the decoder's test-time augmentation: flip test and multi-scale test.

The paper's best numbers use both (Hourglass-104: 40.3 AP plain, 42.2 with flip, 45.1 with flip and five
scales). Every path that turns images into detections (the Keras detector, evaluation, the SavedModel and the
TFLite export) goes through :func:`network_outputs` and :func:`detect_image`, so they agree.

* **Flip test** (as the original ``--flip_test``): the network sees the image and its mirror in one batch;
  the heatmaps (after the sigmoid) and the sizes are averaged with the mirror's flipped back, the offset is
  the plain image's. It is in the graph, so it exports (SavedModel and TFLite).
* **Multi-scale test** (``--test_scales``): the image is letterboxed zoomed by each factor into the fixed
  input (a factor above 1 crops the borders, below 1 pads more), decoded, mapped back to original pixels, and
  all scales' detections are merged per class by Gaussian soft-NMS (the original's) or NMS. The SavedModel
  does it inside; a TFLite file runs one letterboxed input, so it has the flip test only.
"""

from __future__ import annotations


import keras
import tensorflow as tf

from centernet_tf.data.letterbox import letterbox_image
from centernet_tf.model.decode import CenterNetDecoder

def network_outputs(model: keras.Model, images: tf.Tensor, flip_test: bool = False) -> dict[str, tf.Tensor]:
    """``model(images)`` (last stack), or with ``flip_test`` the flip-averaged heatmap and wh."""
    images = tf.cast(images, tf.float32)
    if not flip_test:
        outputs = model(images, training=False)
        return {key: outputs[key] for key in ("heatmap", "wh", "offset") if key in outputs}
    count = tf.shape(images)[0]
    both = model(tf.concat([images, tf.reverse(images, axis=[2])], axis=0), training=False)

    def averaged(key: str, mirrored_channels: list[int] | None = None) -> tf.Tensor:
        flipped_back = tf.reverse(both[key][count:], axis=[2])
        if mirrored_channels:
            flipped_back = tf.gather(flipped_back, mirrored_channels, axis=-1)
        return (both[key][:count] + flipped_back) / 2.0

    # The giou_ttf head's 4 distances (left, top, right, bottom): a mirror swaps left and right.
    averaged_sizes = averaged("wh", [2, 1, 0, 3] if both["wh"].shape[-1] == 4 else None)
    outputs = {"heatmap": averaged("heatmap"), "wh": averaged_sizes}
    if "offset" in both:
        outputs["offset"] = both["offset"][:count]
    return outputs


def detect_image(
    model: keras.Model, decoder: CenterNetDecoder, image: tf.Tensor, input_size: tuple[int, int]
) -> dict[str, tf.Tensor]:
    """One ``[h, w, 3]`` image -> the decoder's batched outputs ``[1, K, ...]`` in original-image pixels."""
    size = tf.shape(image)[:2]
    per_scale = []
    for scale in decoder.test_scales:
        letterboxed, letterbox = letterbox_image(image, input_size, zoom=scale)
        outputs = network_outputs(model, letterboxed[None], decoder.flip_test)
        per_scale.append(decoder({**outputs, "letterbox": letterbox[None], "image_size": size[None]}))
    if len(per_scale) == 1:
        return per_scale[0]
    return merge_scales(per_scale, decoder)


def merge_scales(per_scale: list[dict[str, tf.Tensor]], decoder: CenterNetDecoder) -> dict[str, tf.Tensor]:
    """The detections of several scales (decoder outputs of batch 1, original pixels) merged per class by
    soft-NMS or NMS, sorted, thresholded and padded to ``max_detections`` like the decoder's own output."""
    boxes = tf.concat([d["boxes"][0] for d in per_scale], axis=0)
    scores = tf.concat([d["scores"][0] for d in per_scale], axis=0)
    classes = tf.concat([d["classes"][0] for d in per_scale], axis=0)
    valid = classes >= 0
    boxes, scores, classes = tf.boolean_mask(boxes, valid), tf.boolean_mask(scores, valid), tf.boolean_mask(classes, valid)
    merger = CenterNetDecoder(**{
        **decoder.get_config(), "nms": True, "nms_method": "soft" if decoder.scale_merge == "soft_nms" else "hard",
        "nms_class_agnostic": False,
    })
    return merger.class_wise_nms(boxes[None], scores[None], classes[None], None)


def describe(decoder: CenterNetDecoder) -> str:
    """``"flip + scales 0.75, 1, 1.25"`` for logs and result files (``"none"`` without augmentation)."""
    parts = (["flip"] if decoder.flip_test else []) + (
        [f"scales {', '.join(f'{s:g}' for s in decoder.test_scales)} ({decoder.scale_merge})"]
        if decoder.test_scales != (1.0,) else []
    )
    return " + ".join(parts) or "none"
