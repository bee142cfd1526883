"""``train.time_budget_minutes``: as many epochs as fit in the user's wait, from the step time measured here.

A user's limit is the hour they wait, not an epoch count: the same config trains 20 epochs on a laptop and 200
on a GPU. The schedule (warm-up, cosine decay) is laid over the epochs that fit, so it still ends at a low
learning rate instead of being cut off half-way. The first plan comes from a step timed with the backbone
trainable (the slowest phase); after every epoch of the last phase the plan is made again from the epochs' own
wall time (evaluations included: the user waits for them too), as Ultralytics' ``time=`` does, because a
machine's speed changes while it trains (other work on the cores, a shared host). The budget counts from the
step timing to the end of the last epoch; the final evaluation and saving come after it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras

from centernet_tf.config import Config
from centernet_tf.files import atomic_write
from centernet_tf.train.transfer import unfreeze_for_fine_tuning

logger = logging.getLogger(__name__)

#: Steps run before timing (the first traces and compiles the step) and steps timed.
WARMUP_STEPS = 2
TIMED_STEPS = 8
#: Where the plan (epochs) and the time spent are kept, so a resumed run goes on with both.
BUDGET_FILE = "time_budget.json"
#: The re-planned run may grow to at most this many times the epochs first planned for its last phase.
MAX_STRETCH = 3
#: Epochs whose wall time (the phase's first, which traces the step, left out) gives the re-planning estimate.
RECENT_EPOCHS = 5


def measure_step_seconds(model: keras.Model, config: Config, train_ds: Any, timed_steps: int = TIMED_STEPS) -> float:
    """Median seconds of one training step of ``model`` on ``train_ds``, backbone trainable; the model's weights
    (BatchNorm statistics included) are left as they were."""
    weights = model.get_weights()
    frozen = config.train.freeze_backbone_epochs > 0
    if frozen:
        unfreeze_for_fine_tuning(model, config.train)
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

    The plan is written to ``<run_dir>/time_budget.json`` (and updated after each epoch by
    :class:`BudgetPlanner`); a resumed run reads it back instead of timing again, so it goes on with the plan
    and the time already spent.
    """
    budget = config.train.time_budget_minutes
    if budget is None:
        return config
    saved = run_dir / BUDGET_FILE
    if saved.is_file():
        choice = json.loads(saved.read_text())
        logger.info("Time budget: %d epochs, as planned when this run stopped (%s)", choice["epochs"], saved)
    else:
        started = time.perf_counter()
        seconds = measure_step_seconds(model, config, train_ds)
        min_epochs = config.train.freeze_backbone_epochs + 1
        epochs = epochs_for_budget(budget, seconds, steps_per_epoch, min_epochs)
        choice = {"budget_minutes": budget, "step_seconds": round(seconds, 4), "steps_per_epoch": steps_per_epoch,
                  "epochs": epochs, "elapsed_seconds": round(time.perf_counter() - started, 1)}
        atomic_write(saved, json.dumps(choice, indent=2))
        logger.info(
            "Time budget %.0f min: %.2f s per step x %d steps per epoch -> %d epochs (train.epochs %d ignored)",
            budget, seconds, steps_per_epoch, epochs, config.train.epochs,
        )
    return dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=int(choice["epochs"])))


