"""Transfer learning: the backbone is found in the graph, frozen means weights and BatchNorm statistics fixed."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from centernet_tf.config import ConfigError, load_config
from centernet_tf.model.centernet import build_centernet
from centernet_tf.model.targets import encode_targets, keras_targets
from centernet_tf.train.phases import compile_centernet, training_phases
from centernet_tf.train.schedules import learning_rate_schedule
from centernet_tf.train.transfer import (
    backbone_layers, layers_up_to_stride, set_backbone_trainable, unfreeze_for_fine_tuning,
)

SIZE = 64


@pytest.mark.parametrize("backbone", ["resnet10_slim", "resnet50"])
def test_backbone_layers_are_exactly_the_nested_backbone(backbone: str) -> None:
    model = build_centernet(2, backbone, (SIZE, SIZE, 3))
    found = backbone_layers(model)
    assert found == [layer for layer in model.backbone.layers if not isinstance(layer, keras.layers.InputLayer)]
    assert found[0].name == "normalize"
    # Nothing of the neck or the heads is part of it.
    outside = {id(layer) for layer in model.layers if layer is not model.backbone}
    assert not outside & {id(layer) for layer in found}
    assert {layer.name for layer in model.layers} >= {"decoder1_deconv", "heatmap", "wh", "offset"}


def test_backbone_layers_rejects_other_models() -> None:
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    with pytest.raises(TypeError, match="needs a CenterNet model of parts"):
        backbone_layers(other)


def _batch(batch_size: int = 4) -> tuple[np.ndarray, dict[str, tf.Tensor]]:
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size, SIZE, SIZE, 3)).astype("float32")
    targets = [
        keras_targets(encode_targets(tf.constant([[8.0, 10.0, 30.0, 40.0], [33.0, 5.0, 60.0, 28.0]]),
                                     tf.constant([0, 1]), (SIZE, SIZE), num_classes=2, max_objects=8))
        for _ in range(batch_size)
    ]
    return images, {k: tf.stack([t[k] for t in targets]) for k in targets[0]}


def _fit_once(model: keras.Model) -> dict[str, list[np.ndarray]]:
    """Snapshot every layer's variables, fit two steps in training mode, return the snapshot."""
    layers = model.layers + model.backbone.layers
    before = {layer.name: [v.numpy().copy() for v in layer.weights] for layer in layers}
    images, targets = _batch()
    model.fit(images, targets, batch_size=2, epochs=1, verbose=0)
    return before


def _changed(layer: keras.layers.Layer, before: list[np.ndarray]) -> list[bool]:
    return [not np.array_equal(old, new.numpy()) for old, new in zip(before, layer.weights)]


def _phase_config(*overrides: str):
    return load_config(None, ["model.backbone=resnet10_slim", "train.jit_compile=false", "train.epochs=4",
                              "train.warmup_steps=0", "train.lr_schedule=constant", *overrides])


def test_frozen_backbone_keeps_weights_and_batchnorm_statistics_and_decoder_learns() -> None:
    config = _phase_config("train.freeze_backbone_epochs=2")
    model = build_centernet(2, "resnet10_slim", (SIZE, SIZE, 3))
    frozen, fine_tune = training_phases(config.train)
    assert set_backbone_trainable(model, False) == len(backbone_layers(model))
    compile_centernet(model, config, steps_per_epoch=2, phase=frozen)
    before = _fit_once(model)

    backbone = {layer.name for layer in backbone_layers(model)} | {model.backbone.name}
    for layer in model.layers + model.backbone.layers:
        if not layer.weights:
            continue
        changed = _changed(layer, before[layer.name])
        if layer.name in backbone:
            assert not any(changed), f"frozen {layer.name} changed"
        elif isinstance(layer, keras.layers.BatchNormalization):
            assert all(changed), f"{layer.name}: gamma, beta and both moving statistics must update"
        else:
            assert any(changed), f"{layer.name} did not learn"


