"""Test-time augmentation: the flip test and the multi-scale test against hand-computed references."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from centernet_tf.data.letterbox import letterbox_image
from centernet_tf.deploy.tta import detect_image, merge_scales, network_outputs
from centernet_tf.model.backbones import register_backbone
from centernet_tf.model.centernet import build_centernet
from centernet_tf.model.decode import CenterNetDecoder

SIZE = (64, 96)


@register_backbone("mirror_equivariant_test", size_multiple=4)
def _mirror_equivariant(image: keras.KerasTensor, weights: str | None) -> dict:
    """Stride-1 "same" convolutions and a 4x4 pooling: with left-right symmetric kernels, mirroring the input
    mirrors every map (strided "same" convolutions would not: their padding is one-sided)."""
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(image)
    return {"P2": keras.layers.AveragePooling2D(4, name="pool")(x)}


def _symmetrise(model: keras.Model) -> None:
    """Make every 3x3 kernel left-right symmetric: the network becomes mirror-equivariant."""
    for layer in [*model.backbone.layers, *model.layers]:
        if isinstance(layer, keras.layers.Conv2D) and layer.kernel_size == (3, 3):
            kernel, *rest = layer.get_weights()
            layer.set_weights([(kernel + kernel[:, ::-1]) / 2, *rest])


def _random_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = build_centernet(2, "resnet10_slim", (*SIZE, 3), decoder={"score_threshold": 0.0})
    kernel, bias = model.head_output_layers["heatmap"].get_weights()
    model.head_output_layers["heatmap"].set_weights([kernel * 400.0, bias])  # spread scores, as training does
    kernel, bias = model.head_output_layers["wh"].get_weights()
    model.head_output_layers["wh"].set_weights([kernel * 100.0, bias + 4.0])  # boxes of some 16 pixels
    return model


def test_flip_test_of_a_mirror_symmetric_input_equals_the_plain_output() -> None:
    keras.utils.set_random_seed(1)
    model = build_centernet(2, "mirror_equivariant_test", (*SIZE, 3), neck="identity")
    _symmetrise(model)
    half = np.random.default_rng(0).uniform(0, 255, (1, SIZE[0], SIZE[1] // 2, 3)).astype(np.float32)
    symmetric = np.concatenate([half, half[:, :, ::-1]], axis=2)
    plain = network_outputs(model, symmetric)
    flipped = network_outputs(model, symmetric, flip_test=True)
    for key in ("heatmap", "wh", "offset"):
        np.testing.assert_allclose(flipped[key].numpy(), plain[key].numpy(), atol=1e-5, err_msg=key)
    # The mirrored half really differs from the plain one, so the test compares something.
    heatmap = plain["heatmap"].numpy()
    assert np.abs(heatmap - heatmap[:, :, ::-1]).max() < 1e-5 and heatmap.std() > 1e-4


def test_flip_test_averages_heatmap_and_wh_with_the_mirror_and_keeps_the_plain_offset() -> None:
    model = _random_model()
    images = np.random.default_rng(2).uniform(0, 255, (2, *SIZE, 3)).astype(np.float32)
    plain = {k: v.numpy() for k, v in model(images, training=False).items()}
    mirror = {k: v.numpy()[:, :, ::-1] for k, v in model(images[:, :, ::-1].copy(), training=False).items()}
    got = network_outputs(model, images, flip_test=True)
    np.testing.assert_allclose(got["heatmap"].numpy(), (plain["heatmap"] + mirror["heatmap"]) / 2, atol=1e-5)
    np.testing.assert_allclose(got["wh"].numpy(), (plain["wh"] + mirror["wh"]) / 2, atol=1e-4)
    np.testing.assert_allclose(got["offset"].numpy(), plain["offset"], atol=1e-5)
    assert np.abs(plain["heatmap"] - mirror["heatmap"]).max() > 1e-3  # a model that is not symmetric


def test_multi_scale_with_one_scale_equals_single_scale_and_duplicate_scales_merge_to_it() -> None:
    model = _random_model(3)
    image = tf.constant(np.random.default_rng(4).integers(0, 256, (50, 120, 3), dtype=np.uint8))
    plain_decoder = CenterNetDecoder(score_threshold=0.05, max_detections=20)
    single = detect_image(model, plain_decoder, image, SIZE)
    letterboxed, letterbox = letterbox_image(image, SIZE)
    reference = plain_decoder({**model(letterboxed[None], training=False), "letterbox": letterbox[None],
                               "image_size": tf.shape(image)[:2][None]})
    for key in ("boxes", "scores", "classes", "num_detections"):
        np.testing.assert_array_equal(single[key].numpy(), reference[key].numpy())
    count = int(single["num_detections"][0])
    assert count > 2
    # The same scale twice: every detection has an exact duplicate, which NMS removes.
    twice = CenterNetDecoder(score_threshold=0.05, max_detections=20, test_scales=[1.0, 1.0], scale_merge="nms",
                             nms_iou_threshold=0.99)
    merged = detect_image(model, twice, image, SIZE)
    assert int(merged["num_detections"][0]) == count
    order = np.argsort(-single["scores"].numpy()[0, :count], kind="stable")
    np.testing.assert_allclose(merged["scores"].numpy()[0, :count], single["scores"].numpy()[0, :count][order])
    np.testing.assert_allclose(merged["boxes"].numpy()[0, :count], single["boxes"].numpy()[0, :count][order])


def test_soft_nms_merge_weighs_overlaps_as_the_original() -> None:
    """Original soft-NMS (method 2): a same-class neighbour's score times exp(-iou^2 / sigma); other classes
    and disjoint boxes are untouched."""
    boxes = [[0, 0, 10, 10], [0, 0, 10, 12], [0, 0, 10, 10], [50, 50, 60, 60]]
    detections = {
        "boxes": tf.constant([boxes], tf.float32), "scores": tf.constant([[0.9, 0.8, 0.7, 0.6]]),
        "classes": tf.constant([[0, 0, 1, 0]], tf.int32), "num_detections": tf.constant([4]),
    }
    decoder = CenterNetDecoder(max_detections=10, score_threshold=0.001, test_scales=[1.0, 2.0], soft_nms_sigma=0.5)
    merged = merge_scales([detections], decoder)
    iou = 100 / 120
    expected = sorted([0.9, 0.8 * math.exp(-iou**2 / 0.5), 0.7, 0.6], reverse=True)
    assert int(merged["num_detections"][0]) == 4
    np.testing.assert_allclose(merged["scores"].numpy()[0, :4], expected, rtol=1e-5)
    np.testing.assert_array_equal(merged["classes"].numpy()[0, 4:], -1)


@pytest.mark.parametrize("zoom", [0.5, 1.0, 1.5])
def test_zoomed_letterbox_maps_points_as_it_says(zoom: float) -> None:
    """A bright pixel of the original lands where ``p * scale + pad`` says, cropping (zoom > 1) included."""
    image = np.zeros((60, 100, 3), np.uint8)
    image[30:32, 48:50] = 255
    letterboxed, (scale, pad_x, pad_y) = letterbox_image(tf.constant(image), SIZE, zoom=zoom)
    assert letterboxed.shape == (*SIZE, 3)
    assert math.isclose(float(scale), min(SIZE[0] / 60, SIZE[1] / 100) * zoom, rel_tol=1e-6)
    y, x = np.unravel_index(np.argmax(letterboxed.numpy()[..., 0]), SIZE)
    assert abs(x - (49 * float(scale) + float(pad_x))) <= 1.5 and abs(y - (31 * float(scale) + float(pad_y))) <= 1.5
    if zoom > 1:
        assert float(pad_x) < 0  # the borders were cropped


def test_bad_test_time_settings_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="test_scales must be positive"):
        CenterNetDecoder(test_scales=[1.0, 0.0])
    with pytest.raises(ValueError, match="scale_merge must be one of soft_nms, nms"):
        CenterNetDecoder(scale_merge="wbf")
