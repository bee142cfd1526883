"""COCO evaluation glue: pycocotools fed from our index gives the numbers we can compute by hand."""

from __future__ import annotations

import numpy as np
import pytest

from centernet_tf.data.index import DatasetIndex, Example, SkipReport
from centernet_tf.evaluation.metrics import coco_ground_truth, coco_metrics


def _index() -> DatasetIndex:
    examples = [
        Example("a.jpg", 1, 200, 100, np.array([[10, 10, 60, 50], [100, 20, 190, 90]], np.float32),
                np.array([0, 1], np.int32)),
        Example("b.jpg", 2, 200, 100, np.array([[20, 30, 80, 90]], np.float32), np.array([0], np.int32)),
    ]
    return DatasetIndex(examples, ["cat", "dog"], SkipReport(), "tiny")


def _result(image_id: int, class_id: int, box, score: float = 0.9) -> dict:
    x1, y1, x2, y2 = box
    return {"image_id": image_id, "category_id": class_id + 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score}


def test_perfect_detections_score_one() -> None:
    index = _index()
    results = [_result(e.image_id, int(c), b) for e in index.examples for b, c in zip(e.boxes, e.class_ids)]
    metrics = coco_metrics(coco_ground_truth(index), results, index.class_names)
    assert metrics["mAP"] == pytest.approx(1.0) and metrics["mAP50"] == pytest.approx(1.0)
    assert metrics["per_class_AP"] == pytest.approx({"cat": 1.0, "dog": 1.0})


def test_loose_boxes_count_at_iou_05_but_not_075_and_missing_class_is_zero() -> None:
    index = _index()
    # Cat boxes widened to IoU 0.625 with the truth; no dog detection at all.
    results = [
        _result(1, 0, (10, 10, 90, 50)),  # IoU = 50*40 / (80*40) = 0.625
        _result(2, 0, (20, 30, 116, 90)),  # IoU = 60 / 96 = 0.625
    ]
    metrics = coco_metrics(coco_ground_truth(index), results, index.class_names)
    assert metrics["per_class_AP50"]["cat"] == pytest.approx(1.0)
    assert metrics["per_class_AP50"]["dog"] == pytest.approx(0.0)
    assert metrics["mAP50"] == pytest.approx(0.5)
    assert metrics["mAP75"] == pytest.approx(0.0)
    # AP over IoU .50:.95 for cat: only thresholds .50, .55, .60 of 10 pass.
    assert metrics["per_class_AP"]["cat"] == pytest.approx(0.3)


def test_no_detections_give_zero_not_an_exception() -> None:
    index = _index()
    metrics = coco_metrics(coco_ground_truth(index), [], index.class_names)
    assert metrics["mAP"] == 0.0 and metrics["per_class_AP"] == {"cat": 0.0, "dog": 0.0}


def test_evaluate_model_runs_the_network_and_needs_a_size_for_dynamic_models(tmp_path) -> None:
    from PIL import Image

    from centernet_tf.evaluation.metrics import evaluate_model, predict_detections
    from centernet_tf.model.centernet import build_centernet

    examples = []
    for i in range(3):
        path = tmp_path / f"{i}.jpg"
        Image.new("RGB", (200, 100), (40 * i, 90, 200)).save(path)
        examples.append(Example(str(path), i + 1, 200, 100, np.array([[10, 10, 60, 50]], np.float32),
                                np.array([i % 2], np.int32)))
    index = DatasetIndex(examples, ["cat", "dog"], SkipReport(), "tiny")
    model = build_centernet(2, "resnet10_slim", (None, None, 3))
    with pytest.raises(ValueError, match="dynamic input size"):
        evaluate_model(model, index)
    metrics = evaluate_model(model, index, input_size=(64, 96))
    # An untrained model scores ~0.1 everywhere (the heatmap prior), above the 0.01 threshold: many peaks.
    assert 100 < metrics["num_detections"] <= 300
    assert 0.0 <= metrics["mAP50"] <= 1.0 and set(metrics["per_class_AP"]) == {"cat", "dog"}
    results = predict_detections(model, index, input_size=(64, 96))
    boxes = np.array([r["bbox"] for r in results])
    # Boxes are in original-image pixels: inside the 200x100 image once the letterbox is undone.
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 0] + boxes[:, 2] <= 200 + 1e-3).all()
    assert (boxes[:, 1] + boxes[:, 3] <= 100 + 1e-3).all()
    assert {r["image_id"] for r in results} == {1, 2, 3}
