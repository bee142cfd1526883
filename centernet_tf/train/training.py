"""Train, save and evaluate a CenterNet from a :class:`~centernet_tf.config.Config` (what ``train.py`` runs): the
run folder, the data, the model, its training phases (:mod:`~centernet_tf.train.phases`), then ``model.keras``,
the evaluation and ``metrics.json``."""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf
import yaml

from centernet_tf.config import Config
from centernet_tf.data.loaders import load_split
from centernet_tf.data.pipeline import DecodeWatch, report_undecoded_training
from centernet_tf.evaluation.metrics import coco_ground_truth, coco_metrics, predict_detections, voc_metrics
from centernet_tf.files import atomic_write, save_keras
from centernet_tf.train.build import float32_model, model_from_config
from centernet_tf.train.callbacks import TrainingDiverged, finite_weights
from centernet_tf.train.distribute import is_chief, is_multi_worker, strategy_for
from centernet_tf.train.phases import fit_phases
from centernet_tf.model.policy import dtype_policy
from centernet_tf.train.precision import DTYPE_POLICIES, resolve_mixed_precision
from centernet_tf.train.run_folder import (
    RunFolderLock, check_resume_config, check_run_folder, forget_finished_run, remove_backups, remove_partials,
)
from centernet_tf.train.run_pictures import write_data_pictures, write_evaluation_plots
from centernet_tf.train.time_budget import apply_time_budget, planned_epochs
from centernet_tf.train.train_data import require_a_batch, train_dataset_from_config

logger = logging.getLogger(__name__)


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
        model = model_from_config(config, class_names, synchronized_batch_norm=replicas > 1, train_index=train_index)
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
