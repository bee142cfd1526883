"""The tf.data pipeline: letterbox math, colour modes, flips, targets in batches, and bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from centernet_tf.data.index import DatasetIndex, Example, SkipReport
from centernet_tf.data.letterbox import letterbox_array, letterbox_boxes, letterbox_geometry, letterbox_image
from centernet_tf.data.pipeline import build_eval_dataset, build_train_dataset, random_horizontal_flip, read_image
from centernet_tf.model.decode import undo_letterbox


def test_letterbox_keeps_aspect_and_centres_the_padding() -> None:
    image = tf.fill((480, 640, 3), tf.constant(200, tf.uint8))
    out, letterbox = letterbox_image(image, (128, 128))
    assert out.shape == (128, 128, 3)
    np.testing.assert_allclose(letterbox.numpy(), [0.2, 0.0, 16.0])
    # 640x480 * 0.2 = 128x96, centred: rows 16..111 are image, the rest padding.
    assert float(out[15, 64, 0]) == 0.0 and float(out[16, 64, 0]) == pytest.approx(200.0)
    assert float(out[111, 64, 0]) == pytest.approx(200.0) and float(out[112, 64, 0]) == 0.0
    boxes = letterbox_boxes(np.array([[0, 0, 640, 480], [100, 50, 300, 250]], np.float32), letterbox)
    np.testing.assert_allclose(boxes.numpy(), [[0, 16, 128, 112], [20, 26, 60, 66]], atol=1e-4)


@pytest.mark.parametrize("image_hw,input_hw", [((300, 200), (96, 160)), ((50, 400), (64, 64)), ((64, 64), (64, 64))])
def test_letterbox_round_trip_is_identity(image_hw, input_hw) -> None:
    _, letterbox = letterbox_image(tf.zeros((*image_hw, 3)), input_hw)
    boxes = np.array([[3, 4, 50, 40], [0, 0, image_hw[1], image_hw[0]]], np.float32)
    back = undo_letterbox(letterbox_boxes(boxes, letterbox)[None], letterbox[None], np.array([image_hw]))
    np.testing.assert_allclose(back[0].numpy(), boxes, atol=1e-3)


@pytest.mark.parametrize("image_hw", [(480, 640), (120, 170), (1080, 1920), (300, 300), (50, 1000), (33, 47), (288, 384)])
def test_opencv_letterbox_matches_the_tensorflow_one(image_hw) -> None:
    """The TFLite detector's letterbox: the same scale and padding, pixels within 0.02 of 255."""
    pytest.importorskip("cv2")
    image = np.random.default_rng(sum(image_hw)).integers(0, 256, (*image_hw, 3), dtype=np.uint8)
    expected, expected_letterbox = letterbox_image(image, (288, 384))
    actual, actual_letterbox = letterbox_array(image, (288, 384))
    np.testing.assert_array_equal(actual_letterbox, expected_letterbox.numpy())
    assert actual.shape == (288, 384, 3) and actual.dtype == np.float32
    np.testing.assert_allclose(actual, expected.numpy(), atol=0.02)
    scale, pad_x, pad_y = expected_letterbox.numpy()
    assert letterbox_geometry(*image_hw, (288, 384))[0] == scale and (actual[: int(pad_y)] == 0).all()


def test_flip_mirrors_boxes_and_twice_is_identity() -> None:
    image = np.zeros((32, 64, 3), np.float32)
    image[4:10, 2:12] = 255
    boxes = tf.constant([[2.0, 4.0, 12.0, 10.0]])
    flipped_image, flipped = random_horizontal_flip(tf.constant(image), boxes, probability=1.0)
    np.testing.assert_allclose(flipped.numpy(), [[52, 4, 62, 10]])
    assert flipped_image.numpy()[4:10, 52:62].min() == 255 and flipped_image.numpy()[:, :52].max() == 0
    _, twice = random_horizontal_flip(flipped_image, flipped, probability=1.0)
    np.testing.assert_allclose(twice.numpy(), boxes.numpy())


def _write(path: Path, mode: str, size=(40, 30)) -> str:
    colour = {"L": 128, "RGB": (10, 20, 30), "RGBA": (10, 20, 30, 0)}[mode]
    Image.new(mode, size, colour).save(path)
    return str(path)


def test_read_image_converts_grayscale_and_rgba_to_rgb(tmp_path: Path) -> None:
    gray = read_image(_write(tmp_path / "g.png", "L")).numpy()
    rgba = read_image(_write(tmp_path / "a.png", "RGBA")).numpy()
    assert gray.shape == rgba.shape == (30, 40, 3)
    assert (gray == 128).all()
    assert rgba[0, 0].tolist() == [10, 20, 30]


def _index(tmp_path: Path, count: int = 4) -> DatasetIndex:
    examples = []
    for i in range(count):
        path = _write(tmp_path / f"{i}.jpg", "RGB", size=(200, 100))
        boxes = np.array([[10, 10, 60, 50], [100, 20, 190, 90]], np.float32)[: 1 + i % 2]
        examples.append(Example(path, i + 1, 200, 100, boxes, np.arange(len(boxes), dtype=np.int32)))
    return DatasetIndex(examples, ["a", "b"], SkipReport(), "tiny")


def test_train_batches_hold_targets_for_the_letterboxed_boxes(tmp_path: Path) -> None:
    ds = build_train_dataset(_index(tmp_path), (64, 96), batch_size=2, max_objects=8, flip=False, shuffle=False)
    images, targets = next(iter(ds))
    assert images.shape == (2, 64, 96, 3) and images.dtype == tf.float32
    assert targets["heatmap"].shape == (2, 16, 24, 2)
    assert targets["wh"].shape == targets["offset"].shape == (2, 8, 2)
    # Image 200x100 -> scale 0.48, pad_y 8: box (10, 10, 60, 50) -> (4.8, 12.8, 28.8, 32) -> map / 4.
    np.testing.assert_allclose(targets["wh"][0, 0, :2].numpy(), [6.0, 4.8], atol=1e-4)
    assert targets["mask"][0].numpy().sum() == 1 and targets["mask"][1].numpy().sum() == 2
    assert float(tf.reduce_max(targets["heatmap"][0, ..., 0])) == 1.0


def test_undecodable_file_is_dropped_not_fatal(tmp_path: Path) -> None:
    index = _index(tmp_path, count=3)
    Path(index.examples[1].image_path).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    ds = build_train_dataset(index, (64, 64), batch_size=1, flip=False, shuffle=False, drop_remainder=False)
    assert sum(1 for _ in ds) == 2
    ids = [int(b["image_id"][0]) for b in build_eval_dataset(index, (64, 64), batch_size=1)]
    assert ids == [1, 3]
