"""Exponential moving average of a model's weights *and* BatchNorm statistics, for evaluation and saving.

Why not Keras' optimizer ``use_ema`` (+ ``keras.callbacks.SwapEMAWeights``): it averages the trainable
variables only, so the averaged kernels meet BatchNorm moving statistics that follow the latest weights.
Measured on the raccoon check set (aquarium recipe, 20 epochs, fine-tuning at 1e-3, momentum 0.995): its
averaged model scored mAP@0.5 0.000 at every evaluation while the raw weights of the same run trained to a
lower loss than the run without EMA (heatmap 2.07 vs 2.24), and its wh head answered 0.6 where the raw one
answered 78. Averaging the statistics with the weights, as Ultralytics' ``ModelEMA`` does, keeps the pair
consistent; its warm-up (``momentum * (1 - exp(-updates / warmup_updates))``) lets the average follow the
fast early changes instead of dragging the initial weights along for hundreds of steps.

Averaged statistics are still not the statistics of the averaged network: while the weights move fast (the
raccoon check set at lr 1e-3, ~20 steps per epoch) the averaged model of photos.yaml scored test mAP@0.5 0.055
after epoch 20, and 0.000 after epoch 27 of a run with a shorter warm-up. Re-estimating the BatchNorm
statistics of those saved averages on 4 training batches, as ``torch.optim.swa_utils.update_bn`` does after
weight averaging, gave 0.732 and 0.824 (a converged final model: 0.682 -> 0.666 with 4 batches, 0.680 with
16). So before the average is evaluated or saved, :func:`refresh_batch_norm` recomputes them
(``batch_norm_batches``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from centernet_tf.train.callbacks import evaluates_after

#: Updates over which the averaging momentum ramps up (Ultralytics: 2000 with batch 64 on COCO; our runs are
#: 500-3000 steps, so a shorter ramp).
WARMUP_UPDATES = 200


def ema_momentum_at(momentum: float, updates: int, warmup_updates: int = WARMUP_UPDATES) -> float:
    """The averaging momentum after ``updates`` steps: ramps from 0 towards ``momentum``."""
    return momentum * (1.0 - math.exp(-updates / warmup_updates))


def updating_batch_norm(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """The BatchNorm layers whose statistics training updates (a frozen backbone's keep their own)."""
    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]


def refresh_batch_norm(model: keras.Model, images: Iterable[tf.Tensor], forward: Any = None) -> int:
    """Set the moving mean and variance of the :func:`updating_batch_norm` layers to the average of their
    batch statistics over ``images`` (batches), each batch seen by the current weights in training mode.

    With momentum 0 a training-mode forward writes exactly one batch's statistics, which are summed here; the
    weights are untouched. ``forward``: a ``tf.function`` of ``model(x, training=True)`` traced while the
    momentum is 0 (reused across calls); None: a new one. Returns the number of batches used.
    """
    layers = updating_batch_norm(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    sums = [(np.zeros(layer.moving_mean.shape), np.zeros(layer.moving_variance.shape)) for layer in layers]
    forward = forward or tf.function(lambda x: model(x, training=True))
    count = 0
    try:
        for layer in layers:
            layer.momentum = 0.0
        for batch in images:
            forward(batch)
            for (mean, variance), layer in zip(sums, layers):
                mean += np.asarray(layer.moving_mean.value)
                variance += np.asarray(layer.moving_variance.value)
            count += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if count:
        for (mean, variance), layer in zip(sums, layers):
            layer.moving_mean.assign(mean / count)
            layer.moving_variance.assign(variance / count)
    return count


class WeightAverage(keras.callbacks.Callback):
    """Keeps the average after every training batch; puts it in the model at each epoch's end (so evaluation,
    the best model, the backup and the saved model see it) and the raw weights back before the next epoch.

    Averages every float variable of the model: trainable weights and BatchNorm moving mean / variance.
    After the last epoch the average stays in the model, as after Keras' ``finalize_variable_values``.
    With ``training_data`` (the training ``tf.data`` pipeline: (images, targets) batches), after an epoch
    that ``every_n_epochs`` evaluates and after the last one, the average's BatchNorm statistics are
    re-estimated on ``batch_norm_batches`` of its batches (:func:`refresh_batch_norm`).
    """

    def __init__(
        self, momentum: float, warmup_updates: int = WARMUP_UPDATES, training_data: Iterable[Any] | None = None,
        batch_norm_batches: int = 0, every_n_epochs: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 < momentum < 1.0:
            raise ValueError(f"EMA momentum must be in (0, 1), got {momentum}")
        if batch_norm_batches < 0:
            raise ValueError(f"batch_norm_batches must be 0 or more, got {batch_norm_batches}")
        self.training_data = training_data
        self.batch_norm_batches = int(batch_norm_batches) if training_data is not None else 0
        self.every_n_epochs = int(every_n_epochs)
        self._batches: Iterator[Any] | None = None
        self._forward: Any = None
        self.momentum = float(momentum)
        self.warmup_updates = int(warmup_updates)
        self.updates = 0
        self._variables: list[Any] = []
        self._average: list[tf.Variable] = []
        self._raw: list[tf.Variable] = []
        self._update_fn: Any = None
        self._average_in_model = False

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._variables = [v for v in self.model.weights if "float" in str(v.dtype)]
        values = [tf.convert_to_tensor(v.value) for v in self._variables]
        self._average = [tf.Variable(value, trainable=False) for value in values]
        self._raw = [tf.Variable(value, trainable=False) for value in values]
        self.updates = 0

        @tf.function
        def update(decay: tf.Tensor) -> None:
            for average, variable in zip(self._average, self._variables):
                average.assign(decay * average + (1.0 - decay) * tf.cast(variable.value, average.dtype))

        self._update_fn = update

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.updates += 1
        self._update_fn(tf.constant(ema_momentum_at(self.momentum, self.updates, self.warmup_updates), tf.float32))

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._average_in_model:
            for raw, variable in zip(self._raw, self._variables):
                variable.assign(raw)
            self._average_in_model = False

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for raw, average, variable in zip(self._raw, self._average, self._variables):
            raw.assign(variable.value)
            variable.assign(average)
        self._average_in_model = True
        if self.batch_norm_batches and evaluates_after(epoch, self.params.get("epochs"), self.every_n_epochs):
            self._refresh_batch_norm()

    def _refresh_batch_norm(self) -> None:
        if self._batches is None:  # one iterator for the whole fit: its pipeline starts once
            self._batches = iter(self.training_data)
            self._forward = tf.function(lambda x: self.model(x, training=True))
        images = (next(self._batches)[0] for _ in range(self.batch_norm_batches))
        refresh_batch_norm(self.model, images, self._forward)
