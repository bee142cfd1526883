"""Evaluation pictures: the confusion matrix counted by hand, the precision-recall curves from COCOeval."""

from __future__ import annotations

import numpy as np

from centernet_tf.data.sources import DatasetIndex, Example, SkipReport
from centernet_tf.evaluation import coco_ground_truth, coco_metrics
from centernet_tf.plots import confusion_matrix, draw_confusion_matrix, draw_precision_recall


def _example(image_id: int, boxes: list[list[float]], classes: list[int]) -> Example:
    return Example(f"{image_id}.jpg", image_id, 100, 100, np.array(boxes, np.float32).reshape(-1, 4),
                   np.array(classes, np.int32))


def _result(image_id: int, box: list[float], category: int, score: float) -> dict:
    x1, y1, x2, y2 = box
    return {"image_id": image_id, "category_id": category + 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score}


INDEX = DatasetIndex(
    [_example(1, [[10, 10, 30, 30], [50, 50, 80, 80]], [0, 1]), _example(2, [[20, 20, 40, 40]], [0])],
    ["cat", "dog"], SkipReport(),
)


def test_confusion_matrix_counts_matches_confusions_false_positives_and_misses() -> None:
    results = [
        _result(1, [11, 11, 31, 31], 0, 0.9),  # cat on the cat: correct
        _result(1, [50, 52, 80, 82], 0, 0.8),  # cat on the dog: a confusion
        _result(1, [0, 85, 10, 95], 1, 0.7),  # a dog where nothing is: false positive
        _result(1, [10, 10, 30, 30], 1, 0.2),  # below the score threshold: ignored
    ]  # image 2's cat is found by nothing: a miss
    matrix = confusion_matrix(results, INDEX, iou_threshold=0.5, score_threshold=0.3)
    expected = np.zeros((3, 3), np.int64)
    expected[0, 0] = expected[1, 0] = expected[2, 1] = expected[0, 2] = 1
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.sum() == 4  # 3 objects + 1 false positive, each counted once
    picture = draw_confusion_matrix(matrix, INDEX.class_names)
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.std() > 10


def test_precision_recall_curves_are_cocoevals_and_average_to_ap50() -> None:
    results = [_result(1, [11, 11, 31, 31], 0, 0.9), _result(2, [60, 60, 70, 70], 0, 0.8),
               _result(2, [20, 20, 40, 40], 0, 0.7), _result(1, [50, 50, 80, 80], 1, 0.6)]
    metrics = coco_metrics(coco_ground_truth(INDEX), results, INDEX.class_names)
    curves = metrics["precision_recall50"]
    assert set(curves) == {"cat", "dog"} and all(len(c) == 101 for c in curves.values())
    for name, curve in curves.items():
        assert abs(np.mean(curve) - metrics["per_class_AP50"][name]) < 1e-3
    # cat: the first hit at precision 1, the second after a false positive at precision 2/3
    assert curves["cat"][0] == 1.0 and curves["cat"][100] == round(2 / 3, 4)
    picture = draw_precision_recall(curves)
    assert picture.shape == (480, 640, 3) and picture.std() > 10


def test_training_targets_decode_back_to_the_boxes_and_pictures_are_drawn() -> None:
    import tensorflow as tf

    from centernet_tf.plots import boxes_from_targets, draw_label_statistics, draw_training_samples
    from centernet_tf.targets import encode_targets, keras_targets

    boxes = np.array([[10.5, 12.25, 30.5, 40.0], [40.0, 8.0, 60.0, 20.0]], np.float32)
    encoded = keras_targets(encode_targets(tf.constant(boxes), tf.constant([1, 0]), (64, 64), 2, stride=4,
                                           max_objects=5))
    targets = {k: v.numpy()[None] for k, v in encoded.items()}
    (decoded, classes), = boxes_from_targets(targets, stride=4)
    np.testing.assert_allclose(decoded, boxes, atol=1e-4)
    np.testing.assert_array_equal(classes, [1, 0])
    grid = draw_training_samples(np.zeros((1, 64, 64, 3), np.float32), targets, 4, ["cat", "dog"])
    assert grid.shape == (64, 256, 3) and grid.std() > 1
    stats = draw_label_statistics(INDEX)
    assert stats.shape == (360, 900, 3) and stats.std() > 10
