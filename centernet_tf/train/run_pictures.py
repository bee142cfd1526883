"""Pictures in the run folder and TensorBoard: the data before training, the evaluation after it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tensorflow as tf
from PIL import Image

from centernet_tf.data.index import DatasetIndex
from centernet_tf.evaluation.plots import (
    confusion_matrix,
    draw_confusion_matrix,
    draw_label_statistics,
    draw_precision_recall,
    draw_training_samples,
)


def write_data_pictures(run_dir: Path, index: DatasetIndex, train_ds: Any, stride: int) -> None:
    """``label_statistics.png`` and ``training_samples.png`` (one augmented batch with the boxes its targets
    encode) in the run folder and TensorBoard (``logs/images``, step 0), before training starts."""
    images, targets = next(iter(train_ds))
    pictures = {
        "label_statistics": draw_label_statistics(index),
        "training_samples": draw_training_samples(
            images.numpy()[:8], {k: v.numpy()[:8] for k, v in targets.items()}, stride, index.class_names
        ),
    }
    _write_pictures(run_dir, pictures, step=0)


def _write_pictures(run_dir: Path, pictures: dict[str, Any], step: int) -> None:
    writer = tf.summary.create_file_writer(str(run_dir / "logs" / "images"))
    with writer.as_default():
        for name, picture in pictures.items():
            Image.fromarray(picture).save(run_dir / f"{name}.png")
            tf.summary.image(name, picture[None], step=step)
    writer.flush()


def write_evaluation_plots(run_dir: Path, metrics: dict[str, Any], results: list[dict[str, Any]],
                           index: DatasetIndex, step: int) -> None:
    """``precision_recall.png`` and ``confusion_matrix.png`` in the run folder, and the same pictures in
    TensorBoard (``logs/images``), for the validation split's final evaluation."""
    pictures = {
        "precision_recall": draw_precision_recall(metrics.get("precision_recall50", {})),
        "confusion_matrix": draw_confusion_matrix(confusion_matrix(results, index), index.class_names),
    }
    _write_pictures(run_dir, pictures, step)
