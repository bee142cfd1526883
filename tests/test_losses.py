"""Losses against the reference formulas, their serialization, and finite gradients on empty images."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from centernet_tf.losses import HeatmapFocalLoss, RegressionL1Loss, centernet_losses
from centernet_tf.model import build_centernet
from centernet_tf.targets import encode_targets, keras_targets
from reference import focal_loss_reference, reg_l1_loss_reference


def _random_heatmaps(rng: np.random.Generator, shape: tuple[int, ...], peaks: int) -> np.ndarray:
    gt = rng.uniform(0, 0.95, shape).astype(np.float32)
    flat = gt.reshape(-1)
    flat[rng.choice(flat.size, peaks, replace=False)] = 1.0
    return gt


@pytest.mark.parametrize("peaks", [0, 1, 7])
def test_focal_loss_matches_reference(peaks: int) -> None:
    rng = np.random.default_rng(peaks)
    gt = _random_heatmaps(rng, (2, 8, 12, 3), peaks)
    pred = rng.uniform(0, 1, gt.shape).astype(np.float32)
    pred.reshape(-1)[:5] = [0.0, 1.0, 0.0, 1.0, 0.5]  # extremes must be clamped, not NaN
    got = float(HeatmapFocalLoss()(gt, pred))
    assert np.isfinite(got)
    assert got == pytest.approx(focal_loss_reference(gt, pred), rel=1e-5)


def test_focal_loss_values_for_a_tiny_case() -> None:
    # One positive predicted at 0.5 and one negative (gt 0.5) predicted at 0.25:
    # pos = log(0.5) * 0.5^2, neg = log(0.75) * 0.25^2 * 0.5^4, loss = -(pos + neg) / 1.
    gt = np.array([[[[1.0], [0.5]]]], np.float32)
    pred = np.array([[[[0.5], [0.25]]]], np.float32)
    expected = -(np.log(0.5) * 0.25 + np.log(0.75) * 0.0625 * 0.0625)
    assert float(HeatmapFocalLoss()(gt, pred)) == pytest.approx(expected, rel=1e-6)


def test_regression_l1_matches_reference() -> None:
    rng = np.random.default_rng(3)
    pred = rng.normal(size=(2, 6, 10, 2)).astype(np.float32)
    target = rng.normal(size=(2, 5, 2)).astype(np.float32)
    indices = rng.integers(0, 60, size=(2, 5))
    mask = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0]], np.float32)
    packed = np.concatenate([target, indices[..., None], mask[..., None]], axis=-1).astype(np.float32)
    got = float(RegressionL1Loss()(packed, pred))
    assert got == pytest.approx(reg_l1_loss_reference(pred, target, indices, mask), rel=1e-5)
    # No object at all: zero, not NaN.
    assert float(RegressionL1Loss()(packed * np.array([1, 1, 1, 0], np.float32), pred)) == 0.0


def test_losses_serialize_with_their_parameters() -> None:
    loss = HeatmapFocalLoss(alpha=3.0, beta=2.0, eps=1e-3, name="hm")
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, HeatmapFocalLoss)
    assert (restored.alpha, restored.beta, restored.eps, restored.name) == (3.0, 2.0, 1e-3, "hm")
    reg = keras.losses.deserialize(keras.losses.serialize(RegressionL1Loss(name="wh")))
    assert isinstance(reg, RegressionL1Loss) and reg.name == "wh"


def _tiny_batch(boxes: list[np.ndarray], size=(64, 96), num_classes=2):
    images, targets = [], []
    rng = np.random.default_rng(0)
    for b in boxes:
        images.append(rng.uniform(0, 255, (*size, 3)).astype(np.float32))
        targets.append(keras_targets(encode_targets(b, np.zeros(len(b), np.int32), size, num_classes, max_objects=8)))
    y = {k: tf.stack([t[k] for t in targets]) for k in targets[0]}
    return tf.constant(np.stack(images)), y


def test_empty_images_give_finite_loss_and_gradients() -> None:
    model = build_centernet(2, "resnet10_slim", (64, 96, 3))
    losses = centernet_losses()
    images, y = _tiny_batch([np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32)])
    with tf.GradientTape() as tape:
        out = model(images, training=True)
        total = sum(losses[k](y[k], out[k]) for k in losses)
    grads = tape.gradient(total, model.trainable_variables)
    assert np.isfinite(float(total)) and float(total) > 0
    assert float(losses["wh"](y["wh"], out["wh"])) == 0.0
    assert all(np.isfinite(g.numpy()).all() for g in grads if g is not None)


def test_fit_reports_each_term_and_weighted_total() -> None:
    model = build_centernet(2, "resnet10_slim", (64, 96, 3))
    weights = {"heatmap": 1.0, "wh": 0.1, "offset": 1.0}
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=centernet_losses(), loss_weights=weights)
    images, y = _tiny_batch([np.array([[10, 10, 40, 30]], np.float32), np.zeros((0, 4), np.float32)])
    history = model.fit(tf.data.Dataset.from_tensors((images, y)), epochs=1, verbose=0).history
    assert {"loss", "heatmap_loss", "wh_loss", "offset_loss"} <= set(history)
    weighted = sum(weights[k] * history[f"{k}_loss"][0] for k in weights)
    assert history["loss"][0] == pytest.approx(weighted, rel=1e-5)
    assert all(np.isfinite(v[0]) for v in history.values())
