"""The training phases of a run: a frozen-backbone phase and fine-tuning (or one phase), each one ``fit`` with its
own optimizer and learning-rate schedule, its callbacks (evaluation, weight average, time budget, backup) and
its own resume point."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from centernet_tf.config import Config, TrainConfig
from centernet_tf.data.index import DatasetIndex
from centernet_tf.files import atomic_path, save_keras
from centernet_tf.model.centernet import decoder_for
from centernet_tf.model.decode import decoder_settings
from centernet_tf.train.build import float32_model
from centernet_tf.train.callbacks import CocoEvaluation, DivergenceGuard, ResultsCSV
from centernet_tf.train.distribute import fit_on_strategy, is_multi_worker
from centernet_tf.train.ema import WeightAverage
from centernet_tf.train.schedules import fine_tune_learning_rate, learning_rate_schedule, peak_learning_rate
from centernet_tf.train.time_budget import budget_planner
from centernet_tf.train.transfer import layers_up_to_stride, set_backbone_trainable, unfreeze_for_fine_tuning

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingPhase:
    """Epochs ``[first_epoch, last_epoch)`` trained with one optimizer and one learning-rate schedule."""

    name: str
    first_epoch: int
    last_epoch: int
    peak_learning_rate: float
    #: Backbone frozen (weights and BatchNorm statistics) during this phase.
    frozen_backbone: bool


def training_phases(train: TrainConfig) -> list[TrainingPhase]:
    """One phase, or with ``freeze_backbone_epochs`` a frozen-backbone phase followed by fine-tuning."""
    frozen = train.freeze_backbone_epochs
    if frozen == 0:
        return [TrainingPhase("train", 0, train.epochs, peak_learning_rate(train), False)]
    return [
        TrainingPhase("frozen_backbone", 0, frozen, peak_learning_rate(train), True),
        TrainingPhase("fine_tune", frozen, train.epochs, fine_tune_learning_rate(train), False),
    ]


def phase_schedule(config: Config, steps_per_epoch: int, phase: TrainingPhase | None = None) -> Any:
    """The learning-rate schedule of ``phase`` (default: all epochs at the configured rate): its span and peak."""
    phase = phase or training_phases(config.train)[0]
    return learning_rate_schedule(
        config.train, steps_per_epoch, phase.first_epoch, phase.last_epoch, phase.peak_learning_rate
    )


def compile_centernet(
    model: keras.Model, config: Config, steps_per_epoch: int, phase: TrainingPhase | None = None,
    schedule: Any = None,
) -> keras.Model:
    """Adam with ``schedule`` (default: :func:`phase_schedule` of ``phase``); the loss is the model's own
    (:meth:`CenterNet.compute_loss`), and Keras logs ``loss`` and ``heatmap_loss``/``wh_loss``/``offset_loss``."""
    schedule = schedule or phase_schedule(config, steps_per_epoch, phase)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule, global_clipnorm=config.train.gradient_clip_norm),
        jit_compile=config.train.jit_compile,
    )
    return model


def coco_evaluation(config: Config, run_dir: Path, val_index: DatasetIndex, model: keras.Model) -> CocoEvaluation:
    return CocoEvaluation(
        val_index,
        decoder_for(model, decoder_settings(config.eval)),
        config.eval.every_n_epochs,
        run_dir / "best_model.keras",
        save_model=lambda path: save_keras(float32_model(config, model), path),
        monitor=config.eval.best_metric,
        batch_size=config.eval.batch_size,
        image_log_dir=run_dir / "logs" / "images",
    )


def training_callbacks(
    config: Config,
    run_dir: Path,
    val_index: DatasetIndex,
    evaluation: CocoEvaluation,
    backup_dir: Path | None = None,
    delete_backup: bool = True,
    budget: tuple[keras.callbacks.Callback, ...] = (),
    train_ds: Any = None,
) -> list[keras.callbacks.Callback]:
    """COCO mAP + best model, TensorBoard (losses, learning rate, mAP) and, unless disabled, crash-safe resume.

    ``budget``: the time budget's planner and progress bar (:func:`~centernet_tf.train.time_budget.budget_planner`).
    ``train_ds``: the training batches on which the weight average's BatchNorm statistics are re-estimated
    (None: they are not).
    """
    average = [] if config.train.ema_momentum is None else [WeightAverage(
        config.train.ema_momentum, training_data=train_ds, batch_norm_batches=config.train.ema_batch_norm_batches,
        every_n_epochs=config.eval.every_n_epochs,
    )]
    # The evaluation runs before TensorBoard, so the mAP it adds to the epoch logs is written too.
    callbacks: list[keras.callbacks.Callback] = [
        DivergenceGuard(),  # first: a NaN epoch raises before any callback below can save it
        *budget[:1],  # before the evaluation, which must know whether this epoch is the last
        # The averaged weights in the model at each epoch's end, so evaluation, best model and backup see them
        # (swapped back before the next epoch trains; after the last one they stay).
        *average,
        evaluation,
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "logs")),
        ResultsCSV(run_dir / "results.csv"),
        *budget[1:],  # the progress bar last, so its epoch line has the mAP
    ]
    if config.train.resume:
        backup = backup_dir or run_dir / "backup"
        if (backup / "training_metadata.json").exists():
            logger.info("Resuming from the backup in %s", backup)
        # double_checkpoint keeps the previous backup, so a kill during a save still leaves one to load.
        callbacks.append(
            keras.callbacks.BackupAndRestore(str(backup), double_checkpoint=True, delete_checkpoint=delete_backup)
        )
    return callbacks


def fit_phases(
    model: keras.Model,
    config: Config,
    train_ds: Any,
    steps_per_epoch: int,
    run_dir: Path,
    val_index: DatasetIndex,
    verbose: int | str = "auto",
    strategy: tf.distribute.Strategy | None = None,
) -> tuple[CocoEvaluation, keras.callbacks.History]:
    """Run each :func:`training_phases` phase as one ``fit`` with its own optimizer, resumable after a kill.

    A finished phase leaves ``<run_dir>/<phase>.weights.h5`` behind, so a run killed later skips it and loads
    its weights; the phase in progress resumes from its own backup directory (the last one from ``backup``).
    With a multi-worker ``strategy`` (``train_ds`` then its ``DistributedDataset``) each phase runs
    :func:`~centernet_tf.train.distribute.fit_on_strategy`.
    """
    strategy = strategy or tf.distribute.get_strategy()
    phases = training_phases(config.train)
    evaluation = coco_evaluation(config, run_dir, val_index, model)
    if config.train.fine_tune_frozen_stride:  # a stride the backbone lacks fails now, not after the first phase
        layers_up_to_stride(model, config.train.fine_tune_frozen_stride)
    history = None
    for number, phase in enumerate(phases, start=1):
        last = number == len(phases)
        done = run_dir / f"{phase.name}.weights.h5"
        if done.exists():
            model.load_weights(done)
            logger.info("Phase %s already finished: loaded %s", phase.name, done)
            continue
        if len(phases) > 1:
            if phase.frozen_backbone:
                changed, kept = set_backbone_trainable(model, False), 0
            else:
                changed, kept = unfreeze_for_fine_tuning(model, config.train)
            stride = config.train.fine_tune_frozen_stride
            logger.info(
                "Phase %d/%d %s: epochs %d-%d, backbone %s (%d layers%s), peak learning rate %.3g",
                number, len(phases), phase.name, phase.first_epoch + 1, phase.last_epoch,
                "frozen" if phase.frozen_backbone else "trainable", changed,
                f", {kept} up to stride {stride} kept frozen" if kept else "", phase.peak_learning_rate,
            )
        schedule = phase_schedule(config, steps_per_epoch, phase)
        compile_centernet(model, config, steps_per_epoch, schedule=schedule)
        budget, fit_epochs = budget_planner(run_dir, phase.first_epoch, phase.last_epoch, last, schedule)
        backup = run_dir / ("backup" if last else f"backup_{phase.name}")
        # The last backup stays until model.keras and metrics.json are written (run_folder.remove_backups).
        callbacks = training_callbacks(
            config, run_dir, val_index, evaluation, backup, delete_backup=False, budget=tuple(budget),
            # A multi-worker pipeline is a distributed dataset: its batches are per replica.
            train_ds=None if is_multi_worker(strategy) else train_ds,
        )
        if is_multi_worker(strategy):
            history = fit_on_strategy(
                model, strategy, train_ds, epochs=fit_epochs, steps_per_epoch=steps_per_epoch,
                callbacks=callbacks, initial_epoch=phase.first_epoch, verbose=verbose,
            )
        else:
            history = model.fit(
                train_ds,
                initial_epoch=phase.first_epoch,
                epochs=fit_epochs,
                steps_per_epoch=steps_per_epoch,
                callbacks=callbacks,
                verbose=verbose,
                shuffle=False,  # the tf.data pipeline shuffles
            )
        model._initial_epoch = None  # set by BackupAndRestore; the next phase must not inherit it
        if not last:
            # Weights first, then drop the backup: a kill in between still finds one of the two.
            with atomic_path(done) as partial:
                model.save_weights(partial)
            shutil.rmtree(backup, ignore_errors=True)
    return evaluation, history  # the finished phases' weights go with the backups (run_folder.remove_backups)
