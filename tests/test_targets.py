"""Targets: exact values on a hand-computed case and agreement with the numpy reference on random cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from centernet_tf.model.targets import encode_targets, gaussian_radius, keras_targets
from reference import encode_targets_reference, gaussian_radius_cornernet, iou_after_shift


def test_gaussian_radius_matches_cornernet_formula() -> None:
    rng = np.random.default_rng(0)
    heights = rng.integers(1, 200, size=300).astype(np.float32)
    widths = rng.integers(1, 200, size=300).astype(np.float32)
    got = gaussian_radius(heights, widths).numpy()
    want = np.array([gaussian_radius_cornernet(h, w) for h, w in zip(heights, widths)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    assert float(gaussian_radius(5.0, 9.0)) == pytest.approx(1.7689239, abs=1e-5)


@pytest.mark.parametrize("height,width", [(4.0, 8.0), (30.0, 30.0), (12.0, 100.0), (64.0, 17.0)])
def test_exact_radius_keeps_min_overlap_in_the_worst_case(height: float, width: float) -> None:
    r = float(gaussian_radius(height, width, min_overlap=0.7, exact=True))
    ious = [iou_after_shift(height, width, r, case) for case in ("inward", "outward", "shift")]
    # The binding case sits exactly on the threshold, the others above it.
    assert min(ious) == pytest.approx(0.7, abs=1e-4)
    assert all(iou >= 0.7 - 1e-4 for iou in ious)
    # The CornerNet formula is the documented quirk: its radius is larger.
    assert float(gaussian_radius(height, width)) > r


def test_hand_computed_single_box() -> None:
    # Input 64x96 -> map 16x24. Box / 4 = [2.25, 2.5, 10.75, 6.75]: w 8.5, h 4.25, centre (6.5, 4.625).
    # radius = int(gaussian_radius(ceil(4.25)=5, ceil(8.5)=9) = 1.769) = 1, sigma = 3 / 6.
    t = encode_targets(np.array([[9, 10, 43, 27]], np.float32), np.array([1]), (64, 96), num_classes=2)
    heatmap = t["heatmap"].numpy()
    assert heatmap.shape == (16, 24, 2)
    assert not heatmap[..., 0].any()
    expected = np.zeros((16, 24), np.float32)
    edge, corner = math.exp(-2.0), math.exp(-4.0)
    expected[3:6, 5:8] = [[corner, edge, corner], [edge, 1.0, edge], [corner, edge, corner]]
    np.testing.assert_allclose(heatmap[..., 1], expected, atol=1e-6)
    np.testing.assert_allclose(t["wh"].numpy()[0], [8.5, 4.25], atol=1e-6)
    np.testing.assert_allclose(t["offset"].numpy()[0], [0.5, 0.625], atol=1e-6)
    assert t["indices"].numpy()[0] == 4 * 24 + 6
    assert t["mask"].numpy().tolist() == [1.0] + [0.0] * 127
    assert int(t["num_objects"]) == 1 and int(t["num_dropped"]) == 0


def test_elliptic_radius_by_hand() -> None:
    # Map 32x32 (input 128, stride 4). Box / 4 = [4, 10, 26, 16]: w 22, h 6, centre (15, 13).
    # TTFNet radii: floor(0.54 * 11) = 5 across, floor(0.54 * 3) = 1 down; sigma 11/6 and 3/6.
    t = encode_targets(np.array([[16, 40, 104, 64]], np.float32), np.array([0]), (128, 128), num_classes=1,
                       radius="elliptic")
    heatmap = t["heatmap"].numpy()[..., 0]
    rows, cols = np.nonzero(heatmap)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (12, 14, 10, 20)
    assert heatmap[13, 15] == 1.0
    assert heatmap[13, 18] == pytest.approx(math.exp(-9 / (2 * (11 / 6) ** 2)), rel=1e-5)
    assert heatmap[14, 15] == pytest.approx(math.exp(-1 / (2 * 0.5**2)), rel=1e-5)
    # the same box's round paper peak is one radius both ways
    round_peak = encode_targets(np.array([[16, 40, 104, 64]], np.float32), np.array([0]), (128, 128), 1)
    rows, cols = np.nonzero(round_peak["heatmap"].numpy()[..., 0])
    assert rows.max() - 13 == cols.max() - 15
    # the GIoU branch's regression area is the same ellipse
    dense = encode_targets(np.array([[16, 40, 104, 64]], np.float32), np.array([0]), (128, 128), 1,
                           radius="elliptic", box_targets=True)
    np.testing.assert_array_equal(dense["box_weight"].numpy() > 0, heatmap > 0)
    with pytest.raises(ValueError, match="radius must be one of cornernet, exact, elliptic, got 'wide'"):
        encode_targets(np.array([[16, 40, 104, 64]], np.float32), np.array([0]), (128, 128), 1, radius="wide")


def _random_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, tuple[int, int], int]:
    height = int(rng.integers(2, 9)) * 32
    width = int(rng.integers(2, 9)) * 32
    num_classes = int(rng.integers(1, 5))
    n = int(rng.integers(0, 14))
    x1 = rng.uniform(-20, width, n)
    y1 = rng.uniform(-20, height, n)
    boxes = np.stack([x1, y1, x1 + rng.uniform(0, width / 2, n), y1 + rng.uniform(0, height / 2, n)], axis=1)
    classes = rng.integers(0, num_classes, n)
    if n >= 2:
        # Overlapping boxes of one class (shifted copies) and a box clipped on the far border.
        boxes[1] = boxes[0] + rng.uniform(-6, 6, 4)
        classes[1] = classes[0]
        boxes[-1] = [width - 10, height - 12, width + 30, height + 40]
    if n >= 4:
        boxes[2] = [5, 5, 5, 30]  # zero width: no target
    return boxes.astype(np.float32), classes.astype(np.int32), (height, width), num_classes


def _assert_matches_reference(boxes, classes, input_size, num_classes, max_objects=128) -> None:
    got = encode_targets(boxes, classes, input_size, num_classes, max_objects=max_objects)
    want = encode_targets_reference(boxes, classes, input_size, num_classes, max_objects=max_objects)
    assert got["heatmap"].shape == want["heatmap"].shape
    for key in ("heatmap", "wh", "offset", "mask"):
        np.testing.assert_allclose(got[key].numpy(), want[key], atol=1e-5, rtol=0, err_msg=key)
    np.testing.assert_array_equal(got["indices"].numpy(), want["indices"])
    assert int(got["num_objects"]) == want["num_objects"]
    assert int(got["num_dropped"]) == want["num_dropped"]


def test_matches_reference_on_random_non_square_cases() -> None:
    rng = np.random.default_rng(42)
    for _ in range(150):
        _assert_matches_reference(*_random_case(rng))


def test_same_class_overlap_combines_by_max_and_border_boxes_clip() -> None:
    boxes = np.array([[0, 0, 40, 40], [12, 8, 52, 48], [100, 50, 200, 90]], np.float32)
    classes = np.array([0, 0, 0])
    _assert_matches_reference(boxes, classes, (64, 128), 1)
    t = encode_targets(boxes, classes, (64, 128), 1)
    # The third box is clipped to the map: x in [25, 31], y in [12.5, 15] -> centre (28, 13.75).
    np.testing.assert_allclose(t["wh"].numpy()[2], [6.0, 2.5], atol=1e-6)
    assert t["indices"].numpy()[2] == 13 * 32 + 28
    # Two peaks of the same class survive the max-combination.
    assert (t["heatmap"].numpy() == 1.0).sum() == 3


def test_objects_beyond_max_objects_are_dropped_and_counted() -> None:
    boxes = np.array([[4 * i, 4, 4 * i + 8, 12] for i in range(10)], np.float32)
    t = encode_targets(boxes, np.zeros(10, np.int32), (64, 64), 1, max_objects=4)
    assert int(t["num_objects"]) == 4 and int(t["num_dropped"]) == 6
    assert t["wh"].shape == (4, 2)
    _assert_matches_reference(boxes, np.zeros(10, np.int32), (64, 64), 1, max_objects=4)


def test_no_objects_gives_empty_targets() -> None:
    t = encode_targets(np.zeros((0, 4), np.float32), np.zeros((0,), np.int32), (32, 64), 3, max_objects=8)
    assert t["heatmap"].shape == (8, 16, 3)
    assert not t["heatmap"].numpy().any()
    assert not t["mask"].numpy().any()
    assert int(t["num_objects"]) == 0


def test_runs_inside_tf_data_graph_and_equals_eager() -> None:
    rng = np.random.default_rng(7)
    cases = [_random_case(rng) for _ in range(5)]
    boxes, classes, size, num_classes = cases[0]
    ds = tf.data.Dataset.from_tensors((boxes, classes)).map(
        lambda b, c: keras_targets(encode_targets(b, c, size, num_classes))
    )
    graph = next(iter(ds))
    eager = keras_targets(encode_targets(boxes, classes, size, num_classes))
    assert set(graph) == {"heatmap", "wh", "offset", "indices", "mask"}
    for key in graph:
        np.testing.assert_array_equal(graph[key].numpy(), eager[key].numpy())
    # Separate tensors, the gather indices as integers (no float packing).
    assert graph["wh"].shape == graph["offset"].shape == (128, 2)
    assert graph["indices"].dtype == tf.int32 and graph["mask"].shape == (128,)
