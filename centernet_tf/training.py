"""Train, save and evaluate a CenterNet from a :class:`~centernet_tf.config.Config` (what ``train.py`` runs)."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf
import yaml

from centernet_tf.callbacks import CocoEvaluation, DivergenceGuard, ResultsCSV, TrainingDiverged, finite_weights
from centernet_tf.distribute import fit_on_strategy, is_chief, is_multi_worker, strategy_for
from centernet_tf.config import Config, LossConfig, TrainConfig
from centernet_tf.data.loaders import load_split
from centernet_tf.data.index import DatasetIndex
from centernet_tf.data.pipeline import DecodeWatch, report_undecoded_training
from centernet_tf.decode import decoder_settings
from centernet_tf.ema import WeightAverage
from centernet_tf.files import atomic_path, atomic_write, save_keras
from centernet_tf.evaluation import coco_ground_truth, coco_metrics, predict_detections, voc_metrics
from centernet_tf.init_from import image_normalization, load_init_source, transfer_weights
from centernet_tf.losses import CenterNetLoss
from centernet_tf.model import CenterNet, build_centernet, decoder_for
from centernet_tf.time_budget import apply_time_budget, budget_planner, planned_epochs
from centernet_tf.precision import DTYPE_POLICIES, dtype_policy, resolve_mixed_precision
from centernet_tf.run_folder import (
    RunFolderLock, check_resume_config, check_run_folder, forget_finished_run, remove_backups, remove_partials,
)
from centernet_tf.run_pictures import write_data_pictures, write_evaluation_plots
from centernet_tf.schedules import fine_tune_learning_rate, learning_rate_schedule, peak_learning_rate
from centernet_tf.train_data import require_a_batch, train_dataset_from_config
from centernet_tf.transfer import set_backbone_trainable

logger = logging.getLogger(__name__)


def loss_from_config(loss: LossConfig) -> CenterNetLoss:
    """The CenterNet loss with the config's term weights (paper: 1, 0.1, 1) and box loss."""
    return CenterNetLoss(loss.heatmap_weight, loss.wh_weight, loss.offset_weight, box=loss.box)


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
) -> list[keras.callbacks.Callback]:
    """COCO mAP + best model, TensorBoard (losses, learning rate, mAP) and, unless disabled, crash-safe resume.

    ``budget``: the time budget's planner and progress bar (:func:`~centernet_tf.time_budget.budget_planner`).
    """
    # The evaluation runs before TensorBoard, so the mAP it adds to the epoch logs is written too.
    callbacks: list[keras.callbacks.Callback] = [
        DivergenceGuard(),  # first: a NaN epoch raises before any callback below can save it
        *budget[:1],  # before the evaluation, which must know whether this epoch is the last
        # The averaged weights in the model at each epoch's end, so evaluation, best model and backup see them
        # (swapped back before the next epoch trains; after the last one they stay).
        *([WeightAverage(config.train.ema_momentum)] if config.train.ema_momentum is not None else []),
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
    :func:`~centernet_tf.distribute.fit_on_strategy`.
    """
    strategy = strategy or tf.distribute.get_strategy()
    phases = training_phases(config.train)
    evaluation = coco_evaluation(config, run_dir, val_index, model)
    history = None
    for number, phase in enumerate(phases, start=1):
        last = number == len(phases)
        done = run_dir / f"{phase.name}.weights.h5"
        if done.exists():
            model.load_weights(done)
            logger.info("Phase %s already finished: loaded %s", phase.name, done)
            continue
        if len(phases) > 1:
            changed = set_backbone_trainable(
                model, not phase.frozen_backbone, train_batch_norm=config.train.fine_tune_batch_norm
            )
            logger.info(
                "Phase %d/%d %s: epochs %d-%d, backbone %s (%d layers), peak learning rate %.3g",
                number, len(phases), phase.name, phase.first_epoch + 1, phase.last_epoch,
                "frozen" if phase.frozen_backbone else "trainable", changed, phase.peak_learning_rate,
            )
        schedule = phase_schedule(config, steps_per_epoch, phase)
        compile_centernet(model, config, steps_per_epoch, schedule=schedule)
        budget, fit_epochs = budget_planner(run_dir, phase.first_epoch, phase.last_epoch, last, schedule)
        backup = run_dir / ("backup" if last else f"backup_{phase.name}")
        # The last backup stays until model.keras and metrics.json are written (run_folder.remove_backups).
        callbacks = training_callbacks(
            config, run_dir, val_index, evaluation, backup, delete_backup=False, budget=tuple(budget)
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


def float32_model(config: Config, model: CenterNet) -> CenterNet:
    """``model`` itself when it computes in float32, else a float32 twin with its weights: what is saved, so the
    ``.keras`` file, its exports and TFLite run in float32 whatever precision trained it."""
    if model.dtype_policy.name == "float32":
        return model
    plain = dataclasses.replace(config, model=dataclasses.replace(config.model, init_from=None))  # weights follow
    with dtype_policy("float32"):
        twin = model_from_config(plain, list(model.class_names or []), normalization=image_normalization(model))
    twin.set_weights(model.get_weights())
    return twin


def model_from_config(
    config: Config, class_names: list[str], synchronized_batch_norm: bool = False,
    normalization: dict[str, Any] | None = None,
) -> CenterNet:
    """The config's CenterNet; class names, decoder settings and loss weights are saved with it.
    ``normalization`` replaces the input normalisation (default: the backbone's, or ``model.init_from``'s)."""
    m = config.model
    source = load_init_source(m.init_from, m.init_arch, m.init_dataset) if m.init_from else None
    if normalization is None and source is not None:
        normalization = image_normalization(source)
    model = build_centernet(
        len(class_names),
        backbone=m.backbone,
        input_shape=(m.input_size[0], m.input_size[1], 3),
        backbone_weights=m.backbone_weights,
        head_conv=m.head_conv,
        neck=m.neck,
        head_batch_norm=m.head_batch_norm,
        class_names=class_names,
        decoder=decoder_settings(config.eval),
        loss=loss_from_config(config.loss),
        normalization=normalization,
        synchronized_batch_norm=synchronized_batch_norm,
    )
    if source is not None:
        transfer_weights(source, model)
    return model


def run_training(config: Config, run_dir: str | Path | None = None, verbose: int | str = "auto") -> dict[str, Any]:
    """Train on the config's train split, save ``model.keras``, evaluate on the val split, write ``metrics.json``.

    Returns the metrics dict (COCO metrics from pycocotools plus wall times).

    In a multi-worker run (``train.distribute=multi_worker``) every worker runs this with the same config and
    ``run_dir``, which must be a folder all of them see (a shared file system or bucket, as for
    ``BackupAndRestore``). Every worker makes the same calls - saving and evaluating read BatchNorm statistics
    with collective operations, so no worker may skip one - but only the chief writes to ``run_dir``: the
    others work in a scratch copy of it (its backups, so they resume where the chief does) that is deleted at
    the end, TensorFlow's rule for multi-worker checkpoints. Their metrics carry ``"worker": <task index>``.
    """
    # First: a multi-worker strategy must exist before TensorFlow runs any operation in this process.
    strategy = strategy_for(config.train.distribute)
    run_dir = Path(run_dir) if run_dir else Path(config.output_dir) / config.name
    if is_chief(strategy):
        return _run_training(config, run_dir, strategy, verbose)
    scratch = Path(tempfile.mkdtemp(prefix=f"{run_dir.name}_worker{strategy.cluster_resolver.task_id}_"))
    try:
        if run_dir.is_dir():
            shutil.copytree(run_dir, scratch, dirs_exist_ok=True, ignore=shutil.ignore_patterns("logs", "*.keras", "*.png", ".lock", ".*.partial-*"))
        metrics = _run_training(config, scratch, strategy, verbose=0)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {**metrics, "worker": strategy.cluster_resolver.task_id}


def _run_training(config: Config, run_dir: Path, strategy: tf.distribute.Strategy, verbose: int | str) -> dict[str, Any]:
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"run folder {run_dir} is a file: choose another --run-dir (or output_dir)")
    check_run_folder(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with RunFolderLock(run_dir):
        check_resume_config(run_dir, config.to_dict())
        remove_partials(run_dir)
        forget_finished_run(run_dir)
        metrics = _train_in_folder(config, run_dir, strategy, verbose)
        remove_backups(run_dir)  # only now: model.keras and metrics.json are complete
    return metrics


def _train_in_folder(config: Config, run_dir: Path, strategy: tf.distribute.Strategy, verbose: int | str) -> dict[str, Any]:
    started = time.perf_counter()
    keras.utils.set_random_seed(config.train.seed)
    atomic_write(run_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))

    train_index = load_split(config.data, "train")
    val_index = load_split(config.data, "val", class_names=list(train_index.class_names))
    class_names = list(train_index.class_names)
    atomic_write(run_dir / "labels.txt", "\n".join(class_names) + "\n")

    replicas = strategy.num_replicas_in_sync
    if config.train.batch_size % replicas:
        raise ValueError(f"train.batch_size {config.train.batch_size} must be a multiple of the {replicas} replicas")
    precision = resolve_mixed_precision(config.train.mixed_precision)
    if precision != config.train.mixed_precision:
        logger.info("train.mixed_precision auto: %s on this machine", precision)
    with strategy.scope(), dtype_policy(DTYPE_POLICIES[precision]):
        model = model_from_config(config, class_names, synchronized_batch_norm=replicas > 1)
    watch = DecodeWatch(len(train_index.examples))
    train_ds, steps_per_epoch = train_dataset_from_config(config, train_index, model.output_stride, watch=watch)
    require_a_batch(train_ds, train_index)
    config = apply_time_budget(config, model, train_ds, steps_per_epoch, run_dir)
    write_data_pictures(run_dir, train_index, train_ds, model.output_stride)
    if is_multi_worker(strategy):
        train_ds = strategy.distribute_datasets_from_function(
            lambda context: train_dataset_from_config(config, train_index, model.output_stride, context)[0]
        )
    logger.info(
        "Training %s: %d train / %d val images, %d classes, %d epochs x %d steps%s",
        config.name, len(train_index.examples), len(val_index.examples), len(class_names),
        config.train.epochs, steps_per_epoch, f", {replicas} replicas" if replicas > 1 else "",
    )
    try:
        with strategy.scope():
            evaluation, history = fit_phases(
                model, config, train_ds, steps_per_epoch, run_dir, val_index, verbose, strategy
            )
        if not finite_weights(model):
            raise TrainingDiverged("the trained weights are not finite: model.keras was not written")
    except TrainingDiverged as error:
        atomic_write(run_dir / "metrics.json", json.dumps(
            {"diverged": str(error), "total_seconds": round(time.perf_counter() - started, 1)}, indent=2
        ))
        raise
    config = planned_epochs(config, run_dir)  # a time budget re-plans the epochs while it trains
    # A multi-worker run trains on each worker's own pipeline, which the watch does not see: no count there.
    undecoded = None if is_multi_worker(strategy) else report_undecoded_training(watch, train_index)
    model_path = run_dir / "model.keras"
    save_keras(float32_model(config, model), model_path)

    # The callback evaluated the final weights after the last epoch; no need to run the network again.
    # (A run resumed after its last epoch trains nothing, so evaluate here in that case.)
    results = evaluation.latest_results
    if not evaluation.latest:
        results = predict_detections(model, val_index, evaluation.decoder, config.eval.batch_size)
    metrics = dict(evaluation.latest) or coco_metrics(coco_ground_truth(val_index), results, class_names)
    metrics.update(voc_metrics(results, val_index))
    write_evaluation_plots(run_dir, metrics, results, val_index, config.train.epochs)
    summary = metrics.pop("summary", "")
    metrics.update(
        train_seconds=round(time.perf_counter() - started - evaluation.seconds, 1),
        eval_seconds=round(evaluation.seconds, 1),
        total_seconds=round(time.perf_counter() - started, 1),
        epochs=config.train.epochs,
        final_losses=_final_losses(history),
        train_images_undecoded=undecoded,
        model_path=str(model_path),
        class_names=class_names,
        eval_curve=evaluation.curve,
    )
    atomic_write(run_dir / "coco_eval.txt", summary)
    atomic_write(run_dir / "metrics.json", json.dumps(metrics, indent=2))  # last: the run's "done" mark
    return metrics


def _final_losses(history: keras.callbacks.History | None) -> dict[str, float | str]:
    """The last epoch's losses (none when a resumed run had nothing left to train); a non-finite value is
    written as the string ``"nan"`` / ``"inf"`` (JSON has no such numbers), never left out."""
    if history is None:
        return {}
    return {k: float(v[-1]) if math.isfinite(float(v[-1])) else str(float(v[-1]))
            for k, v in history.history.items() if v}
