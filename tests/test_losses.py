"""Losses against the reference formulas and the previous per-output Keras losses; the model's compute_loss."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from centernet_tf.model.centernet import build_centernet
from centernet_tf.model.losses import CenterNetLoss, focal_loss, regression_l1_loss
from centernet_tf.model.targets import encode_targets, keras_targets
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
    got = float(focal_loss(gt, pred))
    assert np.isfinite(got)
    assert got == pytest.approx(focal_loss_reference(gt, pred), rel=1e-5)


def test_focal_loss_values_for_a_tiny_case() -> None:
    # One positive predicted at 0.5 and one negative (gt 0.5) predicted at 0.25:
    # pos = log(0.5) * 0.5^2, neg = log(0.75) * 0.25^2 * 0.5^4, loss = -(pos + neg) / 1.
    gt = np.array([[[[1.0], [0.5]]]], np.float32)
    pred = np.array([[[[0.5], [0.25]]]], np.float32)
    expected = -(np.log(0.5) * 0.25 + np.log(0.75) * 0.0625 * 0.0625)
    assert float(focal_loss(gt, pred)) == pytest.approx(expected, rel=1e-6)


def test_regression_l1_matches_reference() -> None:
    rng = np.random.default_rng(3)
    pred = rng.normal(size=(2, 6, 10, 2)).astype(np.float32)
    target = rng.normal(size=(2, 5, 2)).astype(np.float32)
    indices = rng.integers(0, 60, size=(2, 5)).astype(np.int32)
    mask = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0]], np.float32)
    got = float(regression_l1_loss(pred, target, indices, mask))
    assert got == pytest.approx(reg_l1_loss_reference(pred, target, indices, mask), rel=1e-5)
    # No object at all: zero, not NaN.
    assert float(regression_l1_loss(pred, target, indices, mask * 0)) == 0.0


def test_centernet_loss_serializes_with_its_weights() -> None:
    loss = CenterNetLoss(heatmap_weight=2.0, wh_weight=0.5, offset_weight=0.25, focal_alpha=3.0, focal_beta=2.0)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(restored, CenterNetLoss)
    assert restored.get_config() == loss.get_config()


def _tiny_batch(boxes: list[np.ndarray], size=(64, 96), num_classes=2):
    images, targets = [], []
    rng = np.random.default_rng(0)
    for b in boxes:
        images.append(rng.uniform(0, 255, (*size, 3)).astype(np.float32))
        classes = np.arange(len(b), dtype=np.int32) % num_classes
        targets.append(keras_targets(encode_targets(b, classes, size, num_classes, max_objects=8)))
    y = {k: tf.stack([t[k] for t in targets]) for k in targets[0]}
    return tf.constant(np.stack(images)), y


def _previous_keras_losses(y: dict[str, tf.Tensor], out: dict[str, tf.Tensor]) -> dict[str, float]:
    """The losses as computed before the model read whole target dicts: one ``keras.losses.Loss`` per output,
    the regression targets packed as ``(x, y, float(index), mask)`` rows."""
    def packed(key: str) -> tf.Tensor:
        return tf.concat([y[key], tf.cast(y["indices"], tf.float32)[..., None], y["mask"][..., None]], axis=-1)

    def reg_l1(packed_true: tf.Tensor, pred: tf.Tensor) -> float:
        batch, channels = pred.shape[0], pred.shape[-1]
        flat = tf.reshape(pred, (batch, -1, channels))
        at = tf.gather(flat, tf.cast(packed_true[..., 2], tf.int32), batch_dims=1)
        mask = packed_true[..., 3:4]
        return float(tf.reduce_sum(tf.abs(at - packed_true[..., :2]) * mask) / (2.0 * tf.reduce_sum(mask) + 1e-4))

    return {
        "heatmap": focal_loss_reference(y["heatmap"].numpy(), out["heatmap"].numpy()),
        "wh": reg_l1(packed("wh"), out["wh"]),
        "offset": reg_l1(packed("offset"), out["offset"]),
    }


def test_compute_loss_equals_the_previous_per_output_losses() -> None:
    model = build_centernet(2, "resnet10_slim", (64, 96, 3), loss={"wh_weight": 0.1})
    boxes = [np.array([[10, 10, 40, 30], [50, 20, 90, 60], [3, 40, 20, 63]], np.float32),
             np.array([[30, 5, 70, 50]], np.float32)]
    images, y = _tiny_batch(boxes)
    out = model(images, training=False)
    previous = _previous_keras_losses(y, out)
    total = float(model.compute_loss(images, y, out, training=False))
    got = {term: float(tracker.result()) for term, tracker in model.term_trackers.items()}
    for term in ("heatmap", "wh", "offset"):
        assert got[term] == pytest.approx(previous[term], rel=1e-5), term
    assert total == pytest.approx(previous["heatmap"] + 0.1 * previous["wh"] + previous["offset"], rel=1e-5)


def test_empty_images_give_finite_loss_and_gradients() -> None:
    model = build_centernet(2, "resnet10_slim", (64, 96, 3))
    images, y = _tiny_batch([np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32)])
    with tf.GradientTape() as tape:
        out = model(images, training=True)
        terms = model.centernet_loss(y, out)
    grads = tape.gradient(terms["loss"], model.trainable_variables)
    assert np.isfinite(float(terms["loss"])) and float(terms["loss"]) > 0
    assert float(terms["wh"]) == 0.0
    assert all(np.isfinite(g.numpy()).all() for g in grads if g is not None)


def test_fit_reports_each_term_and_weighted_total() -> None:
    weights = {"heatmap": 1.0, "wh": 0.1, "offset": 1.0}
    model = build_centernet(2, "resnet10_slim", (64, 96, 3), loss={f"{k}_weight": v for k, v in weights.items()})
    model.compile(optimizer=keras.optimizers.Adam(1e-4))
    images, y = _tiny_batch([np.array([[10, 10, 40, 30]], np.float32), np.zeros((0, 4), np.float32)])
    history = model.fit(tf.data.Dataset.from_tensors((images, y)), epochs=1, verbose=0).history
    assert {"loss", "heatmap_loss", "wh_loss", "offset_loss"} <= set(history)
    weighted = sum(weights[k] * history[f"{k}_loss"][0] for k in weights)
    assert history["loss"][0] == pytest.approx(weighted, rel=1e-5)
    assert all(np.isfinite(v[0]) for v in history.values())
