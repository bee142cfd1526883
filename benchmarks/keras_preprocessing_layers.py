"""Should the geometric augmentation use Keras preprocessing layers with ``bounding_box_format``? Measured here.

    python benchmarks/keras_preprocessing_layers.py

Two candidates for "random scale + crop + horizontal flip, boxes kept consistent" inside ``tf.data``:

* ``keras``: letterbox, then ``keras.layers.RandomZoom`` (scale 0.6-1.4), ``RandomTranslation`` (crop centre
  within the middle half) and ``RandomFlip``, all with ``bounding_box_format="xyxy"``;
* ``ours``: ``centernet_tf.data.augment.random_scale_crop`` (one ``crop_and_resize``) + ``random_horizontal_flip``.

Correctness: synthetic images whose objects are solid rectangles in distinct colours, so the true box of every
object after augmentation can be read off the pixels. For every object we compare the returned box with the
pixel box (IoU, worst corner error) and count boxes kept for objects that are no longer visible and objects
still visible whose box was dropped. Speed: images per second through ``tf.data`` on BCCD (decoded images
cached in memory, so only the augmentation is timed). Writes a JSON; the verdict is in
``centernet_tf/data/augment.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.bccd import machine  # noqa: E402
from centernet_tf.config import load_config  # noqa: E402
from centernet_tf.data.augment import random_scale_crop  # noqa: E402
from centernet_tf.data.letterbox import letterbox_boxes, letterbox_image  # noqa: E402
from centernet_tf.data.loaders import load_split  # noqa: E402
from centernet_tf.data.pipeline import random_horizontal_flip, read_image  # noqa: E402

INPUT_SIZE = (288, 384)
COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255]], np.float32)


def keras_augmentation(seed: int = 0):
    """Letterbox + Keras RandomZoom / RandomTranslation / RandomFlip on ``{"images", "bounding_boxes"}``."""
    common = {"fill_mode": "constant", "bounding_box_format": "xyxy"}
    zoom = keras.layers.RandomZoom((-0.4, 0.4), interpolation="bilinear", seed=seed, **common)
    translate = keras.layers.RandomTranslation(0.25, 0.25, interpolation="bilinear", seed=seed + 1, **common)
    flip = keras.layers.RandomFlip("horizontal", bounding_box_format="xyxy", seed=seed + 2)

    def augment(image: tf.Tensor, boxes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        image, letterbox = letterbox_image(image, INPUT_SIZE)
        data = {"images": image, "bounding_boxes": {"boxes": letterbox_boxes(boxes, letterbox),
                                                    "labels": tf.range(tf.shape(boxes)[0], dtype=tf.float32)}}
        for layer in (zoom, translate, flip):
            data = layer(data)
        kept = data["bounding_boxes"]["labels"] >= 0  # Keras marks dropped boxes with label -1
        return data["images"], data["bounding_boxes"]["boxes"], kept

    return augment


def our_augmentation(image: tf.Tensor, boxes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    image, boxes, keep = random_scale_crop(image, boxes, INPUT_SIZE)
    image, boxes = random_horizontal_flip(image, boxes)
    # Report one row per input object, like the Keras path: dropped objects get an empty box.
    positions = tf.cumsum(tf.cast(keep, tf.int32)) - 1
    full = tf.where(keep[:, None], tf.gather(boxes, tf.maximum(positions, 0)), tf.zeros([1, 4]))
    return image, full, keep


def synthetic_example(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A 480x640 image with up to 6 non-overlapping solid rectangles, each its own colour."""
    image = np.full((480, 640, 3), 128.0, np.float32)
    boxes = []
    for colour in COLOURS:
        for _ in range(20):
            w, h = rng.uniform(20, 160), rng.uniform(20, 160)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            box = np.array([x, y, x + w, y + h])
            if all(box[2] + 4 < b[0] or b[2] + 4 < box[0] or box[3] + 4 < b[1] or b[3] + 4 < box[1] for b in boxes):
                boxes.append(box)
                break
    boxes = np.round(np.array(boxes, np.float32))  # integer edges: the pixel truth is exact
    for box, colour in zip(boxes, COLOURS):
        x1, y1, x2, y2 = box.astype(int)
        image[y1:y2, x1:x2] = colour
    return image, boxes


