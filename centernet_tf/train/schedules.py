"""Learning-rate schedules: linear warm-up, then constant, step or cosine decay (all serializable)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from centernet_tf.config import TrainConfig

#: The paper's Adam learning rate for a batch of 32 images; scaled linearly with the batch size.
PAPER_LR_PER_32_IMAGES = 1.25e-4


@keras.saving.register_keras_serializable(package="centernet_tf")
class StepDecayWithWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """``peak * step / warmup_steps`` during warm-up, then ``peak * factor ** (boundaries passed)``.

    Keras' ``PiecewiseConstantDecay`` has no warm-up, which from-scratch training and large batches need.
    With no boundaries this is a constant rate after the warm-up.
    """

    def __init__(
        self, peak: float, warmup_steps: int = 0, boundaries: Sequence[int] = (), factor: float = 0.1
    ) -> None:
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.boundaries = [int(b) for b in boundaries]
        self.factor = float(factor)

    def __call__(self, step: Any) -> Any:
        step = ops.cast(step, "float32")
        passed = sum((ops.cast(step >= b, "float32") for b in self.boundaries), ops.zeros((), "float32"))
        rate = self.peak * ops.power(self.factor, passed)
        if self.warmup_steps > 0:
            rate = ops.where(step < self.warmup_steps, self.peak * step / self.warmup_steps, rate)
        return rate

    def get_config(self) -> dict[str, Any]:
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "boundaries": self.boundaries,
            "factor": self.factor,
        }


@keras.saving.register_keras_serializable(package="centernet_tf")
class StretchableCosineDecay(keras.optimizers.schedules.CosineDecay):
    """Keras' ``CosineDecay`` (with warm-up) whose length can change while it trains: a time budget re-plans the
    epochs after each one, and the decay must then still end at the new last step. ``decay_steps`` is a variable
    the compiled step reads, so :meth:`stretch` needs no retrace."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, **kwargs: Any) -> None:
        super().__init__(initial_learning_rate, int(decay_steps), **kwargs)
        self.decay_steps = keras.Variable(float(decay_steps), dtype="float32", trainable=False, name="decay_steps")

    def stretch(self, decay_steps: int) -> None:
        """Decay over ``decay_steps`` steps after the warm-up from now on (at least 1)."""
        self.decay_steps.assign(float(max(int(decay_steps), 1)))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "decay_steps": int(ops.convert_to_numpy(self.decay_steps))}


def peak_learning_rate(train: TrainConfig) -> float:
    """``train.learning_rate`` if set, else the paper's 1.25e-4 per 32 images scaled to ``train.batch_size``."""
    if train.learning_rate is not None:
        return train.learning_rate
    return train.base_learning_rate * train.batch_size / 32.0


def fine_tune_learning_rate(train: TrainConfig) -> float:
    """Peak learning rate after the backbone is unfrozen: ``train.fine_tune_learning_rate`` or a tenth of the first."""
    if train.fine_tune_learning_rate is not None:
        return train.fine_tune_learning_rate
    return peak_learning_rate(train) / 10.0


def learning_rate_schedule(
    train: TrainConfig,
    steps_per_epoch: int,
    first_epoch: int = 0,
    last_epoch: int | None = None,
    peak: float | None = None,
) -> keras.optimizers.schedules.LearningRateSchedule:
    """The schedule over optimizer steps (it follows ``optimizer.iterations``, so it survives a resume).

    One training phase covers epochs ``[first_epoch, last_epoch)`` (default: all of ``train.epochs``) with a
    fresh optimizer, so its warm-up and decay span that phase only; step-decay epochs stay absolute.
    """
    last_epoch = train.epochs if last_epoch is None else last_epoch
    total_steps = steps_per_epoch * (last_epoch - first_epoch)
    peak = peak_learning_rate(train) if peak is None else peak
    warmup = min(train.warmup_steps, max(total_steps - 1, 0))
    if train.lr_schedule == "cosine":
        return StretchableCosineDecay(
            initial_learning_rate=0.0 if warmup else peak,
            decay_steps=max(total_steps - warmup, 1),
            warmup_target=peak if warmup else None,
            warmup_steps=warmup,
        )
    decay_epochs = train.lr_decay_epochs if train.lr_schedule == "step" else []
    boundaries = [(epoch - first_epoch) * steps_per_epoch for epoch in decay_epochs if epoch > first_epoch]
    return StepDecayWithWarmup(peak, warmup, boundaries, train.lr_decay_factor)
