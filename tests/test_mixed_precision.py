"""Mixed precision: half-precision compute, float32 heads and losses, and a float32 model on disk."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from centernet_tf.config import ConfigError, load_config
from centernet_tf.model.centernet import load_centernet
from centernet_tf.train.build import float32_model, model_from_config
from centernet_tf.model.policy import dtype_policy

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("precision, compute", [("bfloat16", "bfloat16"), ("float16", "float16")])
def test_layers_compute_in_half_precision_and_the_outputs_stay_float32(precision: str, compute: str) -> None:
    config = load_config(None, ["model.backbone=resnet10_slim", "model.input_size=[64,64]",
                                f"train.mixed_precision={precision}"])
    with dtype_policy(f"mixed_{precision}"):
        model = model_from_config(config, ["a", "b"])
    assert keras.config.dtype_policy().name == "float32"  # restored
    assert model.backbone.get_layer("stem_conv").compute_dtype == compute
    outputs = model(np.zeros((1, 64, 64, 3), np.float32))
    assert {v.dtype.name for v in outputs.values()} == {"float32"}
    twin = float32_model(config, model)
    assert twin.backbone.get_layer("stem_conv").compute_dtype == "float32"
    for a, b in zip(twin.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_bfloat16_run_trains_and_saves_a_float32_model(tmp_path: Path) -> None:
    args = [sys.executable, str(REPO / "train.py"), "--run-dir", str(tmp_path / "run")]
    for override in ("model.backbone=resnet10_slim", "model.input_size=[64,64]", "data.shapes_num_train=16",
                     "data.shapes_num_val=4", "data.shapes_image_size=[64,64]", f"data.shapes_dir={tmp_path / 's'}",
                     "train.epochs=1", "train.steps_per_epoch=2", "train.batch_size=4", "train.jit_compile=false",
                     "train.mixed_precision=bfloat16", "eval.every_n_epochs=1"):
        args += ["--set", override]
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("model.keras", "best_model.keras"):
        model = load_centernet(tmp_path / "run" / name)
        assert {layer.compute_dtype for layer in model.backbone.layers if layer.weights} == {"float32"}


def test_an_unknown_precision_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="train.mixed_precision must be none, bfloat16, float16 or auto"):
        load_config(None, ["train.mixed_precision=int8"])


def test_auto_precision_is_bfloat16_only_where_the_cpu_computes_it(monkeypatch) -> None:
    from centernet_tf.train import precision

    monkeypatch.setattr(precision.tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setattr(precision, "_cpu_computes_bfloat16", lambda: True)
    assert precision.resolve_mixed_precision("auto") == "bfloat16"
    monkeypatch.setattr(precision, "_cpu_computes_bfloat16", lambda: False)
    assert precision.resolve_mixed_precision("auto") == "none"
    assert precision.resolve_mixed_precision("float16") == "float16"  # an explicit choice stays


def test_auto_settings_are_valid_config_values_and_others_are_not() -> None:
    config = load_config(None, ["train.jit_compile=auto", "train.mixed_precision=auto", "data.image_check=header"])
    assert (config.train.jit_compile, config.train.mixed_precision) == ("auto", "auto")
    for override in ("train.jit_compile=sometimes", "train.mixed_precision=int8", "data.image_check=skim",
                     "data.check_workers=0"):
        with pytest.raises(ConfigError):
            load_config(None, [override])
