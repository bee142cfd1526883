"""``box_features_stride``: the box head also reads a coarser backbone level; the heatmap head does not."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import centernet_tf
from centernet_tf.config import ConfigError, load_config
from centernet_tf.deploy.export import export_saved_model, export_tflite
from centernet_tf.deploy.inference import KerasDetector, SavedModelDetector, TFLiteDetector
from centernet_tf.model.centernet import build_centernet
from centernet_tf.train.build import model_from_config
from tests.test_export import CLASSES, _assert_same_detections, _image

SIZE = (64, 96)


def _model(stride: int | None = 16, **kwargs) -> centernet_tf.CenterNet:
    return build_centernet(len(CLASSES), "resnet10_slim", (*SIZE, 3), neck="fpn", box_features_stride=stride, **kwargs)


def _reduce_layer(model: keras.Model) -> keras.layers.Conv2D:
    layer = model.get_layer("box_features_reduce")  # only to reach its weights in the test
    assert layer.input is model.part_outputs["backbone"][2]  # it reads the backbone's P4 (stride 16)
    return layer


def test_the_path_is_one_1x1_projection_of_the_stride_16_level() -> None:
    """resnet10_slim's stride-16 level has 128 channels and the fpn neck 64: 128 x 64 weights more, no bias."""
    keras.utils.set_random_seed(0)
    plain, with_path = _model(None), _model(16)
    assert with_path.part_outputs["backbone"][2].shape[-1] == 128  # P2, P3, P4, P5: P4 is stride 16
    assert with_path.part_outputs["neck"].shape[-1] == 64
    assert with_path.count_params() - plain.count_params() == 128 * 64
    assert _reduce_layer(with_path).kernel.shape == (1, 1, 128, 64)
    wh = with_path(np.zeros((1, *SIZE, 3), "float32"))["wh"]
    assert with_path.output_stride == 4 and tuple(wh.shape[1:3]) == (16, 24)


@pytest.mark.parametrize("box", ["l1", "giou_ttf"])
def test_only_the_box_head_reads_the_path(box: str) -> None:
    """Scaling the projection's weights changes the box sizes and leaves the heatmap and the offset bit-identical."""
    keras.utils.set_random_seed(1)
    model = _model(16, loss={"box": box})
    images = np.random.default_rng(1).uniform(0, 255, (2, *SIZE, 3)).astype("float32")
    head = model.head_output_layers["wh"]
    kernel, bias = head.get_weights()
    head.set_weights([kernel * 100.0, bias])  # a fresh head's outputs are ~0 whatever its input
    before = {key: value.numpy() for key, value in model(images).items()}
    reduce = _reduce_layer(model)
    reduce.kernel.assign(reduce.kernel * 3.0)
    after = {key: value.numpy() for key, value in model(images).items()}
    assert np.abs(after["wh"] - before["wh"]).max() > 1e-3
    for key in set(before) - {"wh"}:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)


def test_round_trip_keeps_the_setting_and_the_outputs(tmp_path: Path) -> None:
    keras.utils.set_random_seed(2)
    model = _model(16)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = centernet_tf.load_centernet(path)
    assert loaded.box_features_stride == 16 and loaded.get_config()["box_features_stride"] == 16
    images = np.random.default_rng(2).uniform(0, 255, (1, *SIZE, 3)).astype("float32")
    for key, value in model(images).items():
        np.testing.assert_array_equal(loaded(images)[key], value, err_msg=key)


def test_dynamic_input_size_gets_the_same_upsampling() -> None:
    model = build_centernet(2, "resnet10_slim", (None, None, 3), neck="fpn", box_features_stride=32)
    out = model(np.zeros((1, 96, 128, 3), "float32"))
    assert model.output_stride == 4 and tuple(out["wh"].shape[1:3]) == (24, 32)


def test_bad_settings_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"box_features_stride=64: .* heads' stride 4; choose one of \[8, 16, 32\]"):
        _model(64)
    with pytest.raises(ValueError, match=r"box_features_stride=4: .* choose one of \[8, 16, 32\]"):
        _model(4)
    with pytest.raises(ConfigError, match="model.box_features_stride"):
        load_config(None, ["model.box_features_stride=2"])


@pytest.mark.usefixtures("tiny_hourglass")
def test_a_neck_with_several_stacks_is_refused() -> None:
    with pytest.raises(ValueError, match="box_features_stride needs a neck with one output stack; 'identity' has 2"):
        build_centernet(2, "hourglass_tiny_test", (64, 64, 3), neck="identity", box_features_stride=16)


def test_a_model_without_the_path_saves_no_new_key() -> None:
    """Its config is what versions before the setting wrote, so they still load the file."""
    assert "box_features_stride" not in _model(None).get_config()
    assert _model(16).get_config()["box_features_stride"] == 16


def test_the_config_setting_reaches_the_model() -> None:
    config = load_config(None, ["model.backbone=resnet10_slim", "model.neck=fpn", "model.input_size=[64,64]",
                                "model.box_features_stride=16"])
    model = model_from_config(config, ["a", "b"])
    assert model.box_features_stride == 16 and model.count_params() == model_from_config(
        load_config(None, ["model.backbone=resnet10_slim", "model.neck=fpn", "model.input_size=[64,64]"]), ["a", "b"]
    ).count_params() + 128 * 64


def test_exports_keep_the_detections(tmp_path: Path) -> None:
    """SavedModel and TFLite fp32 detect what Keras does with the path (bilinear upsampling in the graph)."""
    keras.utils.set_random_seed(6)
    net = _model(16, loss={"box": "giou_ttf"}, decoder={"score_threshold": 0.0, "max_detections": 20})
    for name, scale, shift in (("heatmap", 40.0, 0.0), ("wh", 100.0, 2.0)):
        kernel, bias = net.head_output_layers[name].get_weights()
        net.head_output_layers[name].set_weights([kernel * scale, bias + shift])
    reduce = _reduce_layer(net)
    reduce.kernel.assign(reduce.kernel * 20.0)
    image = _image(8, (90, 130))
    expected = KerasDetector(net).detect(image)
    assert np.ptp(expected.boxes[:, 2] - expected.boxes[:, 0]) > 1.0
    saved = SavedModelDetector(export_saved_model(net, tmp_path / "saved_model", CLASSES))
    _assert_same_detections(expected, saved.detect(image), image.shape[:2])
    fp32 = export_tflite(net, tmp_path / "fp32.tflite", CLASSES, "fp32")
    _assert_same_detections(expected, TFLiteDetector(fp32, num_threads=1).detect(image), image.shape[:2])


def test_onnx_runtime_gives_the_keras_outputs(tmp_path: Path) -> None:
    pytest.importorskip("tf2onnx", reason='ONNX export needs tf2onnx: pip install -e ".[onnx]"')
    pytest.importorskip("onnxruntime", reason='running .onnx files needs ONNX Runtime: pip install -e ".[onnx]"')
    from centernet_tf.deploy.tta import network_outputs
    from tests.test_onnx import _raw_onnx_outputs

    keras.utils.set_random_seed(7)
    net = _model(16)
    reduce = _reduce_layer(net)
    reduce.kernel.assign(reduce.kernel * 20.0)
    pixels = np.random.default_rng(7).uniform(0, 255, (1, *SIZE, 3)).astype(np.float32)
    expected = {k: v.numpy() for k, v in network_outputs(net, tf.constant(pixels), False).items()}
    found = _raw_onnx_outputs(net, pixels)
    for name, value in expected.items():
        np.testing.assert_allclose(found[name], value, atol=1e-4, err_msg=name)
