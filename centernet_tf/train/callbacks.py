"""Training callbacks: COCO mAP on the validation split during training, and the best model by that mAP.

CenterNet's validation loss can rise while its detections improve, so model selection uses pycocotools mAP.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from centernet_tf.data.index import DatasetIndex
from centernet_tf.data.letterbox import letterbox_boxes
from centernet_tf.data.pipeline import build_eval_dataset
from centernet_tf.deploy.visualize import ground_truth_vs_prediction, heatmap_overlay
from centernet_tf.evaluation.metrics import coco_ground_truth, coco_metrics, predict_detections
from centernet_tf.files import atomic_write, save_keras
from centernet_tf.model.decode import CenterNetDecoder

logger = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss or weights; nothing was saved from them."""


def finite_weights(model: keras.Model) -> bool:
    """Whether every weight of ``model`` is finite (a model that is not must never be saved as a result)."""
    return all(bool(tf.reduce_all(tf.math.is_finite(w))) for w in model.weights if "float" in str(w.dtype))


class DivergenceGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss, by raising :class:`TrainingDiverged` from the batch, so no
    later callback (the epoch's backup, the best model) ever writes the diverged weights; warns once when the
    loss explodes without becoming NaN (learning rate 1e3 took it to 1.4e7 and the weights to 1e20) or the
    weights grow past ``weight_limit``. Keras' ``TerminateOnNaN`` only sets ``stop_training``, after which the
    epoch's callbacks still run and back up the NaN weights.
    """

    def __init__(self, explosion_factor: float = 100.0, weight_limit: float = 1e6) -> None:
        super().__init__()
        self.explosion_factor = float(explosion_factor)
        self.weight_limit = float(weight_limit)
        self.epoch = 0
        self.reference: float | None = None
        self.warned = False

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if not logs or "loss" not in logs:
            return
        loss = float(logs["loss"])
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"the training loss became {loss} at epoch {self.epoch + 1}, step {batch + 1}: training stopped and "
                "no model was saved from these weights. Lower train.learning_rate (or check the data)."
            )
        if self.reference is None and loss > 0:
            self.reference = loss
        elif not self.warned and self.reference and loss > self.explosion_factor * self.reference:
            self.warned = True
            logger.warning(
                "The training loss rose from %.4g to %.4g (epoch %d, step %d): training is diverging; lower "
                "train.learning_rate.", self.reference, loss, self.epoch + 1, batch + 1,
            )

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        largest = max((float(tf.reduce_max(tf.abs(w))) for w in self.model.trainable_weights), default=0.0)
        if not math.isfinite(largest):
            raise TrainingDiverged(f"non-finite weights after epoch {epoch + 1}: training stopped, nothing saved.")
        if largest > self.weight_limit and not self.warned:
            self.warned = True
            logger.warning("A weight reached %.3g after epoch %d: training is diverging; lower train.learning_rate.",
                           largest, epoch + 1)


class ResultsCSV(keras.callbacks.CSVLogger):
    """``results.csv``: one row per epoch with the losses, the learning rate and the validation mAP.

    Keras' ``CSVLogger`` fixes its columns at the first epoch, which drops the mAP columns when the first epoch
    is not an evaluation epoch; here they are always columns (``NA`` between evaluations). Appends, so a
    resumed run or the next training phase continues the same file.
    """

    COCO_COLUMNS = ("val_mAP", "val_mAP50", "val_mAP75")

    def __init__(self, filename: str | Path) -> None:
        super().__init__(str(filename), append=True)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = dict(logs or {})
        if self.keys is None:
            self.keys = sorted(set(logs) | set(self.COCO_COLUMNS))
            self._drop_rows_from(epoch)
        super().on_epoch_end(epoch, logs)

    def _drop_rows_from(self, epoch: int) -> None:
        """Remove rows of ``epoch`` and later: a run killed after writing a row but before its backup repeats
        those epochs, and a run started afresh in an old folder repeats them all."""
        path = Path(self.filename)
        if not path.is_file():
            return
        lines = path.read_text().splitlines(keepends=True)
        kept = lines[:1] + [line for line in lines[1:] if line.split(self.sep, 1)[0].isdigit()
                            and int(line.split(self.sep, 1)[0]) < epoch]
        if len(kept) == len(lines):
            return
        self.csv_file.close()
        atomic_write(path, "".join(kept) if len(kept) > 1 else "")
        self.csv_file = open(path, "a")  # noqa: SIM115 - CSVLogger keeps the file open between epochs
        if len(kept) <= 1:
            self.append_header = True


def evaluates_after(epoch: int, epochs: int | None, every_n_epochs: int) -> bool:
    """Whether :class:`CocoEvaluation` evaluates after the 0-based ``epoch`` of a ``fit`` of ``epochs``:
    every ``every_n_epochs``-th (0: never) and the last."""
    return epoch + 1 == epochs or (every_n_epochs > 0 and (epoch + 1) % every_n_epochs == 0)


class CocoEvaluation(keras.callbacks.Callback):
    """Every ``every_n_epochs`` epochs (and after the last), evaluate with pycocotools and keep the best model.

    Adds ``val_mAP``, ``val_mAP50`` and ``val_mAP75`` to the epoch logs, so the progress bar prints them and
    Keras' TensorBoard callback (placed after this one) writes ``epoch_mAP``... under ``validation``.
    The best value survives a resume: it is stored next to the best model.
    """

    def __init__(
        self,
        index: DatasetIndex,
        decoder: CenterNetDecoder,
        every_n_epochs: int,
        best_model_path: str | Path,
        monitor: str = "mAP",
        batch_size: int = 8,
        image_log_dir: str | Path | None = None,
        num_images: int = 4,
        image_score_threshold: float = 0.3,
        save_model: Any = None,
    ) -> None:
        super().__init__()
        #: How the best model is written (default ``model.save``; training passes a float32 copy's save).
        self.save_model = save_model
        self.index = index
        self.decoder = decoder
        self.every_n_epochs = int(every_n_epochs)
        self.best_model_path = Path(best_model_path)
        self.best_record = self.best_model_path.with_suffix(".json")
        self.monitor = monitor
        self.batch_size = batch_size
        self.best = -math.inf
        self.image_writer = tf.summary.create_file_writer(str(image_log_dir)) if image_log_dir else None
        self.num_images = num_images
        self.image_score_threshold = image_score_threshold
        self._images: tuple[tf.Tensor, tf.Tensor] | None = None
        #: Metrics of the latest evaluation (after the last epoch once ``fit`` returns) and time spent evaluating.
        self.latest: dict[str, Any] = {}
        #: The COCO result dicts (detections) of the latest evaluation, for the confusion matrix.
        self.latest_results: list[dict[str, Any]] = []
        self.seconds = 0.0
        #: One ``{"epoch", "mAP", "mAP50", "mAP75"}`` per evaluation: the learning curve. Kept in a file beside
        #: the best model, so a resumed run still reports the evaluations made before the crash.
        self.curve_path = self.best_model_path.parent / "eval_curve.json"
        self.curve: list[dict[str, float]] = []

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.best_record.exists():  # a resumed run: the value to beat (unless it was kept for another metric)
            self.best = float(json.loads(self.best_record.read_text()).get(self.monitor, -math.inf))
        if self.curve_path.exists():
            self.curve = json.loads(self.curve_path.read_text())

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not evaluates_after(epoch, self.params.get("epochs"), self.every_n_epochs):
            return
        started = time.perf_counter()
        self.latest_results = predict_detections(self.model, self.index, self.decoder, self.batch_size)
        metrics = coco_metrics(coco_ground_truth(self.index), self.latest_results, list(self.index.class_names))
        self.seconds += time.perf_counter() - started
        self.latest = metrics
        self.curve = [c for c in self.curve if c["epoch"] < epoch + 1]
        self.curve.append({"epoch": epoch + 1, **{k: round(float(metrics[k]), 4) for k in ("mAP", "mAP50", "mAP75")}})
        atomic_write(self.curve_path, json.dumps(self.curve))
        if logs is not None:
            logs.update({f"val_{k}": metrics[k] for k in ("mAP", "mAP50", "mAP75")})
        if self.image_writer is not None:
            self._log_images(epoch)
        value = metrics[self.monitor]
        logger.info("epoch %d: val mAP %.4f, mAP@0.5 %.4f", epoch + 1, metrics["mAP"], metrics["mAP50"])
        if value > self.best and not finite_weights(self.model):
            logger.warning("epoch %d: the weights are not finite; not saved as %s", epoch + 1, self.best_model_path)
        elif value > self.best:
            self.best = value
            (self.save_model or (lambda path: save_keras(self.model, path)))(self.best_model_path)
            atomic_write(self.best_record, json.dumps({"epoch": epoch + 1, self.monitor: value}))
            logger.info("new best %s %.4f: saved %s", self.monitor, value, self.best_model_path)

    def _image_batch(self) -> tuple[tf.Tensor, list[tuple[np.ndarray, np.ndarray]]]:
        """The first validation images, letterboxed, with their ground truth (boxes in input pixels, class
        ids), read once."""
        if self._images is None:
            input_size = tuple(int(v) for v in self.model.input_shape[1:3])
            subset = DatasetIndex(self.index.examples[: self.num_images], self.index.class_names, self.index.report)
            batch = next(iter(build_eval_dataset(subset, input_size, self.num_images)))
            truths = [(letterbox_boxes(e.boxes.reshape(-1, 4), lb).numpy(), np.asarray(e.class_ids))
                      for e, lb in zip(subset.examples, batch["letterbox"])]
            self._images = (batch["image"], truths)
        return self._images

    def _log_images(self, epoch: int) -> None:
        """The same first validation images each time: ground truth | prediction with class names, and the
        heatmap overlay."""
        from centernet_tf.deploy.inference import Detections

        images, truths = self._image_batch()
        outputs = self.model(images, training=False)
        detections = {k: v.numpy() for k, v in self.decoder(outputs).items()}  # input pixels: no letterbox
        found = []
        for row in range(len(truths)):
            keep = (detections["scores"][row] >= self.image_score_threshold) & (detections["classes"][row] >= 0)
            found.append(Detections(detections["boxes"][row][keep], detections["scores"][row][keep],
                                    detections["classes"][row][keep]))
        pictures = ground_truth_vs_prediction(images.numpy(), truths, found, list(self.index.class_names))
        with self.image_writer.as_default():
            tf.summary.image("detections", pictures, step=epoch, max_outputs=self.num_images)
            tf.summary.image("heatmap", heatmap_overlay(images, outputs["heatmap"]), step=epoch,
                             max_outputs=self.num_images)
        self.image_writer.flush()
