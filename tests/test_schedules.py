"""Learning-rate schedules: linear scaling rule, warm-up, step and cosine decay, clipping, serialization."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from centernet_tf.config import load_config
from centernet_tf.model.centernet import build_centernet
from centernet_tf.train.phases import compile_centernet
from centernet_tf.train.schedules import StepDecayWithWarmup, learning_rate_schedule, peak_learning_rate


def test_learning_rate_scales_linearly_with_the_batch_unless_given() -> None:
    assert peak_learning_rate(load_config(None, ["train.batch_size=32"]).train) == pytest.approx(1.25e-4)
    assert peak_learning_rate(load_config(None, ["train.batch_size=8"]).train) == pytest.approx(3.125e-5)
    assert peak_learning_rate(load_config(None, ["train.batch_size=128"]).train) == pytest.approx(5e-4)
    assert peak_learning_rate(load_config(None, ["train.learning_rate=1e-3"]).train) == pytest.approx(1e-3)


def test_step_schedule_warms_up_then_drops_at_the_decay_epochs() -> None:
    train = load_config(None, ["train.batch_size=64", "train.lr_schedule=step", "train.lr_decay_epochs=[3,5]",
                               "train.warmup_steps=4", "train.epochs=6"]).train
    schedule = learning_rate_schedule(train, steps_per_epoch=10)
    peak = 2.5e-4
    got = [float(schedule(step)) for step in (0, 2, 4, 29, 30, 49, 50, 59)]
    want = [0.0, peak / 2, peak, peak, peak / 10, peak / 10, peak / 100, peak / 100]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12)


def test_cosine_schedule_reaches_peak_after_warmup_and_zero_at_the_end() -> None:
    train = load_config(None, ["train.learning_rate=1e-3", "train.warmup_steps=10", "train.epochs=4"]).train
    schedule = learning_rate_schedule(train, steps_per_epoch=30)
    assert float(schedule(5)) == pytest.approx(5e-4)
    assert float(schedule(10)) == pytest.approx(1e-3)
    # Half-way through the decay (55 of 110 steps after warm-up): 0.5 * (1 + cos(pi / 2)) = 0.5.
    assert float(schedule(10 + 55)) == pytest.approx(5e-4, rel=1e-5)
    assert float(schedule(120)) == pytest.approx(0.0, abs=1e-9)


def test_constant_schedule_and_serialization() -> None:
    schedule = StepDecayWithWarmup(3e-4, warmup_steps=0)
    assert float(schedule(0)) == float(schedule(10_000)) == pytest.approx(3e-4)
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(
        StepDecayWithWarmup(1e-3, 5, [10, 20], 0.5)))
    assert float(restored(15)) == pytest.approx(5e-4) and float(restored(2)) == pytest.approx(4e-4)


def test_step_schedule_without_decay_epochs_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="lr_decay_epochs"):
        load_config(None, ["train.lr_schedule=step"])


def test_gradient_clipping_reaches_the_optimizer() -> None:
    config = load_config(None, ["train.gradient_clip_norm=10.0", "train.lr_schedule=constant", "train.warmup_steps=0"])
    model = compile_centernet(build_centernet(2, "resnet10_slim", (64, 64, 3)), config, steps_per_epoch=5)
    assert model.optimizer.global_clipnorm == 10.0
    assert math.isclose(float(model.optimizer.learning_rate), 1.25e-4 * 16 / 32, rel_tol=1e-6)
