"""``train.time_budget_minutes``: as many epochs as fit in the user's wait, from the step time measured here.

A user's limit is the hour they wait, not an epoch count: the same config trains 20 epochs on a laptop and 200
on a GPU. The schedule (warm-up, cosine decay) is laid over the epochs that fit, so it still ends at a low
learning rate instead of being cut off half-way. The step is timed with the backbone trainable (the slowest
phase), so the budget is an upper bound; evaluation time is not in it (``metrics.json`` reports both).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import keras

from centernet_tf.config import Config
from centernet_tf.files import atomic_write
from centernet_tf.transfer import set_backbone_trainable

logger = logging.getLogger(__name__)

#: Steps run before timing (the first traces and compiles the step) and steps timed.
WARMUP_STEPS = 2
TIMED_STEPS = 8
#: Where the chosen epoch count is kept, so a resumed run keeps the schedule it started with.
BUDGET_FILE = "time_budget.json"


def measure_step_seconds(model: keras.Model, config: Config, train_ds: Any, timed_steps: int = TIMED_STEPS) -> float:
    """Median seconds of one training step of ``model`` on ``train_ds``, backbone trainable; the model's weights
    (BatchNorm statistics included) are left as they were."""
    weights = model.get_weights()
    frozen = config.train.freeze_backbone_epochs > 0
    if frozen:
        set_backbone_trainable(model, True, train_batch_norm=config.train.fine_tune_batch_norm)
    model.compile(optimizer=keras.optimizers.Adam(0.0), jit_compile=config.train.jit_compile)
    batches = iter(train_ds)
    times = []
    for step in range(WARMUP_STEPS + timed_steps):
        started = time.perf_counter()  # the wait for the batch counts: decoding shares the CPU with the step
        images, targets = next(batches)
        model.train_on_batch(images, targets)
        if step >= WARMUP_STEPS:
            times.append(time.perf_counter() - started)
    model.set_weights(weights)  # the training phases set what is trainable themselves
    return statistics.median(times)


def epochs_for_budget(budget_minutes: float, step_seconds: float, steps_per_epoch: int, min_epochs: int = 1) -> int:
    """The most whole epochs of ``steps_per_epoch`` steps that fit in ``budget_minutes`` (at least ``min_epochs``)."""
    return max(int(budget_minutes * 60.0 // (step_seconds * steps_per_epoch)), min_epochs)


def apply_time_budget(config: Config, model: keras.Model, train_ds: Any, steps_per_epoch: int, run_dir: Path) -> Config:
    """``config`` with ``train.epochs`` set from ``train.time_budget_minutes`` (unchanged without one).

    The choice is written to ``<run_dir>/time_budget.json``; a resumed run reads it back instead of timing
    again, so its schedule is the one its backup was trained with.
    """
    budget = config.train.time_budget_minutes
    if budget is None:
        return config
    saved = run_dir / BUDGET_FILE
    if saved.is_file():
        choice = json.loads(saved.read_text())
        logger.info("Time budget: %d epochs, as chosen when this run started (%s)", choice["epochs"], saved)
    else:
        seconds = measure_step_seconds(model, config, train_ds)
        min_epochs = config.train.freeze_backbone_epochs + 1
        epochs = epochs_for_budget(budget, seconds, steps_per_epoch, min_epochs)
        choice = {"budget_minutes": budget, "step_seconds": round(seconds, 4), "steps_per_epoch": steps_per_epoch,
                  "epochs": epochs}
        atomic_write(saved, json.dumps(choice, indent=2))
        logger.info(
            "Time budget %.0f min: %.2f s per step x %d steps per epoch -> %d epochs (train.epochs %d ignored)",
            budget, seconds, steps_per_epoch, epochs, config.train.epochs,
        )
    return dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=int(choice["epochs"])))


class BudgetWatch(keras.callbacks.Callback):
    """Says so, once, when training runs slower than the step time the budget was planned with: the machine's
    speed can change after the start (other work on the same cores, a shared host), and a user who asked for an
    hour should hear at once that it will take longer, not find out at the end. Evaluation time is not counted."""

    #: Warn when the epochs are this much slower than planned.
    TOLERANCE = 1.15

    def __init__(self, planned_step_seconds: float, steps_per_epoch: int) -> None:
        super().__init__()
        self.planned_epoch_seconds = planned_step_seconds * steps_per_epoch
        self.warned = False
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if batch == 0:  # the epoch's timing starts after its first step (a new phase traces its step then)
            self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        steps = max(int(self.params.get("steps") or 1) - 1, 1)
        epoch_seconds = (time.perf_counter() - self._started) / steps * (steps + 1)
        self.check(epoch_seconds)

    def check(self, epoch_seconds: float) -> bool:
        """Warn (once) when one epoch took more than :data:`TOLERANCE` times the planned time; whether it did."""
        slower = epoch_seconds > self.TOLERANCE * self.planned_epoch_seconds
        if slower and not self.warned:
            self.warned = True
            logger.warning(
                "Training runs %.0f%% slower than the step time measured at the start (%.0f s per epoch instead of "
                "%.0f): the time budget will be exceeded by about as much. Other work on these cores slows it.",
                100 * (epoch_seconds / self.planned_epoch_seconds - 1), epoch_seconds, self.planned_epoch_seconds,
            )
        return slower


def budget_watch(run_dir: Path) -> list[BudgetWatch]:
    """The watch for a run with a time budget (none without one)."""
    saved = run_dir / BUDGET_FILE
    if not saved.is_file():
        return []
    choice = json.loads(saved.read_text())
    return [BudgetWatch(float(choice["step_seconds"]), int(choice["steps_per_epoch"]))]