def plan_last_epoch(epochs_done: int, seconds_left: float, epoch_seconds: float) -> int:
    """The epoch to end on: the ``epochs_done`` so far plus the whole epochs of ``epoch_seconds`` that still fit
    in ``seconds_left`` (none when the budget is spent)."""
    return epochs_done + max(int(seconds_left // max(epoch_seconds, 1e-9)), 0)


class BudgetPlanner(keras.callbacks.Callback):
    """Counts the wall time of every epoch into ``time_budget.json`` and, in the last training phase, plans the
    run's end again after each epoch: the epochs that still fit at the recent pace, the cosine decay stretched
    (or shortened) to end there, training stopped once the plan is reached. Goes before the evaluation in the
    callback list, so the evaluation knows the last epoch when it comes."""

    def __init__(
        self,
        run_dir: Path,
        first_epoch: int,
        re_plan: bool,
        max_epoch: int | None = None,
        schedule: Any = None,
        progbar: keras.callbacks.ProgbarLogger | None = None,
        clock: Callable[[], float] = time.perf_counter,
        plan: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.path = run_dir / BUDGET_FILE
        self.plan = plan if plan is not None else json.loads(self.path.read_text())  # the file's, unless given
        self.first_epoch = first_epoch
        self.re_plan = re_plan
        self.max_epoch = max_epoch  # what ``fit`` was given: the plan cannot go past it
        self.schedule = schedule if hasattr(schedule, "stretch") else None
        self.progbar = progbar
        self.clock = clock
        self.epoch_seconds: list[float] = []
        self._mark = 0.0

    @property
    def last_epoch(self) -> int:
        return int(self.plan["epochs"])

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._mark = self.clock()
        if self.re_plan:
            self._show(self.last_epoch)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        now = self.clock()  # since the last epoch's end: this epoch's training and the callbacks after the last
        self.epoch_seconds.append(now - self._mark)
        self._mark = now
        self.plan["elapsed_seconds"] = round(float(self.plan.get("elapsed_seconds", 0.0)) + self.epoch_seconds[-1], 1)
        self.plan["epochs_done"] = epoch + 1
        if self.re_plan:
            seconds_left = 60.0 * self.plan["budget_minutes"] - self.plan["elapsed_seconds"]
            last = self.last_epoch
            if len(self.epoch_seconds) > 1:  # the phase's first epoch traces the step: its time is not the pace
                pace = statistics.fmean(self.epoch_seconds[1:][-RECENT_EPOCHS:])
                last = min(plan_last_epoch(epoch + 1, seconds_left, pace), self.max_epoch or last)
                if last != self.last_epoch:
                    logger.info("Time budget: %d epochs instead of %d (%.0f s per epoch, %.1f of %.0f min spent)",
                                last, self.last_epoch, pace, self.plan["elapsed_seconds"] / 60,
                                self.plan["budget_minutes"])
                    self.plan["epochs"] = last
                    self._show(last)
            if epoch + 1 >= last or seconds_left <= 0:
                self.model.stop_training = True
                if self.last_epoch != epoch + 1:  # the budget ran out before the plan: this epoch is the last
                    self.plan["epochs"] = epoch + 1
                    self._show(epoch + 1)
        atomic_write(self.path, json.dumps(self.plan, indent=2))

    def _show(self, last: int) -> None:
        """Tell the schedule, the evaluation (which evaluates at ``params["epochs"]``) and the progress bar."""
        if self.schedule is not None:
            self.schedule.stretch((last - self.first_epoch) * int(self.plan["steps_per_epoch"]) - self.schedule.warmup_steps)
        self.params["epochs"] = last
        if self.progbar is not None:
            self.progbar.epochs = last


def budget_planner(
    run_dir: Path, first_epoch: int, last_epoch: int, last_phase: bool, schedule: Any
) -> tuple[list[keras.callbacks.Callback], int]:
    """The callbacks (planner, and a progress bar it can update) of one training phase and the ``epochs`` to
    give ``fit``: without a budget, none and ``last_epoch``; in the last phase room for the plan to grow."""
    path = run_dir / BUDGET_FILE
    if not path.is_file():
        return [], last_epoch
    fit_epochs = last_epoch
    plan = json.loads(path.read_text())
    if last_phase:
        if plan.get("epochs_done", 0) < plan["epochs"]:  # else the plan is done: a resumed run trains no more
            # The room to grow is fixed when the phase first starts, so a resume does not move it.
            plan.setdefault("max_epoch", first_epoch + MAX_STRETCH * (last_epoch - first_epoch))
            atomic_write(path, json.dumps(plan, indent=2))
            fit_epochs = int(plan["max_epoch"])
    progbar = keras.callbacks.ProgbarLogger()
    planner = BudgetPlanner(run_dir, first_epoch, last_phase, fit_epochs, schedule=schedule, progbar=progbar, plan=plan)
    return [planner, progbar], fit_epochs


def planned_epochs(config: Config, run_dir: Path) -> Config:
    """``config`` with ``train.epochs`` as the time budget's plan ended (unchanged without a budget)."""
    saved = run_dir / BUDGET_FILE
    if config.train.time_budget_minutes is None or not saved.is_file():
        return config
    epochs = int(json.loads(saved.read_text())["epochs"])
    return dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=epochs))
