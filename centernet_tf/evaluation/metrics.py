"""COCO-style evaluation with pycocotools, for any dataset the library can load (COCO, VOC, shapes)."""

from __future__ import annotations

import contextlib
import io
import logging
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from centernet_tf.data.index import DatasetIndex
from centernet_tf.data.pipeline import build_eval_dataset
from centernet_tf.deploy.tta import network_outputs
from centernet_tf.model.decode import CenterNetDecoder
from centernet_tf.progress import progress

logger = logging.getLogger(__name__)


def coco_result(image_id: int, class_id: int, box: Any, score: float) -> dict[str, Any]:
    """One detection as a COCO result row: ``box`` ``x1, y1, x2, y2`` pixels, 0-based ``class_id``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return {"image_id": int(image_id), "category_id": int(class_id) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
            "score": float(score)}


def index_metrics(results: list[dict[str, Any]], index: DatasetIndex) -> dict[str, Any]:
    """pycocotools' metrics and the VOC devkit's mAP@0.5 of COCO result rows on ``index``."""
    return {**coco_metrics(coco_ground_truth(index), results, list(index.class_names)), **voc_metrics(results, index)}


def coco_ground_truth(index: DatasetIndex) -> COCO:
    """An in-memory COCO object from the (validated) index; category id = class index + 1."""
    images, annotations = [], []
    for example in index.examples:
        images.append({"id": int(example.image_id), "width": int(example.width), "height": int(example.height)})
        for box, class_id in zip(np.asarray(example.boxes).reshape(-1, 4), example.class_ids):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": int(example.image_id),
                    "category_id": int(class_id) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(index.class_names)]
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations, "categories": categories}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def predict_detections(
    model: keras.Model,
    index: DatasetIndex,
    decoder: CenterNetDecoder | None = None,
    batch_size: int = 8,
    input_size: tuple[int, int] | None = None,
) -> list[dict[str, Any]]:
    """Run ``model`` over the index and return COCO result dicts (boxes in original-image pixels).

    ``input_size`` (height, width) is the letterbox target; it defaults to the model's fixed input size.
    """
    if decoder is None:
        from centernet_tf.model.centernet import decoder_for

        decoder = decoder_for(model)
    input_size = input_size or model.input_shape[1:3]
    if None in input_size:
        raise ValueError("The model has a dynamic input size: pass input_size=(height, width) to evaluate it.")
    input_size = (int(input_size[0]), int(input_size[1]))

    if decoder.test_scales != (1.0,):  # each scale letterboxes the original image anew: one image at a time
        from centernet_tf.deploy.inference import KerasDetector

        if tuple(model.input_shape[1:3]) != input_size:
            raise ValueError("the multi-scale test runs at the model's own input size")
        return detector_results(KerasDetector(model, decoder), index)[0]

    @tf.function(reduce_retracing=True)
    def infer(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        outputs = network_outputs(model, batch["image"], decoder.flip_test)
        return decoder({**outputs, "letterbox": batch["letterbox"], "image_size": batch["image_size"]})

    results: list[dict[str, Any]] = []
    batches = -(-len(index.examples) // batch_size)
    seen: set[int] = set()
    for batch in progress(build_eval_dataset(index, input_size, batch_size), batches, f"evaluating {index.name}"):
        detections = {k: v.numpy() for k, v in infer(batch).items()}
        seen.update(int(i) for i in batch["image_id"].numpy())
        for row, image_id in enumerate(batch["image_id"].numpy()):
            for j in range(int(detections["num_detections"][row])):
                results.append(coco_result(image_id, detections["classes"][row, j], detections["boxes"][row, j],
                                           detections["scores"][row, j]))
    report_undecoded(index, seen)
    return results


def report_undecoded(index: DatasetIndex, seen: set[int]) -> list[str]:
    """Warn, with a count and names, about images that passed the load check but that the pipeline could not
    decode: they have no detections, so their objects count as misses in the mAP (TensorFlow's own note of the
    drop is hidden with its C++ log)."""
    missing = [Path(e.image_path).name for e in index.examples if e.image_id not in seen]
    if missing:
        logger.warning(
            "%s: %d of %d images could not be decoded and have no detections; their %d objects count as misses "
            "(first: %s). Check them, or load with data.image_check: decode to skip them at load.",
            index.name or "dataset", len(missing), len(index.examples),
            sum(e.num_boxes for e in index.examples if e.image_id not in seen), ", ".join(missing[:3]),
        )
    return missing


def coco_metrics(ground_truth: COCO, results: list[dict[str, Any]], class_names: list[str]) -> dict[str, Any]:
    """mAP@[.5:.95], mAP@0.5, mAP@0.75, AR@100 and per-class AP / AP50 from pycocotools' COCOeval."""
    names = ["mAP", "mAP50", "mAP75", "mAP_small", "mAP_medium", "mAP_large"]
    if not results:
        return {**{n: 0.0 for n in names}, "per_class_AP": {c: 0.0 for c in class_names},
                "per_class_AP50": {c: 0.0 for c in class_names}, "num_detections": 0}
    with contextlib.redirect_stdout(io.StringIO()) as log:
        detections = ground_truth.loadRes(results)
        evaluator = COCOeval(ground_truth, detections, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    # precision: [iou thresholds, recall points, classes, area ranges, max dets]; -1 marks "no ground truth".
    precision = evaluator.eval["precision"][:, :, :, 0, -1]

    def mean_valid(values: np.ndarray) -> float:
        valid = values[values > -1]
        return float(valid.mean()) if valid.size else float("nan")

    category_ids = evaluator.params.catIds
    per_class = {}
    per_class50 = {}
    curves50 = {}
    for k, category_id in enumerate(category_ids):
        name = ground_truth.cats[category_id]["name"]
        per_class[name] = mean_valid(precision[:, :, k])
        per_class50[name] = mean_valid(precision[0, :, k])
        curves50[name] = [round(float(p), 4) for p in precision[0, :, k]]
    metrics: dict[str, Any] = {n: float(v) for n, v in zip(names, stats[:6])}
    metrics.update(
        AR100=float(stats[8]),
        per_class_AP=per_class,
        per_class_AP50=per_class50,
        #: precision at COCOeval's 101 recall points (0, 0.01, ... 1), IoU 0.5; -1 for a class without objects
        precision_recall50=curves50,
        num_detections=len(results),
        summary=log.getvalue(),
    )
    return metrics


def evaluate_model(
    model: keras.Model,
    index: DatasetIndex,
    decoder: CenterNetDecoder | None = None,
    batch_size: int = 8,
    input_size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """COCO metrics of ``model`` on ``index`` (pycocotools, all boxes in original-image pixels) and the VOC
    devkit's mAP@0.5 (VOC07 11-point and VOC2010+), difficult objects ignored."""
    results = predict_detections(model, index, decoder, batch_size, input_size)
    return index_metrics(results, index)


def detector_results(detector: Any, index: DatasetIndex) -> tuple[list[dict[str, Any]], list[float]]:
    """COCO result dicts of any :mod:`centernet_tf.deploy.inference` detector, one image at a time, and the seconds
    each ``detect`` call took (image decoding excluded): how exported models are scored and timed."""
    from centernet_tf.data.pipeline import read_image

    results: list[dict[str, Any]] = []
    seconds: list[float] = []
    for example in progress(index.examples, len(index.examples), f"detecting on {index.name}"):
        image = read_image(example.image_path, example.orientation).numpy()
        started = time.perf_counter()
        found = detector.detect(image)
        seconds.append(time.perf_counter() - started)
        for box, score, cls in zip(found.boxes.tolist(), found.scores.tolist(), found.classes.tolist()):
            results.append(coco_result(example.image_id, cls, box, score))
    return results, seconds


def evaluate_detector(detector: Any, index: DatasetIndex) -> dict[str, Any]:
    """COCO metrics of a ``.keras`` / SavedModel / TFLite detector, plus its median seconds per image."""
    results, seconds = detector_results(detector, index)
    metrics = index_metrics(results, index)
    metrics["median_seconds_per_image"] = float(np.median(seconds)) if seconds else float("nan")
    return metrics


def voc_metrics(results: list[dict[str, Any]], index: DatasetIndex, iou_threshold: float = 0.5) -> dict[str, Any]:
    """Pascal VOC mAP@0.5 as the VOC devkit computes it, next to COCO's: ``VOC07_mAP50`` (11-point
    interpolated AP, VOC2007) and ``VOC_mAP50`` (all-point, VOC2010 and later), per class too.

    Objects flagged ``difficult`` (VOC XML) are neither hits nor misses: a detection matching one is ignored.
    A second detection of an object already found is a false positive. Boxes are compared as continuous
    coordinates (the devkit's +1 pixel convention for 1-based integer boxes is not applied).
    """
    per_class07: dict[str, float] = {}
    per_class: dict[str, float] = {}
    by_image = {example.image_id: example for example in index.examples}
    for class_id, name in enumerate(index.class_names):
        truth: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        positives = 0
        for example in index.examples:
            mine = np.asarray(example.class_ids) == class_id
            difficult = (np.asarray(example.difficult) if example.difficult is not None
                         else np.zeros(len(example.class_ids), bool))[mine]
            truth[example.image_id] = (np.asarray(example.boxes, np.float64).reshape(-1, 4)[mine], difficult)
            positives += int((~difficult).sum())
        found = sorted((r for r in results if int(r["category_id"]) == class_id + 1 and r["image_id"] in by_image),
                       key=lambda r: -r["score"])
        matched = {image_id: np.zeros(len(boxes), bool) for image_id, (boxes, _) in truth.items()}
        hits, false_alarms = [], []
        for result in found:
            boxes, difficult = truth[result["image_id"]]
            x, y, w, h = result["bbox"]
            overlaps = box_iou(np.array([x, y, x + w, y + h]), boxes)
            best = int(np.argmax(overlaps)) if len(overlaps) else -1
            if best >= 0 and overlaps[best] > iou_threshold:
                if difficult[best]:
                    continue
                hit = not matched[result["image_id"]][best]
                matched[result["image_id"]][best] = True
            else:
                hit = False
            hits.append(hit)
            false_alarms.append(not hit)
        if positives == 0:
            per_class07[name] = per_class[name] = float("nan")
            continue
        tp, fp = np.cumsum(hits, dtype=np.float64), np.cumsum(false_alarms, dtype=np.float64)
        recall = tp / positives
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        per_class07[name] = float(np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0
                                           for t in np.linspace(0, 1, 11)]))
        envelope_recall = np.concatenate([[0.0], recall, [1.0]])
        envelope = np.concatenate([[0.0], precision, [0.0]])
        envelope = np.maximum.accumulate(envelope[::-1])[::-1]
        steps = np.flatnonzero(envelope_recall[1:] != envelope_recall[:-1])
        per_class[name] = float(np.sum((envelope_recall[steps + 1] - envelope_recall[steps]) * envelope[steps + 1]))

    def mean(values: dict[str, float]) -> float:
        valid = [v for v in values.values() if not np.isnan(v)]
        return float(np.mean(valid)) if valid else float("nan")

    return {"VOC07_mAP50": mean(per_class07), "VOC_mAP50": mean(per_class),
            "per_class_VOC07_AP50": per_class07, "per_class_VOC_AP50": per_class}


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one ``x1, y1, x2, y2`` box with ``[N, 4]`` boxes."""
    ix = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = ix * iy
    union = (box[2] - box[0]) * (box[3] - box[1]) + (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(union - inter, 1e-9)