@pytest.mark.parametrize("train_batch_norm", [False, True])
def test_fine_tuning_unfreezes_convolutions_and_batchnorm_only_when_asked(train_batch_norm: bool) -> None:
    config = _phase_config("train.freeze_backbone_epochs=2", f"train.fine_tune_batch_norm={train_batch_norm}")
    model = build_centernet(2, "resnet10_slim", (SIZE, SIZE, 3))
    set_backbone_trainable(model, False)
    assert unfreeze_for_fine_tuning(model, config.train) == (len(backbone_layers(model)), 0)
    compile_centernet(model, config, steps_per_epoch=2, phase=training_phases(config.train)[1])
    before = _fit_once(model)
    for layer in backbone_layers(model):
        if not layer.weights:
            continue
        changed = _changed(layer, before[layer.name])
        if isinstance(layer, keras.layers.BatchNormalization):
            assert all(changed) if train_batch_norm else not any(changed), layer.name
        else:
            assert all(changed), f"{layer.name} should be fine-tuned"


def test_phases_and_their_learning_rates() -> None:
    config = _phase_config("train.freeze_backbone_epochs=1", "train.learning_rate=1e-3")
    frozen, fine_tune = training_phases(config.train)
    assert (frozen.first_epoch, frozen.last_epoch, frozen.frozen_backbone) == (0, 1, True)
    assert (fine_tune.first_epoch, fine_tune.last_epoch, fine_tune.frozen_backbone) == (1, 4, False)
    assert frozen.peak_learning_rate == pytest.approx(1e-3)
    assert fine_tune.peak_learning_rate == pytest.approx(1e-4)  # a tenth by default
    explicit = _phase_config("train.freeze_backbone_epochs=1", "train.fine_tune_learning_rate=3e-4")
    assert training_phases(explicit.train)[1].peak_learning_rate == pytest.approx(3e-4)
    assert [p.name for p in training_phases(_phase_config().train)] == ["train"]


def test_fine_tune_schedule_spans_its_own_phase() -> None:
    train = _phase_config("train.lr_schedule=cosine", "train.warmup_steps=2", "train.epochs=5").train
    # Fine-tuning epochs 2..5 with 10 steps each: warm-up over 2 steps, cosine to 0 at 30 steps.
    schedule = learning_rate_schedule(train, 10, first_epoch=2, last_epoch=5, peak=1e-4)
    assert float(schedule(1)) == pytest.approx(0.5e-4)
    assert float(schedule(2)) == pytest.approx(1e-4)
    assert float(schedule(16)) == pytest.approx(0.5e-4, rel=1e-4)  # halfway through the 28 decay steps
    step = _phase_config("train.lr_schedule=step", "train.lr_decay_epochs=[1,3]", "train.epochs=5").train
    # Absolute decay epochs: the one at epoch 1 is before the phase, the one at epoch 3 is 1 epoch into it.
    schedule = learning_rate_schedule(step, 10, first_epoch=2, last_epoch=5, peak=1e-4)
    assert [float(schedule(s)) for s in (0, 9, 10)] == pytest.approx([1e-4, 1e-4, 1e-5])


