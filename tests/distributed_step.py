"""One training step of a tiny CenterNet on a fixed global batch, on one device or mirrored over two logical
CPUs; prints the loss terms and writes the updated weights. Run by ``tests/test_distribute.py`` in a fresh
process, because logical devices must be configured before TensorFlow starts. ``tests/multi_worker.py`` takes
the same model and batch."""

from __future__ import annotations

import json
import sys

import keras
import numpy as np
import tensorflow as tf

from centernet_tf.model.centernet import build_centernet
from centernet_tf.model.targets import encode_targets, keras_targets
from centernet_tf.train.distribute import strategy_for

GLOBAL_BATCH, SIZE, CLASSES = 4, 64, 2


def batch() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Four images with 3, 0, 1 and 5 objects: replicas see different object counts."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (GLOBAL_BATCH, SIZE, SIZE, 3)).astype(np.float32)
    targets = []
    for count in (3, 0, 1, 5):
        xy = rng.uniform(4, 44, (count, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(8, 18, (count, 2))], axis=1).astype(np.float32)
        encoded = encode_targets(tf.constant(boxes.reshape(-1, 4)), tf.constant(rng.integers(0, CLASSES, count),
                                 tf.int32), (SIZE, SIZE), CLASSES, stride=4, max_objects=8)
        targets.append({k: v.numpy() for k, v in keras_targets(encoded).items()})
    return images, {k: np.stack([t[k] for t in targets]) for k in targets[0]}


def tiny_model(synchronized_batch_norm: bool) -> keras.Model:
    """The same start on every device and process (call it in the strategy's scope)."""
    keras.utils.set_random_seed(1)
    model = build_centernet(CLASSES, "resnet10_slim", (SIZE, SIZE, 3), synchronized_batch_norm=synchronized_batch_norm)
    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
    return model


def main(mode: str, output: str) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = strategy_for("none" if mode == "single" else "mirrored")
    with strategy.scope():
        # "mirrored_local_bn": each replica's BatchNorm on its own half batch, the control that must differ
        model = tiny_model(synchronized_batch_norm=mode == "mirrored")
    initial = [w.numpy() for w in model.weights]
    images, targets = batch()
    history = model.fit(tf.data.Dataset.from_tensors((images, targets)), epochs=1, verbose=0)
    np.savez(output, *[w.numpy() for w in model.weights], *initial)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                      **{k: float(v[-1]) for k, v in history.history.items()}}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
