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

from centernet_tf.data.sources import DatasetIndex
from centernet_tf.decode import CenterNetDecoder
from centernet_tf.evaluation import evaluate_model

logger = logging.getLogger(__name__)


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
    ) -> None:
        super().__init__()
        self.index = index
        self.decoder = decoder
        self.every_n_epochs = int(every_n_epochs)
        self.best_model_path = Path(best_model_path)
        self.best_record = self.best_model_path.with_suffix(".json")
        self.monitor = monitor
        self.batch_size = batch_size
        self.best = -math.inf
        #: Metrics of the latest evaluation (after the last epoch once ``fit`` returns) and time spent evaluating.
        self.latest: dict[str, Any] = {}
        self.seconds = 0.0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.best_record.exists():
            self.best = float(json.loads(self.best_record.read_text())[self.monitor])

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        last = epoch + 1 == self.params.get("epochs")
        if not (last or (self.every_n_epochs > 0 and (epoch + 1) % self.every_n_epochs == 0)):
            return
        started = time.perf_counter()
        metrics = evaluate_model(self.model, self.index, self.decoder, self.batch_size)
        self.seconds += time.perf_counter() - started
        self.latest = metrics
        if logs is not None:
            logs.update({f"val_{k}": metrics[k] for k in ("mAP", "mAP50", "mAP75")})
        value = metrics[self.monitor]
        logger.info("epoch %d: val mAP %.4f, mAP@0.5 %.4f", epoch + 1, metrics["mAP"], metrics["mAP50"])
        if value > self.best:
            self.best = value
            self.model.save(self.best_model_path)
            self.best_record.write_text(json.dumps({"epoch": epoch + 1, self.monitor: value}))
            logger.info("new best %s %.4f: saved %s", self.monitor, value, self.best_model_path)
