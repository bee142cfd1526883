"""Augmentation properties: boxes follow the pixels, stay inside or are dropped, peaks sit at the new centres."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from centernet_tf.data.augment import Augmentation, colour_jitter, mosaic, pca_lighting, random_scale_crop
from centernet_tf.data.index import DatasetIndex, Example, SkipReport
from centernet_tf.data.letterbox import letterbox_boxes, letterbox_image
from centernet_tf.data.pipeline import build_train_dataset, random_horizontal_flip
from centernet_tf.model.targets import encode_targets

BOXES = np.array([[20, 30, 80, 70], [150, 20, 230, 110], [100, 120, 180, 150], [0, 0, 40, 20]], np.float32)


def _boxes_image(height: int = 160, width: int = 240) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    for x1, y1, x2, y2 in BOXES.astype(int):
        image[y1:y2, x1:x2] = 255
    return image


def test_crop_at_scale_one_and_centre_equals_the_letterbox() -> None:
    image = _boxes_image()
    crop, boxes, keep = random_scale_crop(image, BOXES, (96, 128), scale_range=(1.0, 1.0), crop_border=0.5 - 1e-7)
    letterboxed, letterbox = letterbox_image(image, (96, 128))
    # The letterbox rounds its padding to whole pixels (5 here instead of 5.33); the crop window does not.
    np.testing.assert_allclose(boxes.numpy(), letterbox_boxes(BOXES, letterbox).numpy(), atol=0.5)
    assert keep.numpy().all()
    # Same window, different resampling conventions: pixels agree except along the box edges.
    assert np.mean(np.abs(crop.numpy() - letterboxed.numpy()) > 1.0) < 0.05


def test_boxes_follow_the_pixels_and_stay_inside_or_are_dropped() -> None:
    tf.random.set_seed(3)
    image = _boxes_image()
    dropped_any = kept_any = False
    for _ in range(40):
        crop, boxes, keep = random_scale_crop(image, BOXES, (96, 128))
        crop, boxes = crop.numpy(), boxes.numpy()
        assert crop.shape == (96, 128, 3)
        assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= 128).all() and (boxes[:, [1, 3]] <= 96).all()
        assert ((boxes[:, 2] - boxes[:, 0]) >= 1).all() and ((boxes[:, 3] - boxes[:, 1]) >= 1).all()
        assert len(boxes) == int(keep.numpy().sum())
        dropped_any |= not keep.numpy().all()
        kept_any |= keep.numpy().any()
        for x1, y1, x2, y2 in boxes:
            # The pixel at each surviving box centre is the white object, and just outside is black padding
            # or background (boxes are separated by background in the source image).
            cx, cy = int((x1 + x2) / 2), int((y1 + y2) / 2)
            assert crop[cy, cx].min() > 200
    assert dropped_any and kept_any


def test_heatmap_peaks_sit_at_the_transformed_centres_after_augmentation() -> None:
    tf.random.set_seed(5)
    image = _boxes_image()
    checked = 0
    for _ in range(10):
        crop, boxes, keep = random_scale_crop(image, BOXES, (96, 128))
        crop, boxes = random_horizontal_flip(crop, boxes)
        classes = np.arange(4, dtype=np.int32)[keep.numpy()]
        heatmap = encode_targets(boxes, classes, (96, 128), num_classes=4)["heatmap"].numpy()
        for (x1, y1, x2, y2), c in zip(boxes.numpy(), classes):
            # On the 24x32 map, coordinates are clipped to [0, 31] x [0, 23] before taking the centre.
            mx1, mx2, my1, my2 = min(x1 / 4, 31), min(x2 / 4, 31), min(y1 / 4, 23), min(y2 / 4, 23)
            if mx2 <= mx1 or my2 <= my1:
                continue  # a sliver beyond the last map cell: no target, as in the reference (tested there)
            checked += 1
            assert heatmap[int((my1 + my2) / 2), int((mx1 + mx2) / 2), c] == 1.0, (x1, y1, x2, y2)
    assert checked >= 20


def test_flipping_twice_is_the_identity_on_boxes_and_image() -> None:
    image, boxes = tf.constant(_boxes_image(), tf.float32), tf.constant(BOXES)
    once_image, once = random_horizontal_flip(image, boxes, probability=1.0)
    twice_image, twice = random_horizontal_flip(once_image, once, probability=1.0)
    np.testing.assert_allclose(twice.numpy(), BOXES)
    np.testing.assert_array_equal(twice_image.numpy(), image.numpy())
    assert not np.array_equal(once.numpy(), BOXES)


def test_colour_and_lighting_change_pixels_within_range() -> None:
    tf.random.set_seed(0)
    image = tf.constant(np.random.default_rng(0).uniform(0, 255, (32, 32, 3)), tf.float32)
    jittered = colour_jitter(image, 0.4).numpy()
    lit = pca_lighting(image, 0.1).numpy()
    for out in (jittered, lit):
        assert out.min() >= 0 and out.max() <= 255
        assert not np.allclose(out, image.numpy())
    assert np.allclose(colour_jitter(image, 0.0).numpy(), np.clip(image.numpy(), 0, 255), atol=1e-4)


def test_pipeline_with_all_augmentations_yields_valid_targets(tmp_path: Path) -> None:
    examples = []
    for i in range(4):
        path = tmp_path / f"{i}.png"
        Image.fromarray(_boxes_image()).save(path)
        examples.append(Example(str(path), i + 1, 240, 160, BOXES, np.array([0, 1, 0, 1], np.int32)))
    index = DatasetIndex(examples, ["a", "b"], SkipReport(), "boxes")
    augmentation = Augmentation(random_crop=True, colour_jitter=0.4, lighting_std=0.1)
    ds = build_train_dataset(index, (96, 128), batch_size=2, max_objects=8, augmentation=augmentation)
    for images, targets in ds.take(2):
        assert images.shape == (2, 96, 128, 3)
        assert np.isfinite(images.numpy()).all() and np.isfinite(targets["heatmap"].numpy()).all()
        counts = targets["mask"].numpy().sum(axis=1)
        assert ((counts >= 0) & (counts <= 4)).all()


#: One box per tile (x1, y1, x2, y2) in a 32 x 48 input; tile i paints its box with 50 * (i + 1), class i.
MOSAIC_BOXES = [[4, 6, 20, 18], [30, 2, 47, 30], [0, 10, 48, 22], [10, 0, 26, 32]]


@pytest.mark.parametrize("seed", range(6))
def test_mosaic_boxes_cover_exactly_the_pixels_of_their_objects(seed: int) -> None:
    images, boxes, classes = [], [], []
    for i, (x1, y1, x2, y2) in enumerate(MOSAIC_BOXES):
        tile = np.zeros((32, 48, 3), np.float32)
        tile[y1:y2, x1:x2] = 50.0 * (i + 1)
        images.append(tf.constant(tile))
        boxes.append(tf.constant([[x1, y1, x2, y2]], tf.float32))
        classes.append(tf.constant([i], tf.int32))
    tf.random.set_seed(seed)
    window, out_boxes, out_classes = (t.numpy() for t in mosaic(images, boxes, classes, (32, 48)))
    assert window.shape == (32, 48, 3)
    assert ((out_boxes >= 0) & (out_boxes <= [48, 32, 48, 32])).all()
    for i in range(4):
        painted = window[..., 0] == 50.0 * (i + 1)
        kept = out_boxes[out_classes == i]
        if not painted.any():  # the object is outside the window: no box for it
            assert len(kept) == 0
            continue
        # The object's visible pixels and its box are the same rectangle (integer shift, no resampling).
        (x1, y1, x2, y2), = kept
        rows, cols = np.nonzero(painted)
        assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (y1, y2, x1, x2)
        assert painted.sum() == (x2 - x1) * (y2 - y1)


def test_pipeline_mosaic_puts_several_photos_in_a_sample(tmp_path: Path) -> None:
    """Each photo is one object filling it: a plain sample has one centre, a mosaic up to four (one only when
    the window falls exactly on a tile, about 3 in 10,000 windows here)."""
    examples = []
    for i in range(4):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.full((96, 128, 3), 40 * (i + 1), np.uint8)).save(path)
        examples.append(Example(str(path), i + 1, 128, 96, np.array([[0, 0, 128, 96]], np.float32),
                                np.array([i % 2], np.int32)))
    index = DatasetIndex(examples, ["a", "b"], SkipReport(), "full")
    counts = {}
    for share in (0.0, 1.0):
        tf.random.set_seed(0)
        ds = build_train_dataset(index, (96, 128), batch_size=4, max_objects=8, flip=False, seed=0,
                                 augmentation=Augmentation(mosaic=share))
        counts[share] = np.concatenate([t["mask"].numpy().sum(axis=1) for _, t in ds.repeat(5)])
    assert (counts[0.0] == 1).all()
    assert (counts[1.0] >= 1).all() and (counts[1.0] <= 4).all() and counts[1.0].mean() > 3.0


@pytest.mark.parametrize("bad", ["data.scale_range=[1.4,0.6]", "data.crop_border=0.5", "data.mosaic=1.5"])
def test_bad_augmentation_config_is_an_error(bad: str) -> None:
    from centernet_tf.config import ConfigError, load_config

    with pytest.raises(ConfigError):
        load_config(None, [bad])
