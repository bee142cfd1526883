"""Train, save and evaluate a CenterNet from a :class:`~centernet_tf.config.Config` (what ``train.py`` runs)."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import keras
import yaml

from centernet_tf.callbacks import CocoEvaluation
from centernet_tf.config import Config, LossConfig
from centernet_tf.data.augment import Augmentation
from centernet_tf.data.loaders import load_split
from centernet_tf.data.pipeline import build_train_dataset
from centernet_tf.data.sources import DatasetIndex
from centernet_tf.decode import CenterNetDecoder
from centernet_tf.evaluation import evaluate_model
from centernet_tf.losses import centernet_losses
from centernet_tf.model import build_centernet
from centernet_tf.schedules import learning_rate_schedule

logger = logging.getLogger(__name__)


def loss_weights(loss: LossConfig) -> dict[str, float]:
    """Weights of the three terms, keyed like the model outputs (paper: 1, 0.1, 1)."""
    return {"heatmap": loss.heatmap_weight, "wh": loss.wh_weight, "offset": loss.offset_weight}


def compile_centernet(model: keras.Model, config: Config, steps_per_epoch: int) -> keras.Model:
    """Adam + the three CenterNet losses; Keras logs ``loss`` and ``heatmap_loss``/``wh_loss``/``offset_loss``."""
    model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate_schedule(config.train, steps_per_epoch), global_clipnorm=config.train.gradient_clip_norm
        ),
        loss=centernet_losses(),
        loss_weights=loss_weights(config.loss),
        jit_compile=config.train.jit_compile,
    )
    return model


def decoder_from_config(config: Config) -> CenterNetDecoder:
    e = config.eval
    return CenterNetDecoder(e.max_detections, e.score_threshold, e.nms, e.nms_iou_threshold)


def training_callbacks(config: Config, run_dir: Path, val_index: DatasetIndex) -> list[keras.callbacks.Callback]:
    """COCO mAP + best model, TensorBoard (losses, learning rate, mAP) and, unless disabled, crash-safe resume.

    The first callback is always the :class:`CocoEvaluation`; its ``latest`` metrics are those after the last epoch.
    """
    evaluation = CocoEvaluation(
        val_index,
        decoder_from_config(config),
        config.eval.every_n_epochs,
        run_dir / "best_model.keras",
        monitor=config.eval.best_metric,
        batch_size=config.eval.batch_size,
        image_log_dir=run_dir / "logs" / "images",
    )
    # The evaluation runs before TensorBoard, so the mAP it adds to the epoch logs is written too.
    callbacks: list[keras.callbacks.Callback] = [
        evaluation,
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "logs")),
    ]
    if config.train.resume:
        backup = run_dir / "backup"
        if (backup / "training_metadata.json").exists():
            logger.info("Resuming from the backup in %s", backup)
        # double_checkpoint keeps the previous backup, so a kill during a save still leaves one to load.
        callbacks.append(keras.callbacks.BackupAndRestore(str(backup), double_checkpoint=True))
    return callbacks


def run_training(config: Config, run_dir: str | Path | None = None, verbose: int | str = "auto") -> dict[str, Any]:
    """Train on the config's train split, save ``model.keras``, evaluate on the val split, write ``metrics.json``.

    Returns the metrics dict (COCO metrics from pycocotools plus wall times).
    """
    started = time.perf_counter()
    keras.utils.set_random_seed(config.train.seed)
    run_dir = Path(run_dir) if run_dir else Path(config.output_dir) / config.name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))

    train_index = load_split(config.data, "train")
    val_index = load_split(config.data, "val", class_names=list(train_index.class_names))
    class_names = list(train_index.class_names)
    (run_dir / "labels.txt").write_text("\n".join(class_names) + "\n")

    input_size = tuple(config.model.input_size)
    train_ds = build_train_dataset(
        train_index,
        input_size,
        config.train.batch_size,
        max_objects=config.data.max_objects,
        flip=config.data.flip,
        seed=config.train.seed,
        augmentation=Augmentation(
            random_crop=config.data.random_crop,
            scale_range=(config.data.scale_range[0], config.data.scale_range[1]),
            crop_border=config.data.crop_border,
            colour_jitter=config.data.colour_jitter,
            lighting_std=config.data.lighting_std,
        ),
    )
    # Repeating with an explicit step count keeps epochs the same length even if a file fails to decode.
    steps_per_epoch = config.train.steps_per_epoch or max(len(train_index.examples) // config.train.batch_size, 1)
    train_ds = train_ds.repeat()

    model = build_centernet(
        len(class_names),
        backbone=config.model.backbone,
        input_shape=(*input_size, 3),
        backbone_weights=config.model.backbone_weights,
        head_conv=config.model.head_conv,
    )
    compile_centernet(model, config, steps_per_epoch)
    logger.info(
        "Training %s: %d train / %d val images, %d classes, %d epochs x %d steps",
        config.name, len(train_index.examples), len(val_index.examples), len(class_names),
        config.train.epochs, steps_per_epoch,
    )
    callbacks = training_callbacks(config, run_dir, val_index)
    history = model.fit(
        train_ds,
        epochs=config.train.epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the tf.data pipeline shuffles
    )
    evaluation = callbacks[0]
    model_path = run_dir / "model.keras"
    model.save(model_path)

    # The callback evaluated the final weights after the last epoch; no need to run the network again.
    # (A run resumed after its last epoch trains nothing, so evaluate here in that case.)
    metrics = dict(evaluation.latest) or evaluate_model(model, val_index, evaluation.decoder, config.eval.batch_size)
    summary = metrics.pop("summary", "")
    metrics.update(
        train_seconds=round(time.perf_counter() - started - evaluation.seconds, 1),
        eval_seconds=round(evaluation.seconds, 1),
        total_seconds=round(time.perf_counter() - started, 1),
        final_losses={k: float(v[-1]) for k, v in history.history.items() if not math.isnan(float(v[-1]))},
        model_path=str(model_path),
        class_names=class_names,
    )
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (run_dir / "coco_eval.txt").write_text(summary)
    return metrics
