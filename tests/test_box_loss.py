"""The TTFNet-style ``giou_ttf`` box loss: hand-computed GIoU, dense targets, heads, decoding, flip test, fit."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from centernet_tf.config import ConfigError, load_config
from centernet_tf.deploy.tta import network_outputs
from centernet_tf.model.centernet import TTF_DISTANCE_SCALE, build_centernet
from centernet_tf.model.decode import CenterNetDecoder
from centernet_tf.model.layers import ScaledSoftplus
from centernet_tf.model.losses import CenterNetLoss, giou_box_loss
from centernet_tf.model.targets import encode_targets, keras_targets


def _one_pixel(ltrb: list[float], box: list[float], at=(1, 1), size=(4, 4)) -> tuple[np.ndarray, ...]:
    pred = np.zeros((1, *size, 4), np.float32)
    target = np.zeros((1, *size, 4), np.float32)
    weight = np.zeros((1, *size), np.float32)
    pred[0, at[0], at[1]] = ltrb
    target[0, at[0], at[1]] = box
    weight[0, at[0], at[1]] = 1.0
    return pred, target, weight


def test_giou_loss_of_hand_computed_boxes() -> None:
    # Pixel (x=1, y=1) predicts (0, 0, 2, 2); the true box (0, 0, 2, 4): IoU 4/8, enclosing = union -> loss 0.5.
    assert float(giou_box_loss(*_one_pixel([1, 1, 1, 1], [0, 0, 2, 4]))) == pytest.approx(0.5, rel=2e-4)
    # Disjoint: (0, 0, 2, 2) vs (3, 0, 4, 2): IoU 0, enclosing 8, union 6 -> GIoU -0.25, loss 1.25.
    assert float(giou_box_loss(*_one_pixel([1, 1, 1, 1], [3, 0, 4, 2]))) == pytest.approx(1.25, rel=2e-4)
    # Exact box: loss 0; pixels of weight 0 (all-zero boxes there) add nothing and give finite gradients.
    pred, target, weight = _one_pixel([1, 1, 1, 1], [0, 0, 2, 2])
    pred_var = tf.Variable(pred)
    with tf.GradientTape() as tape:
        loss = giou_box_loss(pred_var, target, weight)
    assert float(loss) == pytest.approx(0.0, abs=1e-4)
    assert np.isfinite(tape.gradient(loss, pred_var).numpy()).all()


def test_giou_loss_is_the_weighted_mean_over_pixels() -> None:
    pred, target, weight = _one_pixel([1, 1, 1, 1], [0, 0, 2, 4])
    pred[0, 2, 2], target[0, 2, 2], weight[0, 2, 2] = [1, 1, 1, 1], [3, 0, 4, 2], 3.0  # (1,1,3,3) vs (3,0,4,2)
    # Second pixel: inter 0, union 4 + 2, enclosing (1..4) x (0..3) = 9 -> GIoU -1/3, loss 4/3.
    expected = (1.0 * 0.5 + 3.0 * (4.0 / 3.0)) / 4.0
    assert float(giou_box_loss(pred, target, weight)) == pytest.approx(expected, rel=2e-4)


def test_dense_targets_weigh_each_object_by_its_log_area_and_give_overlaps_to_the_smaller_box() -> None:
    # Input 64x64, stride 4: a large box (output 2..14 x 2..10) and a small one inside it (5..9 x 3..7).
    t = encode_targets(np.array([[8, 8, 56, 40], [20, 12, 36, 28]], np.float32), np.array([0, 0]), (64, 64), 1,
                       box_targets=True)
    box_target, weight = t["box_target"].numpy(), t["box_weight"].numpy()
    large = np.all(box_target == [2, 2, 14, 10], axis=-1)
    small = np.all(box_target == [5, 3, 9, 7], axis=-1)
    # Small: centre (7, 5), radii floor(2 * 0.54) = 1 -> a 3x3 area, all its own, weights summing to log(16*16).
    assert small.sum() == 9 and weight[small].sum() == pytest.approx(np.log(256.0), rel=1e-5)
    assert small[4:7, 6:9].all()
    # Large: centre (8, 6), radii floor(6 * 0.54) = 3 and floor(4 * 0.54) = 2 -> 7x5 = 35 pixels, 9 taken by
    # the small box; its weights are normalised over its whole Gaussian (as TTFNet), so they sum to less.
    assert large.sum() == 35 - 9
    assert 0 < weight[large].sum() < np.log(48.0 * 32.0)
    assert (weight[~(large | small)] == 0).all() and (box_target[~(large | small)] == 0).all()


def test_no_objects_give_empty_dense_targets() -> None:
    t = encode_targets(np.zeros((0, 4), np.float32), np.zeros((0,), np.int32), (32, 32), 2, box_targets=True)
    assert t["box_target"].shape == (8, 8, 4) and not t["box_target"].numpy().any()
    assert not t["box_weight"].numpy().any()
    assert "box_target" not in encode_targets(np.zeros((0, 4), np.float32), np.zeros((0,), np.int32), (32, 32), 2)


def test_decoder_reads_four_distances_from_the_peak_pixel() -> None:
    heatmap = np.zeros((1, 8, 8, 2), np.float32)
    heatmap[0, 3, 5, 1] = 0.9
    ltrb = np.zeros((1, 8, 8, 4), np.float32)
    ltrb[0, 3, 5] = [1, 2, 3, 4]
    out = CenterNetDecoder(max_detections=3, stride=4)({"heatmap": heatmap, "wh": ltrb})
    assert int(out["num_detections"][0]) == 1 and int(out["classes"][0, 0]) == 1
    np.testing.assert_allclose(out["boxes"][0, 0].numpy(), [(5 - 1) * 4, (3 - 2) * 4, (5 + 3) * 4, (3 + 4) * 4])


def _giou_model(input_hw=(64, 96)) -> keras.Model:
    return build_centernet(2, "resnet10_slim", (*input_hw, 3), loss={"box": "giou_ttf", "wh_weight": 5.0})


def test_giou_model_has_scaled_distance_outputs_and_no_offset_and_saves(tmp_path) -> None:
    model = _giou_model()
    images = tf.random.uniform((1, 64, 96, 3), 0, 255, seed=1)
    out = model(images)
    assert set(out) == {"heatmap", "wh"} and out["wh"].shape == (1, 16, 24, 4)
    assert set(model.term_trackers) == {"heatmap", "wh"}
    kernel, bias = model.head_output_layers["wh"].get_weights()
    model.head_output_layers["wh"].set_weights([kernel, bias + 1.5])
    # softplus(conv) x the distance scale: a bias of 1.5 on near-zero features is log(1 + e^1.5) * scale.
    assert float(tf.reduce_mean(model(images)["wh"])) == pytest.approx(1.7014 * TTF_DISTANCE_SCALE, rel=0.05)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.centernet_loss.box == "giou_ttf"
    np.testing.assert_allclose(loaded(images)["wh"].numpy(), model(images)["wh"].numpy(), atol=1e-5)


def test_scaled_softplus_is_exact_and_finite_far_out() -> None:
    x = np.array([-200.0, -20.0, -1.0, 0.0, 0.5, 3.0, 30.0, 200.0], np.float32)
    got = ScaledSoftplus(4.0)(x).numpy()
    np.testing.assert_allclose(got, 4.0 * np.logaddexp(0.0, x.astype(np.float64)), rtol=1e-6, atol=1e-6)
    assert np.isfinite(got).all() and (got[2:] > 0).all()
    with tf.GradientTape() as tape:
        low = tf.constant([-20.0])
        tape.watch(low)
        value = ScaledSoftplus(4.0)(low)
    assert float(tape.gradient(value, low)[0]) == pytest.approx(4.0 * np.exp(-20.0), rel=1e-3)  # not 0


def test_a_distance_channel_pushed_below_zero_still_learns() -> None:
    """Behind a ReLU a channel whose pre-activations are all negative gets no gradient and its distance stays 0
    (on the aquarium photos the left and top distances died so); the softplus head keeps pulling it back."""
    keras.utils.set_random_seed(0)
    model = _giou_model()
    kernel, bias = model.head_output_layers["wh"].get_weights()
    model.head_output_layers["wh"].set_weights([kernel, bias + np.array([-3.0, -3.0, 0.0, 0.0], np.float32)])
    boxes = np.array([[10, 10, 60, 50]], np.float32)
    target = keras_targets(encode_targets(boxes, np.array([1]), (64, 96), 2, max_objects=4, box_targets=True))
    images = tf.random.uniform((1, 64, 96, 3), 0, 255, seed=3)
    with tf.GradientTape() as tape:
        out = model(images, training=True)
        loss = giou_box_loss(out["wh"], target["box_target"][None], target["box_weight"][None])
    bias_var = model.head_output_layers["wh"].bias
    gradient = tape.gradient(loss, bias_var).numpy()
    # Larger left / top distances cover more of the box: the loss falls as those biases rise.
    assert gradient[0] < -1e-3 and gradient[1] < -1e-3


def test_flip_test_swaps_left_and_right_distances_of_the_mirror() -> None:
    model = _giou_model()
    images = tf.random.uniform((2, 64, 96, 3), 0, 255, seed=2)
    kernel, bias = model.head_output_layers["wh"].get_weights()
    model.head_output_layers["wh"].set_weights([kernel * 300.0, bias + 2.0])
    plain = model(images)["wh"].numpy()
    mirror = model(tf.reverse(images, axis=[2]))["wh"].numpy()
    got = network_outputs(model, images, flip_test=True)
    assert "offset" not in got
    back = mirror[:, :, ::-1][..., [2, 1, 0, 3]]
    np.testing.assert_allclose(got["wh"].numpy(), (plain + back) / 2.0, atol=1e-4)


def test_fit_with_giou_lowers_the_box_loss_and_has_no_offset_term() -> None:
    keras.utils.set_random_seed(0)
    model = _giou_model()
    boxes = np.array([[10, 10, 60, 50]], np.float32)
    target = keras_targets(encode_targets(boxes, np.array([1]), (64, 96), 2, max_objects=4, box_targets=True))
    images = tf.random.uniform((2, 64, 96, 3), 0, 255, seed=3)
    y = {k: tf.stack([v, v]) for k, v in target.items()}
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(tf.data.Dataset.from_tensors((images, y)).repeat(), steps_per_epoch=15, epochs=2,
                        verbose=0).history
    assert set(history) >= {"loss", "heatmap_loss", "wh_loss"} and "offset_loss" not in history
    assert history["wh_loss"][1] < history["wh_loss"][0]
    assert history["loss"][0] == pytest.approx(history["heatmap_loss"][0] + 5.0 * history["wh_loss"][0], rel=1e-4)


def test_config_checks_the_box_loss_and_ema_momentum() -> None:
    assert load_config(None, ["loss.box=giou_ttf"]).loss.box == "giou_ttf"
    with pytest.raises(ConfigError, match="loss.box must be one of l1, giou_ttf"):
        load_config(None, ["loss.box=iou"])
    with pytest.raises(ConfigError, match="ema_momentum"):
        load_config(None, ["train.ema_momentum=1.5"])
    with pytest.raises(ValueError, match="box must be one of"):
        CenterNetLoss(box="smooth_l1")


def test_the_loss_section_holds_exactly_the_losss_arguments_and_the_model_saves_them() -> None:
    """The loss states its settings once: the config's loss section is its constructor's arguments, a value it
    refuses is a config error naming the loss key, and the built model carries every one of them."""
    import dataclasses
    import inspect

    from centernet_tf.config import LossConfig
    from centernet_tf.train.build import model_from_config

    arguments = [name for name in inspect.signature(CenterNetLoss.__init__).parameters if name != "self"]
    assert [f.name for f in dataclasses.fields(LossConfig)] == arguments
    with pytest.raises(ConfigError, match="loss.gaussian_radius must be one of cornernet, exact, elliptic, got 'wide'"):
        load_config(None, ["loss.gaussian_radius=wide"])
    config = load_config(None, ["model.backbone=resnet10_slim", "model.input_size=[64,64]", "loss.focal_beta=3",
                                "loss.gaussian_radius=exact", "loss.wh_weight=0.5"])
    saved = model_from_config(config, ["a"]).get_config()["loss"]
    assert saved == dataclasses.asdict(config.loss) and saved["focal_beta"] == 3.0
