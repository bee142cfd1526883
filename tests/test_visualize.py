"""TensorBoard pictures: boxes land where they should, the heatmap shows in red."""

from __future__ import annotations

import numpy as np

from centernet_tf.visualize import ground_truth_vs_prediction, heatmap_overlay


def test_ground_truth_left_prediction_right() -> None:
    images = np.zeros((1, 32, 48, 3), np.float32)
    gt = np.array([[[4, 8, 20, 24]]], np.float32)
    pred = np.array([[[10, 2, 30, 12], [0, 0, 0, 0]]], np.float32)
    picture = ground_truth_vs_prediction(images, gt, pred).numpy()[0]
    assert picture.shape == (32, 96, 3)
    np.testing.assert_allclose(picture[8, 12], [0, 1, 0])  # top edge of the ground-truth box, green
    assert picture[16, 12].sum() == 0  # inside the box: untouched
    np.testing.assert_allclose(picture[2, 48 + 20], [1, 0.2, 0.2])  # top edge of the prediction, right half
    assert picture[8, 48 + 12].sum() == 0  # no ground truth drawn on the prediction side


def test_heatmap_overlay_is_red_at_the_peak() -> None:
    images = np.full((1, 16, 16, 3), 255.0, np.float32)
    heatmap = np.zeros((1, 4, 4, 2), np.float32)
    heatmap[0, 1, 2, 1] = 1.0
    overlay = heatmap_overlay(images, heatmap, opacity=0.6).numpy()[0]
    np.testing.assert_allclose(overlay[5, 9], [1.0, 0.4, 0.4], atol=1e-6)  # cell (1, 2) covers rows 4-7, cols 8-11
    np.testing.assert_allclose(overlay[0, 0], [0.4, 0.4, 0.4], atol=1e-6)
