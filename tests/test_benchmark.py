"""The benchmark command: every available format exported, scored with the same metric code and timed, in one
table; a format whose runtime is missing is a skipped row naming the extra."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import pytest
import yaml

from centernet_tf.cli import run_cli
from centernet_tf.config import load_config
from centernet_tf.model.centernet import build_centernet
from tests.test_unreadable_images import _voc


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model and its config.yaml over a 4-image VOC set, as a training run leaves them."""
    root = tmp_path_factory.mktemp("bench")
    _voc(root / "voc", {f"{i}.jpg": "JPEG" for i in range(4)})
    config = load_config(None, ["data.format=voc", f"data.root={root / 'voc'}", "data.train_split=null",
                                "data.val_split=null", "data.class_names=[cat]", "model.backbone=resnet10_slim",
                                "model.input_size=[64,64]", "eval.score_threshold=0.0", "eval.max_detections=5"])
    (root / "run").mkdir()
    (root / "run" / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
    keras.utils.set_random_seed(0)
    build_centernet(1, "resnet10_slim", (64, 64, 3), class_names=["cat"]).save(root / "run" / "model.keras")
    return root / "run"


def test_benchmark_writes_one_table_of_every_format_asked(run_folder: Path, capsys) -> None:
    from centernet_tf.commands.benchmark import main

    code = run_cli(main, ["--model", str(run_folder / "model.keras"), "--formats", "keras,tflite_fp32,onnx",
                          "--rounds", "1", "--timed-images", "2", "--threads", "1"])
    assert code == 0, capsys.readouterr().err
    result = json.loads((run_folder / "benchmark" / "benchmark.json").read_text())
    rows = result["rows"]
    assert list(rows) == ["keras", "tflite_fp32", "onnx"] and result["images"] == 4 and result["timed_images"] == 2
    assert rows["keras"]["speedup_vs_keras"] == 1.0 and rows["keras"]["size_mb"] is None
    for name in ("tflite_fp32", "onnx"):  # the same network and decoding: the same mAP, not flagged
        assert Path(rows[name]["file"]).is_file() and rows[name]["size_mb"] > 0
        assert rows[name]["mAP50"] == pytest.approx(rows["keras"]["mAP50"], abs=0.015) and not rows[name]["flagged"]
        assert rows[name]["ms_per_image"] > 0
    table = (run_folder / "benchmark" / "benchmark.md").read_text()
    assert table.startswith("| format | file size | mAP@0.5 | mAP@[.5:.95] | ms / image | speed-up vs Keras |")
    assert table.count("\n") == 5 and "| onnx | " in table and table in capsys.readouterr().out


def test_a_format_without_its_runtime_is_a_skipped_row(run_folder: Path, monkeypatch) -> None:
    import importlib.util

    from centernet_tf.evaluation.benchmark import markdown_table, run_benchmark
    from centernet_tf.data.loaders import load_split
    from centernet_tf.model.centernet import load_centernet

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    model = load_centernet(run_folder / "model.keras")
    index = load_split(load_config(run_folder / "config.yaml").data, "val")
    result = run_benchmark(model, model.decoder, index, run_folder / "skip", ("keras", "onnx"), rounds=1,
                           timed_images=1)
    assert result["rows"]["onnx"] == {"skipped": 'needs onnxruntime: pip install "centernet-tf[onnx]"'}
    assert '| onnx | skipped: needs onnxruntime: pip install "centernet-tf[onnx]" |' in markdown_table(result)
    with pytest.raises(ValueError, match="unknown format tflite_int4"):
        run_benchmark(model, model.decoder, index, run_folder / "skip", ("tflite_int4",))


def test_the_bfloat16_rows_run_where_the_machine_computes_it_and_are_skipped_elsewhere(run_folder: Path, monkeypatch) -> None:
    from centernet_tf.data.loaders import load_split
    from centernet_tf.deploy import bfloat16
    from centernet_tf.evaluation.benchmark import run_benchmark
    from centernet_tf.model.centernet import load_centernet

    model = load_centernet(run_folder / "model.keras")
    index = load_split(load_config(run_folder / "config.yaml").data, "val")
    wanted = ("keras", "keras_bfloat16", "saved_model_bfloat16")
    monkeypatch.setattr(bfloat16, "computes_bfloat16", lambda: True)
    built = []
    monkeypatch.setattr(bfloat16, "bfloat16_model", lambda m, build=bfloat16.bfloat16_model: built.append(1) or build(m))
    rows = run_benchmark(model, model.decoder, index, run_folder / "bf16", wanted, rounds=1, timed_images=1)["rows"]
    assert list(rows) == list(wanted) and len(built) == 1  # both bfloat16 rows use one twin
    for name in wanted[1:]:
        assert rows[name]["ms_per_image"] > 0 and rows[name]["mAP50"] == pytest.approx(rows["keras"]["mAP50"], abs=0.015)
    assert rows["saved_model_bfloat16"]["size_mb"] < 0.75 * run_benchmark(
        model, model.decoder, index, run_folder / "f32", ("saved_model",), rounds=1, timed_images=1,
    )["rows"]["saved_model"]["size_mb"]  # half the bytes per weight
    monkeypatch.setattr(bfloat16, "computes_bfloat16", lambda: False)
    rows = run_benchmark(model, model.decoder, index, run_folder / "none", wanted[1:], rounds=1, timed_images=1)["rows"]
    assert rows == {name: {"skipped": "no native bfloat16 here (a CPU with AVX512-BF16 or AMX, a GPU 8.0+)"} for name in wanted[1:]}