@pytest.mark.parametrize("overrides, message", [
    (["train.freeze_backbone_epochs=4"], "freeze_backbone_epochs"),
    (["train.freeze_backbone_epochs=-1"], "freeze_backbone_epochs"),
    (["train.fine_tune_learning_rate=0"], "fine_tune_learning_rate"),
])
def test_bad_transfer_config_is_an_error(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _phase_config(*overrides)


def test_fine_tuning_keeps_the_layers_up_to_a_stride_frozen() -> None:
    # BatchNorm trained while fine-tuning, so that the kept layers' statistics staying fixed means something.
    config = _phase_config("train.freeze_backbone_epochs=2", "train.fine_tune_frozen_stride=8",
                           "train.fine_tune_batch_norm=true")
    model = build_centernet(2, "resnet10_slim", (SIZE, SIZE, 3))
    kept = layers_up_to_stride(model, 8)
    everything = backbone_layers(model)
    # The stem and the stages before the stride-8 output: a leading run of the graph, at strides 1 to 8 only.
    assert everything[: len(kept)] == kept and 0 < len(kept) < len(everything)
    assert {SIZE // layer.output.shape[1] for layer in kept if len(layer.output.shape) == 4} == {1, 2, 4, 8}
    assert len(layers_up_to_stride(model, 4)) < len(kept)
    set_backbone_trainable(model, False)
    assert unfreeze_for_fine_tuning(model, config.train) == (len(backbone_layers(model)), len(kept))
    compile_centernet(model, config, steps_per_epoch=2, phase=training_phases(config.train)[1])
    before = _fit_once(model)
    kept_names = {layer.name for layer in kept}
    for layer in everything:
        if layer.weights:
            changed = _changed(layer, before[layer.name])
            assert (not any(changed)) if layer.name in kept_names else all(changed), layer.name
    with pytest.raises(ValueError, match=r"fine_tune_frozen_stride 2: the backbone gives features at strides \[4, 8"):
        layers_up_to_stride(model, 2)


@pytest.mark.parametrize(("overrides", "message"), [
    (["train.fine_tune_frozen_stride=6", "train.freeze_backbone_epochs=1"], "must be 0 or a power of two, got 6"),
    (["train.fine_tune_frozen_stride=4"], "acts while fine-tuning: it needs train.freeze_backbone_epochs >= 1"),
])
def test_frozen_stride_needs_a_power_of_two_and_a_fine_tuning_phase(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=f"train.fine_tune_frozen_stride {message}"):
        _phase_config(*overrides)


def test_an_hourglass_has_no_stem_to_freeze_by_stride(tiny_hourglass: str) -> None:
    model = build_centernet(2, tiny_hourglass, (SIZE, SIZE, 3), neck="identity")
    with pytest.raises(ValueError, match="needs a backbone of one stack; this one has 2"):
        layers_up_to_stride(model, 4)


def _shapes_run(tmp_path, stride: int) -> list[str]:
    return ["model.backbone=resnet10_slim", "model.input_size=[64,64]", "data.shapes_num_train=8",
            "data.shapes_num_val=4", "data.shapes_image_size=[64,64]", f"data.shapes_dir={tmp_path / 'shapes'}",
            "train.batch_size=4", "train.warmup_steps=1", "train.jit_compile=false", "train.epochs=2",
            "train.freeze_backbone_epochs=1", f"train.fine_tune_frozen_stride={stride}", "eval.every_n_epochs=0"]


def test_a_training_run_fine_tunes_with_the_stem_frozen_and_a_missing_stride_fails_first(tmp_path) -> None:
    from centernet_tf.model.centernet import load_centernet
    from centernet_tf.train.training import run_training

    with pytest.raises(ValueError, match=r"fine_tune_frozen_stride 2: the backbone gives features at strides \[4"):
        run_training(load_config(None, _shapes_run(tmp_path, 2)), tmp_path / "bad", verbose=0)
    assert not (tmp_path / "bad" / "frozen_backbone.weights.h5").exists()  # failed before the first phase
    run_training(load_config(None, _shapes_run(tmp_path, 8)), tmp_path / "run", verbose=0)
    model = load_centernet(tmp_path / "run" / "model.keras")
    kept = {id(layer) for layer in layers_up_to_stride(model, 8)}
    convolutions = [layer for layer in backbone_layers(model) if isinstance(layer, keras.layers.Conv2D)]
    assert all(not layer.trainable for layer in convolutions if id(layer) in kept)
    assert all(layer.trainable for layer in convolutions if id(layer) not in kept)
    assert 0 < len(kept & {id(layer) for layer in convolutions}) < len(convolutions)