def pixel_box(image: np.ndarray, colour: np.ndarray) -> np.ndarray | None:
    """Bounding box of the pixels at least half-way to ``colour`` (bilinear edges count half), or None."""
    closeness = 1.0 - np.abs(image - colour).max(axis=-1) / 255.0
    ys, xs = np.nonzero(closeness > 0.75)
    if len(xs) < 4:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def check_correctness(augment, num_images: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    ious, errors, ghosts, lost, objects = [], [], 0, 0, 0
    for _ in range(num_images):
        image, boxes = synthetic_example(rng)
        out, out_boxes, kept = (t.numpy() for t in augment(tf.constant(image), tf.constant(boxes)))
        for i in range(len(boxes)):
            truth = pixel_box(out, COLOURS[i])
            visible = truth is not None and (truth[2] - truth[0]) >= 2 and (truth[3] - truth[1]) >= 2
            objects += 1
            if kept[i] and not visible:
                ghosts += 1
            elif visible and not kept[i]:
                lost += 1
            elif visible and kept[i]:
                ious.append(iou(out_boxes[i], truth))
                errors.append(float(np.abs(out_boxes[i] - truth).max()))
    return {
        "objects": objects,
        "matched": len(ious),
        "median_iou": round(float(statistics.median(ious)), 4),
        "min_iou": round(float(min(ious)), 4),
        "share_iou_below_0.9": round(float(np.mean(np.array(ious) < 0.9)), 4),
        "median_max_corner_error_px": round(statistics.median(errors), 2),
        "p95_max_corner_error_px": round(float(np.percentile(errors, 95)), 2),
        "kept_but_invisible": ghosts,
        "visible_but_dropped": lost,
    }


def time_in_tf_data(augment, bccd_images: list[tf.Tensor], bccd_boxes: list[tf.Tensor], epochs: int) -> float:
    """Median seconds per image over ``epochs`` passes of a parallel ``tf.data`` map over cached images."""
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.ragged.stack(bccd_images), tf.ragged.stack(bccd_boxes))
    ).map(lambda i, b: (i.to_tensor(), b.to_tensor()))
    ds = ds.cache().map(lambda i, b: augment(i, b)[:2], num_parallel_calls=tf.data.AUTOTUNE).prefetch(8)
    for _ in ds:  # fill the cache, trace the functions
        pass
    per_image = []
    for _ in range(epochs):
        started = time.perf_counter()
        for _ in ds:
            pass
        per_image.append((time.perf_counter() - started) / len(bccd_images))
    return statistics.median(per_image)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200, help="synthetic images for the correctness check")
    parser.add_argument("--speed-images", type=int, default=96, help="BCCD images for the speed check (0: skip)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "keras_preprocessing_layers.json"))
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)

    candidates = {"keras": tf.function(keras_augmentation()), "ours": tf.function(our_augmentation)}
    result: dict[str, object] = {
        "command": " ".join(["python", "benchmarks/keras_preprocessing_layers.py", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "keras": keras.__version__,
        "correctness": {name: check_correctness(fn, args.images, seed=1) for name, fn in candidates.items()},
    }
    print(json.dumps(result["correctness"], indent=2))
    if args.speed_images:
        index = load_split(load_config(REPO / "configs" / "bccd.yaml").data, "train")
        examples = index.examples[: args.speed_images]
        images = [read_image(e.image_path, e.orientation) for e in examples]
        boxes = [tf.constant(np.asarray(e.boxes, np.float32).reshape(-1, 4)) for e in examples]
        ms = {name: 1000 * time_in_tf_data(fn, images, boxes, args.epochs) for name, fn in candidates.items()}
        result["ms_per_image"] = {name: round(value, 2) for name, value in ms.items()}
        print("ms per image:", result["ms_per_image"])
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
