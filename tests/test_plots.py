"""Evaluation pictures: the confusion matrix counted by hand, the precision-recall curves from COCOeval."""

from __future__ import annotations

import numpy as np

from centernet_tf.data.index import DatasetIndex, Example, SkipReport
from centernet_tf.evaluation.metrics import coco_ground_truth, coco_metrics
from centernet_tf.evaluation.plots import confusion_matrix, draw_confusion_matrix, draw_precision_recall
from tests.voc_files import write_voc_xml


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

    from centernet_tf.evaluation.plots import boxes_from_targets, draw_label_statistics, draw_training_samples
    from centernet_tf.model.targets import encode_targets, keras_targets

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


def test_voc_metrics_follow_the_devkit_and_ignore_difficult_objects() -> None:
    """Two objects and a difficult one; detections 0.95 on the difficult (ignored), 0.9 hit, 0.8 false alarm,
    0.7 hit: recall 0.5, 0.5, 1 at precision 1, 0.5, 2/3. VOC2010+ (all points): 0.5 * 1 + 0.5 * 2/3;
    VOC07 (11 points): recall >= 0 ... 0.5 give 1 (6 points), 0.6 ... 1 give 2/3 (5 points)."""
    from centernet_tf.evaluation.metrics import voc_metrics

    example = Example("1.jpg", 1, 100, 100, np.array([[0, 0, 10, 10], [50, 50, 60, 60], [80, 0, 99, 20]],
                      np.float32), np.array([0, 0, 0], np.int32), 1, np.array([False, False, True]))
    index = DatasetIndex([example], ["cell"], SkipReport())
    results = [_result(1, [80, 0, 99, 20], 0, 0.95), _result(1, [0, 0, 10, 10], 0, 0.9),
               _result(1, [30, 30, 40, 40], 0, 0.8), _result(1, [50, 50, 60, 61], 0, 0.7)]
    metrics = voc_metrics(results, index)
    assert abs(metrics["VOC_mAP50"] - (0.5 + 0.5 * 2 / 3)) < 1e-9
    assert abs(metrics["VOC07_mAP50"] - (6 + 5 * 2 / 3) / 11) < 1e-9
    # Without the flag the same detections score lower: the 0.95 box becomes a hit, and one object more.
    plain = DatasetIndex([Example(*[getattr(example, f) for f in ("image_path", "image_id", "width", "height",
                                                                  "boxes", "class_ids")])], ["cell"], SkipReport())
    assert voc_metrics(results, plain)["VOC_mAP50"] != metrics["VOC_mAP50"]
    # A second detection of a found object is a false alarm.
    twice = voc_metrics([_result(1, [0, 0, 10, 10], 0, 0.9), _result(1, [0, 0, 10, 10], 0, 0.8)], index)
    assert abs(twice["VOC_mAP50"] - 0.5) < 1e-9


def test_voc_loader_keeps_the_difficult_flag(tmp_path) -> None:
    from PIL import Image

    from centernet_tf.data.formats import load_voc

    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "a.jpg")
    write_voc_xml(tmp_path / "Annotations" / "a.xml", [("cell", (1, 1, 9, 9), d) for d in (0, 1)], "a.jpg")
    index = load_voc(tmp_path, None, images_dir="")
    assert index.examples[0].difficult.tolist() == [False, True]
