"""Architecture, input sizes, backbone weights and the .keras round trip."""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import centernet_tf
from centernet_tf.backbones import RESNET50_IMAGENET_FILE
from centernet_tf.model import BN_MOMENTUM, HEATMAP_BIAS_INIT, build_centernet
from centernet_tf.targets import encode_targets, keras_targets


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    found = []
    for layer in model.layers:
        found.append(layer)
        if isinstance(layer, keras.Model):
            found.extend(_all_layers(layer))
    return found


def test_resnet50_architecture_matches_the_paper_layout() -> None:
    model = build_centernet(5, "resnet50", (64, 96, 3))
    layers = {layer.name: layer for layer in _all_layers(model)}
    # Stride-32 ResNet50 features with 2048 channels feed the decoder.
    assert layers["conv5_block3_out"].output.shape[1:] == (2, 3, 2048)
    deconvs = [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert [(d.filters, d.kernel_size, d.strides) for d in deconvs] == [
        (256, (4, 4), (2, 2)), (128, (4, 4), (2, 2)), (64, (4, 4), (2, 2))
    ]
    for name, channels in (("heatmap", 5), ("wh", 2), ("offset", 2)):
        head_conv = layers[f"{name}_head_conv"]
        assert head_conv.filters == 64 and head_conv.kernel_size == (3, 3)
        assert layers[name].kernel_size == (1, 1) and layers[name].filters == channels
    np.testing.assert_allclose(layers["heatmap"].bias.numpy(), HEATMAP_BIAS_INIT)
    assert layers["heatmap"].activation.__name__ == "sigmoid"
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in _all_layers(model))
    batch_norms = [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(batch_norms) > 50 and {bn.momentum for bn in batch_norms} == {BN_MOMENTUM}
    assert model.input.name == "image" or model.inputs[0].name == "image"


@pytest.mark.parametrize("backbone", ["resnet18", "resnet10_slim"])
def test_non_square_inputs_give_stride_4_maps(backbone: str) -> None:
    model = build_centernet(3, backbone, (96, 160, 3))
    out = model(np.zeros((2, 96, 160, 3), np.float32))
    assert set(out) == {"heatmap", "wh", "offset"}
    assert out["heatmap"].shape == (2, 24, 40, 3)
    assert out["wh"].shape == out["offset"].shape == (2, 24, 40, 2)
    # Sigmoid output with the -2.19 prior bias starts near 0.1 everywhere.
    assert 0.0 < float(tf.reduce_min(out["heatmap"])) and float(tf.reduce_max(out["heatmap"])) < 1.0


def test_dynamic_input_size_model_accepts_any_multiple_of_32() -> None:
    model = build_centernet(2, "resnet10_slim", (None, None, 3))
    assert model(np.zeros((1, 64, 128, 3), np.float32))["heatmap"].shape == (1, 16, 32, 2)
    assert model(np.zeros((1, 96, 32, 3), np.float32))["heatmap"].shape == (1, 24, 8, 2)


def test_bad_arguments_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="divisible by 32"):
        build_centernet(2, "resnet18", (100, 128, 3))
    with pytest.raises(ValueError, match="Unknown backbone 'vgg'.*resnet50"):
        build_centernet(2, "vgg", (64, 64, 3))
    with pytest.raises(FileNotFoundError, match="neither None, 'imagenet' nor an existing"):
        build_centernet(2, "resnet18", (64, 64, 3), backbone_weights=str(tmp_path / "missing.h5"))


def test_imagenet_download_failure_fails_fast_with_instructions(monkeypatch, tmp_path: Path) -> None:
    """Offline, the Keras download must not hang and must say how to pass a local file."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no cached weights

    def offline(*args, **kwargs):
        raise OSError("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.src.utils.file_utils, "get_file", offline)
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match=f"backbone_weights='/path/to/{RESNET50_IMAGENET_FILE}'"):
        build_centernet(2, "resnet50", (64, 64, 3), backbone_weights="imagenet")
    assert time.perf_counter() - started < 30


@pytest.mark.parametrize("backbone", ["resnet50", "resnet10_slim"])
def test_backbone_weights_load_from_a_local_file(tmp_path: Path, backbone: str) -> None:
    source = build_centernet(2, backbone, (64, 64, 3))
    # Save the backbone part the way a user would keep a pretrained backbone: the sub-model up to stride 32.
    last = "conv5_block3_out" if backbone == "resnet50" else "stage4_block1_out"
    backbone_model = keras.Model(source.input, source.get_layer(last).output)
    path = tmp_path / f"{backbone}.weights.h5"
    backbone_model.save_weights(path)
    loaded = build_centernet(2, backbone, (64, 64, 3), backbone_weights=str(path))
    for layer_name in ("conv1_conv" if backbone == "resnet50" else "stem_conv", last.replace("_out", "_conv2")
                       if backbone != "resnet50" else "conv5_block3_3_conv"):
        np.testing.assert_array_equal(
            loaded.get_layer(layer_name).get_weights()[0], source.get_layer(layer_name).get_weights()[0]
        )


def test_keras_file_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model = build_centernet(3, "resnet10_slim", (64, 96, 3))
    model.compile(optimizer="adam", loss=centernet_tf.losses.centernet_losses(),
                  loss_weights={"heatmap": 1.0, "wh": 0.1, "offset": 1.0})
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 96, 3)).astype(np.float32)
    targets = [keras_targets(encode_targets(np.array([[8, 8, 40, 30]], np.float32), [c], (64, 96), 3, max_objects=4))
               for c in (0, 2)]
    y = {key: np.stack([t[key] for t in targets]) for key in targets[0]}
    # One training step so BatchNorm statistics and the optimizer state are non-trivial.
    model.fit(images, y, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    before, after = model.predict(images, verbose=0), restored.predict(images, verbose=0)
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])
    assert isinstance(restored.get_layer("normalize"), centernet_tf.ImageNormalization)


@pytest.mark.parametrize("bgr", [False, True])
def test_image_normalization_is_per_channel_for_static_and_dynamic_sizes(bgr: bool) -> None:
    """The row-wise form used for static sizes is the textbook per-channel ``(x - mean) / std``."""
    mean, std = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
    pixels = np.random.default_rng(0).integers(0, 256, (2, 4, 6, 3)).astype(np.float32)
    expected = ((pixels[..., ::-1] if bgr else pixels) - np.array(mean[::-1] if bgr else mean, np.float32)) / np.array(
        std[::-1] if bgr else std, np.float32
    )
    layer = centernet_tf.ImageNormalization(mean, std, bgr)
    for shape in [(4, 6, 3), (None, None, 3)]:
        inputs = keras.Input(shape)
        out = keras.Model(inputs, layer(inputs)).predict(pixels, verbose=0)
        np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
