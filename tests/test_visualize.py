"""TensorBoard pictures: boxes land where they should, the heatmap shows in red."""

from __future__ import annotations

import numpy as np

from centernet_tf.deploy.visualize import ground_truth_vs_prediction, heatmap_overlay


def test_ground_truth_left_prediction_right_with_class_names() -> None:
    from centernet_tf.deploy.inference import Detections
    from centernet_tf.deploy.visualize import _CLASS_COLOURS

    images = np.zeros((1, 64, 96, 3), np.float32)
    truths = [(np.array([[4, 20, 40, 50]], np.float32), np.array([1]))]
    found = [Detections(np.array([[50, 30, 90, 60]], np.float32), np.array([0.87], np.float32), np.array([0]))]
    picture = ground_truth_vs_prediction(images, truths, found, ["cat", "dog"])[0]
    assert picture.shape == (64, 192, 3) and picture.dtype == np.uint8
    assert tuple(picture[35, 4]) == _CLASS_COLOURS[1]  # left edge of the ground-truth box, the dog's colour
    assert picture[35, 20].sum() == 0  # inside the box: untouched
    assert tuple(picture[45, 96 + 50]) == _CLASS_COLOURS[0]  # the prediction, right half, the cat's colour
    assert picture[35, 96 + 4].sum() == 0  # no ground truth drawn on the prediction side
    # the labels: a tag in the class colour with light text, just above each box
    for tag in (picture[4:20, 4:40], picture[14:30, 96 + 50:96 + 90]):
        assert (tag.min(axis=-1) > 200).any() and (tag.std(axis=(0, 1)) > 10).any()


def test_heatmap_overlay_is_red_at_the_peak() -> None:
    images = np.full((1, 16, 16, 3), 255.0, np.float32)
    heatmap = np.zeros((1, 4, 4, 2), np.float32)
    heatmap[0, 1, 2, 1] = 1.0
    overlay = heatmap_overlay(images, heatmap, opacity=0.6).numpy()[0]
    np.testing.assert_allclose(overlay[5, 9], [1.0, 0.4, 0.4], atol=1e-6)  # cell (1, 2) covers rows 4-7, cols 8-11
    np.testing.assert_allclose(overlay[0, 0], [0.4, 0.4, 0.4], atol=1e-6)
