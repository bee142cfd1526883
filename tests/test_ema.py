"""The weight average (``train.ema_momentum``): weights and BatchNorm statistics, hand-computed, swapped per epoch."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from centernet_tf.train.ema import WeightAverage, ema_momentum_at


def test_momentum_ramps_up_like_ultralytics() -> None:
    assert ema_momentum_at(0.99, 0, 100) == 0.0
    assert ema_momentum_at(0.99, 100, 100) == pytest.approx(0.99 * (1 - math.exp(-1)))
    assert ema_momentum_at(0.99, 10_000, 100) == pytest.approx(0.99)


def test_average_of_weights_and_batch_norm_statistics_equals_the_hand_computed_one() -> None:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    hidden = keras.layers.BatchNormalization(momentum=0.5)(keras.layers.Dense(4)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = np.random.default_rng(0).normal(size=(12, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    history: list[list[np.ndarray]] = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            history.append([np.array(v) for v in model.get_weights()])

    seen: dict[int, list[np.ndarray]] = {}

    class Look(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen[epoch] = [np.array(v) for v in model.get_weights()]

    average = WeightAverage(0.9, warmup_updates=2)
    start = [np.array(v) for v in model.get_weights()]
    # Record runs before the average updates, Look after it has swapped the average in.
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[Record(), average, Look()])
    expected = start
    for step, weights in enumerate(history, start=1):
        decay = 0.9 * (1 - math.exp(-step / 2))
        expected = [decay * e + (1 - decay) * w for e, w in zip(expected, weights)]
        if step == 3:  # end of the first epoch (3 batches of 4)
            for got, want in zip(seen[0], expected):
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    names = [v.path for v in model.weights]
    assert any("moving_mean" in n for n in names)  # BatchNorm statistics are among the averaged weights
    for got, want in zip(seen[1], expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # After the last epoch the model keeps the average; the second epoch trained from the raw weights.
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(history[3][0], seen[0][0])


def test_momentum_outside_zero_one_is_refused() -> None:
    with pytest.raises(ValueError, match="EMA momentum"):
        WeightAverage(1.0)
