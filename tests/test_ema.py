"""The weight average (``train.ema_momentum``): weights and BatchNorm statistics, hand-computed, swapped per epoch."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from centernet_tf.train.ema import WeightAverage, ema_momentum_at, refresh_batch_norm, updating_batch_norm


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


def _dense_batch_norm_model(momentum: float = 0.9) -> keras.Model:
    inputs = keras.Input((3,))
    hidden = keras.layers.BatchNormalization(momentum=momentum)(keras.layers.Dense(4)(inputs))
    return keras.Model(inputs, keras.layers.Dense(1)(hidden))


def test_refresh_sets_the_average_of_each_batch_statistics_and_keeps_the_momentum() -> None:
    keras.utils.set_random_seed(0)
    model = _dense_batch_norm_model(momentum=0.7)
    frozen = keras.layers.BatchNormalization()
    frozen.build((None, 1))
    frozen.trainable = False
    batches = [np.random.default_rng(k).normal(k, 1 + k, size=(5, 3)).astype("float32") for k in range(3)]
    kernel, bias = (np.array(v) for v in model.layers[1].get_weights())
    weights_before = [np.array(v) for v in model.trainable_weights]

    assert refresh_batch_norm(model, [tf.constant(b) for b in batches]) == 3

    hidden = [b @ kernel + bias for b in batches]
    norm = model.layers[2]
    np.testing.assert_allclose(norm.moving_mean, np.mean([h.mean(0) for h in hidden], 0), rtol=1e-5)
    # Keras' training-mode (biased) batch variance, averaged over the batches.
    np.testing.assert_allclose(norm.moving_variance, np.mean([h.var(0) for h in hidden], 0), rtol=1e-4)
    assert norm.momentum == 0.7
    for before, after in zip(weights_before, model.trainable_weights):
        np.testing.assert_array_equal(before, after)
    assert refresh_batch_norm(model, []) == 0  # no batch: the statistics stay
    np.testing.assert_allclose(norm.moving_mean, np.mean([h.mean(0) for h in hidden], 0), rtol=1e-5)
    assert updating_batch_norm(keras.Sequential([keras.Input((1,)), frozen])) == []


def test_the_average_gets_fresh_statistics_only_when_it_is_evaluated_or_saved() -> None:
    keras.utils.set_random_seed(0)
    model = _dense_batch_norm_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    probe = np.random.default_rng(1).normal(3, 2, size=(4, 3)).astype("float32")  # unlike the training inputs
    seen: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    class Look(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            kernel, bias = (np.array(v) for v in model.layers[1].get_weights())
            seen[epoch] = (probe @ kernel + bias, np.array(model.layers[2].moving_mean),
                           np.array(model.layers[2].moving_variance))

    training_data = tf.data.Dataset.from_tensors((probe, probe[:, :1])).repeat()
    average = WeightAverage(0.9, warmup_updates=2, training_data=training_data, batch_norm_batches=2, every_n_epochs=2)
    model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0, callbacks=[average, Look()])
    for epoch in (1, 2):  # the second (every 2nd) and the last: the averaged Dense's statistics on the probe
        hidden, mean, variance = seen[epoch]
        np.testing.assert_allclose(mean, hidden.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(variance, hidden.var(0), rtol=1e-4, atol=1e-6)
    hidden, mean, _ = seen[0]  # the first: the averaged statistics, far from the probe's
    assert np.abs(mean - hidden.mean(0)).max() > 0.5


def test_batch_norm_batches_below_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="batch_norm_batches"):
        WeightAverage(0.9, batch_norm_batches=-1)
