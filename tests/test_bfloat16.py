"""bfloat16 inference: a twin with bfloat16 weights and arithmetic and float32 heads and decoding, its
SavedModel and ``export.py --precision bfloat16`` (the benchmark rows: ``test_benchmark.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from centernet_tf.deploy.bfloat16 import bfloat16_model
from centernet_tf.deploy.export import export_saved_model
from centernet_tf.deploy.inference import KerasDetector, SavedModelDetector
from centernet_tf.deploy.tta import network_outputs
from centernet_tf.model.centernet import build_centernet
from tests.test_export import CLASSES, ENV, REPO, _image, _like_a_trained_model


def _net() -> keras.Model:
    keras.utils.set_random_seed(5)
    net = build_centernet(len(CLASSES), "resnet18", (64, 96, 3), class_names=CLASSES,
                          decoder={"score_threshold": 0.05, "max_detections": 10})
    _like_a_trained_model(net)
    return net


def test_the_twin_computes_in_bfloat16_and_gives_the_float32_maps_to_bfloat16_precision() -> None:
    net = _net()
    twin = bfloat16_model(net)
    kernels = {layer.name: layer.kernel.dtype for layer in twin.backbone.layers if hasattr(layer, "kernel")}
    assert set(kernels.values()) == {"bfloat16"} and len(kernels) == 20  # every backbone convolution
    assert all(layer.dtype_policy.name == "float32" for layer in twin.head_output_layers.values())
    pixels = tf.constant(np.random.default_rng(0).uniform(0, 255, (1, 64, 96, 3)), tf.float32)
    expected, found = network_outputs(net, pixels, False), network_outputs(twin, pixels, False)
    for name in ("heatmap", "wh", "offset"):
        assert found[name].dtype == tf.float32
        # bfloat16 keeps 8 significant bits (a relative step of 2^-8 = 0.4 %); 20 layers of rounding add up.
        scale = float(tf.reduce_max(tf.abs(expected[name])))
        assert 0 < float(tf.reduce_max(tf.abs(found[name] - expected[name]))) < 0.05 * scale, name
    assert net.backbone.layers[3].kernel.dtype == "float32"  # the original is untouched


def test_the_bfloat16_saved_model_gives_the_twins_detections_and_the_cli_writes_it(tmp_path: Path) -> None:
    net = _net()
    twin = bfloat16_model(net)
    image = _image(7, (90, 130))
    expected = KerasDetector(twin).detect(image)
    saved = SavedModelDetector(export_saved_model(twin, tmp_path / "bf16", CLASSES))
    found = saved.detect(image)
    assert len(found.scores) == len(expected.scores) > 0
    np.testing.assert_array_equal(found.classes, expected.classes)
    np.testing.assert_allclose(found.scores, expected.scores, atol=1e-3)
    # Close to the float32 model's own detections: the same top detection.
    plain = KerasDetector(net).detect(image)
    assert plain.classes[0] == found.classes[0] and abs(plain.scores[0] - found.scores[0]) < 0.02
    net.save(tmp_path / "model.keras")
    done = subprocess.run([sys.executable, "export.py", "--model", str(tmp_path / "model.keras"), "--format",
                           "saved_model", "--precision", "bfloat16"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=ENV)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "model_saved_model_bfloat16" / "saved_model.pb").is_file()
    refused = subprocess.run([sys.executable, "export.py", "--model", str(tmp_path / "model.keras"), "--format",
                              "tflite", "--precision", "bfloat16"], cwd=REPO, capture_output=True, text=True,
                             timeout=300, env=ENV)
    assert refused.returncode == 2 and "--precision applies to --format saved_model only" in refused.stderr

