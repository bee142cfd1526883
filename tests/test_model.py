"""Architecture, input sizes, backbone weights and the .keras round trip."""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import centernet_tf
from centernet_tf.model.backbones import applications
from centernet_tf.model.backbones.applications import RESNET50_IMAGENET_FILE
from centernet_tf.model.centernet import BN_MOMENTUM, HEATMAP_BIAS_INIT, build_centernet
from centernet_tf.model.targets import encode_targets, keras_targets


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


@pytest.mark.parametrize("backbone, weights_file", [
    ("resnet50", RESNET50_IMAGENET_FILE),
    ("resnet101", applications.RESNET101_IMAGENET_FILE),
    ("mobilenet_v2", applications.MOBILENET_V2_IMAGENET_FILE),
    ("mobilenet_v3_large", applications.MOBILENET_V3_LARGE_IMAGENET_FILE),
])
def test_imagenet_download_failure_fails_fast_with_instructions(
    monkeypatch, tmp_path: Path, backbone: str, weights_file: str
) -> None:
    """Offline, the Keras download must not hang and must say how to pass a local file."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no cached weights

    def offline(*args, **kwargs):
        raise OSError("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.src.utils.file_utils, "get_file", offline)
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match=f"backbone_weights='/path/to/{weights_file}'"):
        build_centernet(2, backbone, (64, 64, 3), backbone_weights="imagenet")
    assert time.perf_counter() - started < 30


@pytest.mark.parametrize("backbone", ["resnet50", "resnet10_slim"])
def test_backbone_weights_load_from_a_local_file(tmp_path: Path, backbone: str) -> None:
    source = build_centernet(2, backbone, (64, 64, 3))
    # Keep a pretrained backbone the way a user would: the weights of model.backbone.
    path = tmp_path / f"{backbone}.weights.h5"
    source.backbone.save_weights(path)
    loaded = build_centernet(2, backbone, (64, 64, 3), backbone_weights=str(path))
    for got, want in zip(loaded.backbone.weights, source.backbone.weights, strict=True):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert any(float(np.abs(w.numpy()).sum()) > 0 for w in loaded.backbone.trainable_weights)


def test_keras_file_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model = build_centernet(3, "resnet10_slim", (64, 96, 3), class_names=["a", "b", "c"],
                            decoder={"max_detections": 17, "nms": True}, loss={"wh_weight": 0.2})
    model.compile(optimizer="adam")
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
    assert isinstance(restored.backbone.get_layer("normalize"), centernet_tf.ImageNormalization)
    # What the run decided travels with the file.
    assert restored.class_names == ["a", "b", "c"]
    assert (restored.decoder.max_detections, restored.decoder.nms, restored.decoder.stride) == (17, True, 4)
    assert restored.centernet_loss.wh_weight == 0.2


#: Where the saved parts' classes lived before the package was sorted into folders (``.keras`` files name them).
MODULES_BEFORE_THE_FOLDERS = {
    "centernet_tf.model.centernet": "centernet_tf.model", "centernet_tf.model.layers": "centernet_tf.layers",
    "centernet_tf.model.decode": "centernet_tf.decode", "centernet_tf.model.losses": "centernet_tf.losses",
    "centernet_tf.model.necks": "centernet_tf.necks", "centernet_tf.model.backbones": "centernet_tf.backbones",
}


def test_a_keras_file_written_before_the_folders_loads_with_the_same_outputs(tmp_path: Path) -> None:
    """A ``.keras`` file names each part's module; one saved when the parts were top-level modules
    (``centernet_tf.model``, ``centernet_tf.decode``...) loads and gives the same heads and detections."""
    import json
    import zipfile

    model = build_centernet(2, "resnet10_slim", (64, 64, 3), class_names=["a", "b"],
                            decoder={"nms": True, "score_threshold": 0.0})
    model.save(tmp_path / "now.keras")
    with zipfile.ZipFile(tmp_path / "now.keras") as now:
        files = {name: now.read(name) for name in now.namelist()}
    config = files["config.json"].decode()
    renamed = 0
    for new, old in MODULES_BEFORE_THE_FOLDERS.items():
        renamed += config.count(f'"{new}')
        config = config.replace(f'"{new}', f'"{old}')
    assert renamed >= 2 and json.loads(config)["module"] == "centernet_tf.model"  # the model and its normaliser
    with zipfile.ZipFile(tmp_path / "before.keras", "w") as before:
        for name, data in files.items():
            before.writestr(name, config if name == "config.json" else data)
    restored = keras.models.load_model(tmp_path / "before.keras")
    images = np.random.default_rng(1).uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    expected, found = model(images, training=False), restored(images, training=False)
    for key in expected:
        np.testing.assert_array_equal(np.asarray(expected[key]), np.asarray(found[key]))
    np.testing.assert_array_equal(model.decoder(expected)["boxes"], restored.decoder(found)["boxes"])
    assert restored.class_names == ["a", "b"] and restored.decoder.nms


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


def test_a_new_backbone_needs_one_registered_builder_and_nothing_else(tmp_path: Path) -> None:
    """Register a builder; build, train a step, save, reload, freeze and decode with no other change."""
    from centernet_tf.model.backbones.registry import _REGISTRY
    from centernet_tf.train.transfer import set_backbone_trainable

    @centernet_tf.register_backbone("tiny_test_net", mean=(127.5,) * 3, std=(127.5,) * 3)
    def tiny_test_net(image, weights):
        x = keras.layers.Conv2D(8, 3, strides=4, padding="same", name="tiny_s4")(image)
        y = keras.layers.Conv2D(16, 3, strides=8, padding="same", name="tiny_s32")(x)
        return {"P2": x, "P5": y}

    try:
        model = build_centernet(2, "tiny_test_net", (64, 96, 3), class_names=["x", "y"])
        assert model.output_stride == 4 and model.backbone.name == "tiny_test_net"
        images, y = _batch_of_two(model)
        model.compile(optimizer="adam")
        model.fit(images, y, verbose=0)
        model.save(tmp_path / "tiny.keras")
        restored = centernet_tf.load_centernet(tmp_path / "tiny.keras")
        np.testing.assert_array_equal(model.predict(images, verbose=0)["wh"], restored.predict(images, verbose=0)["wh"])
        assert set_backbone_trainable(restored, False) == 3  # normalize + two convolutions
        assert restored.decoder.stride == 4
    finally:
        _REGISTRY.pop("tiny_test_net")


def _batch_of_two(model: keras.Model) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    height, width = model.input_shape[1:3]
    images = np.random.default_rng(0).uniform(0, 255, (2, height, width, 3)).astype(np.float32)
    targets = [keras_targets(encode_targets(np.array([[8, 8, 40, 30]], np.float32), [c], (height, width),
                                            model.num_classes, stride=model.output_stride, max_objects=4))
               for c in (0, 1)]
    return images, {key: np.stack([t[key] for t in targets]) for key in targets[0]}


def test_output_stride_is_derived_from_the_shapes() -> None:
    """An identity neck on the stride-8 features of a backbone that has no finer level gives stride 8."""
    from centernet_tf.model.backbones.registry import _REGISTRY

    @centernet_tf.register_backbone("stride8_test_net")
    def stride8_test_net(image, weights):
        return {"P3": keras.layers.Conv2D(8, 3, strides=8, padding="same")(image)}

    try:
        model = build_centernet(2, "stride8_test_net", (64, 96, 3), neck="identity")
        assert model.output_stride == 8 and model.decoder.stride == 8
        assert model.output_shape[0][1:3] == (8, 12)
    finally:
        _REGISTRY.pop("stride8_test_net")


def test_several_output_stacks_are_supervised_and_the_last_is_used(tmp_path: Path) -> None:
    """A neck with two stacks (intermediate supervision): each has heads, the loss averages them."""
    from centernet_tf.model.necks import _NECKS

    @centernet_tf.register_neck("two_stacks_test")
    def two_stacks(pyramid):
        x = pyramid["P2"]
        first = keras.layers.Conv2D(16, 3, padding="same", name="stack_a")(x)
        second = keras.layers.Conv2D(16, 3, padding="same", name="stack_b")(first)
        return [first, second]

    try:
        model = build_centernet(2, "resnet10_slim", (64, 64, 3), neck="two_stacks_test")
        assert model.num_stacks == 2 and model.stack_prefixes == ["stack1_", ""]
        images, y = _batch_of_two(model)
        out = model(images)
        assert set(out) == {"heatmap", "wh", "offset", "stack1_heatmap", "stack1_wh", "stack1_offset"}
        first = model.centernet_loss.terms(y, {t: out["stack1_" + t] for t in ("heatmap", "wh", "offset")})
        last = model.centernet_loss.terms(y, {t: out[t] for t in ("heatmap", "wh", "offset")})
        total = float(model.compute_loss(images, y, out))
        expected = sum(w * (float(first[t]) + float(last[t])) / 2 for t, w in (("heatmap", 1), ("wh", 0.1), ("offset", 1)))
        assert total == pytest.approx(expected, rel=1e-5)
        # Heads of the last stack are what export keeps in float.
        assert model.head_output_layers["heatmap"].name == "heatmap"
        model.save(tmp_path / "stacks.keras")
        assert centernet_tf.load_centernet(tmp_path / "stacks.keras").num_stacks == 2
    finally:
        _NECKS.pop("two_stacks_test")


@pytest.mark.parametrize("backbone, channels", [
    ("mobilenet_v2", 1280), ("mobilenet_v3_large", 960), ("resnet101", 2048), ("resnet50", 2048),
])
def test_keras_applications_backbones_return_their_pyramid(backbone: str, channels: int) -> None:
    model = centernet_tf.build_backbone(backbone, (64, 96, 3))
    shapes = {key: tuple(value.shape[1:3]) for key, value in model.output.items()}
    assert shapes == {"P2": (16, 24), "P3": (8, 12), "P4": (4, 6), "P5": (2, 3)}
    assert model.output["P5"].shape[-1] == channels


def _legacy_flat_model(num_classes: int) -> keras.Model:
    """A model as centernet-tf 0.1 built it: one flat functional graph named ``centernet_<backbone>``."""
    from centernet_tf.model.backbones import get_backbone
    from centernet_tf.model.centernet import _head
    from centernet_tf.model.necks import deconv3

    spec = get_backbone("resnet10_slim")
    image = keras.Input((64, 64, 3), name="image")
    x = centernet_tf.ImageNormalization(spec.mean, spec.std, spec.bgr, name="normalize")(image)
    (features,) = deconv3(spec.build(x, None))
    outputs = {
        "heatmap": _head(features, num_classes, "heatmap", 64, True, "sigmoid", HEATMAP_BIAS_INIT)[0],
        "wh": _head(features, 2, "wh", 64, True)[0],
        "offset": _head(features, 2, "offset", 64, True)[0],
    }
    return keras.Model(image, outputs, name="centernet_resnet10_slim")


def test_previous_layout_files_load_as_a_model_of_parts(tmp_path: Path) -> None:
    old = _legacy_flat_model(3)
    for weight in old.weights:  # non-trivial weights and statistics
        weight.assign(np.random.default_rng(weight.shape.__len__()).normal(0.5, 0.1, weight.shape))
    old.save(tmp_path / "model.keras")
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    new = centernet_tf.load_centernet(tmp_path / "model.keras")
    assert isinstance(new, centernet_tf.CenterNet) and new.class_names == ["a", "b", "c"]
    images = np.random.default_rng(1).uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    before, after = old.predict(images, verbose=0), new.predict(images, verbose=0)
    for key in ("heatmap", "wh", "offset"):
        np.testing.assert_allclose(after[key], before[key], rtol=1e-5, atol=1e-5)


def test_detector_on_a_keras_file_uses_the_decoder_saved_with_it(tmp_path: Path) -> None:
    from centernet_tf.deploy.inference import load_detector

    model = build_centernet(2, "resnet10_slim", (64, 64, 3), decoder={"max_detections": 3, "score_threshold": 0.0})
    model.save(tmp_path / "model.keras")
    detector = load_detector(tmp_path / "model.keras")
    assert (detector.decoder.max_detections, detector.decoder.score_threshold) == (3, 0.0)
    found = detector.detect(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    assert len(found.scores) == 3  # untrained heatmaps are ~0.1 everywhere: the cap is what limits


def test_fpn_neck_adds_finer_backbone_levels_down_to_stride_4() -> None:
    """``fpn``: 1x1 laterals from P4, P3, P2 are added to the upsampled coarser map; the heads see stride 4."""
    model = build_centernet(3, "resnet10_slim", (64, 96, 3), neck="fpn")
    filters = [128, 64, 64]
    assert model.output_stride == 4 and model.output_shape[0][1:3] == (16, 24)
    found = {layer.name: layer for layer in _all_layers(model)}
    assert [found[f"fpn{i}_conv"].filters for i in (1, 2, 3)] == filters
    assert tuple(model.part_outputs["neck"].shape[1:]) == (16, 24, filters[-1])
    # Each add joins the lateral of the next finer backbone level: strides 16, 8, 4.
    assert [tuple(found[f"fpn{i}_add"].output.shape[1:3]) for i in (1, 2, 3)] == [(4, 6), (8, 12), (16, 24)]
    # Changing only the stride-4 backbone features changes the output: the lateral path is wired in.
    lateral = found["fpn3_lateral"]
    images = np.random.default_rng(0).uniform(0, 255, (1, 64, 96, 3)).astype("float32")
    before = model(images)["heatmap"].numpy()
    lateral.kernel.assign(lateral.kernel.numpy() * 3.0)
    assert not np.allclose(before, model(images)["heatmap"].numpy(), atol=1e-6)


def test_fpn_neck_refuses_a_backbone_without_the_finer_levels() -> None:
    from centernet_tf.model.backbones.registry import _REGISTRY

    @centernet_tf.register_backbone("coarse_only_test_net")
    def coarse_only(image, weights):
        return {"P5": keras.layers.Conv2D(8, 3, strides=32, padding="same")(image)}

    try:
        with pytest.raises(ValueError, match=r"fpn neck needs backbone features at strides \[16, 8, 4\]"):
            build_centernet(2, "coarse_only_test_net", (64, 64, 3), neck="fpn")
    finally:
        _REGISTRY.pop("coarse_only_test_net")


@pytest.mark.parametrize("neck", ["deconv3", "fpn"])
def test_heads_start_at_the_focal_prior(neck: str) -> None:
    """Final convs start near zero: every heatmap pixel is sigmoid(-2.19) ~ 0.1 even on batch statistics,
    so the first focal loss is the prior's, not one ~15x larger from random logits; wh and offset start ~0."""
    keras.utils.set_random_seed(1)
    model = build_centernet(4, "resnet10_slim", (64, 64, 3), neck=neck)
    images = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    out = model(images, training=True)
    prior = 1.0 / (1.0 + np.exp(-HEATMAP_BIAS_INIT))
    assert np.abs(out["heatmap"].numpy() - prior).max() < 0.03
    assert np.abs(out["wh"].numpy()).max() < 0.05 and np.abs(out["offset"].numpy()).max() < 0.05


def test_part_outputs_cut_the_model_without_layer_names(tmp_path: Path) -> None:
    """``part_outputs`` gives the backbone levels and the neck features in the model's own graph, also after
    a save / load, so a sub-model up to either part computes what the full model computes there."""
    model = build_centernet(2, "resnet10_slim", (64, 64, 3), neck="fpn")
    model.save(tmp_path / "m.keras")
    loaded = centernet_tf.load_centernet(tmp_path / "m.keras")
    images = np.random.default_rng(2).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    backbone = keras.Model(loaded.input, loaded.part_outputs["backbone"])(images)
    assert [tuple(level.shape[1:3]) for level in backbone] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    expected = loaded.backbone(images)
    for got, key in zip(backbone, ("P2", "P3", "P4", "P5")):
        np.testing.assert_allclose(got, expected[key], atol=1e-5)
    neck = keras.Model(loaded.input, loaded.part_outputs["neck"])(images)
    assert tuple(neck.shape) == (1, 16, 16, 64)
    head = loaded.get_layer("heatmap_head_conv")  # only to check the cut against the head's input
    np.testing.assert_allclose(head(neck), keras.Model(loaded.input, head.output)(images), atol=1e-4)
