"""The shape figures of ``benchmarks/fit_diagnostics.py``: log aspect / size and the cross-validated probe."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "fit_diagnostics.py"


@pytest.fixture(scope="module")
def diagnostics():
    spec = importlib.util.spec_from_file_location("fit_diagnostics", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_log_shape_by_hand(diagnostics) -> None:
    shape = diagnostics.log_shape(np.array([4.0, 3.0]), np.array([1.0, 3.0]))
    np.testing.assert_allclose(shape, [[np.log(4.0), np.log(2.0)], [0.0, np.log(3.0)]], rtol=1e-6)
    # a collapsed size (0) is clipped, not a -inf or NaN
    assert np.isfinite(diagnostics.log_shape(np.array([0.0]), np.array([2.0]))).all()


def test_probe_finds_a_linear_signal_and_not_noise(diagnostics) -> None:
    rng = np.random.RandomState(1)
    features = rng.normal(size=(200, 16))
    carried = features @ rng.normal(size=16) + 0.1 * rng.normal(size=200)
    assert diagnostics.cross_validated_ridge(features, carried) > 0.95
    # a target the features do not carry: the held-out folds show it (an in-sample fit would reach ~0.3 here)
    assert abs(diagnostics.cross_validated_ridge(features, rng.normal(size=200))) < 0.2


def test_correlation_of_a_constant_is_zero(diagnostics) -> None:
    # one predicted aspect for every box (the collapse the figure is for) must read 0, not NaN
    assert diagnostics.correlation(np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.5, 0.5])) == 0.0
    assert diagnostics.correlation(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0])) == pytest.approx(1.0)


def test_main_end_to_end_with_known_head_outputs(
    diagnostics, tmp_path: Path, monkeypatch, capsys, large_box_voc
) -> None:
    """The whole command on a VOC folder, with heads set by hand so every figure is known in advance."""
    from centernet_tf.model.centernet import build_centernet

    large_box_voc(tmp_path / "photos", count=12)  # 10 training photos, one 80 x 60 box each, 128 x 96 pixels
    model = build_centernet(1, "resnet10_slim", (64, 64, 3), neck="fpn", class_names=["box"])
    layer = model.head_output_layers
    # The letterbox halves 128 x 96 into 64 x 64 and the output stride is 4: each box is 10 x 7.5 output pixels.
    layer["wh"].set_weights([np.zeros_like(layer["wh"].kernel), np.array([10.0, 7.5], "float32")])
    layer["heatmap"].set_weights([np.zeros_like(layer["heatmap"].kernel), np.array([-3.0], "float32")])
    model.save(tmp_path / "model.keras")
    repo = _PATH.parents[1]
    monkeypatch.setattr("sys.argv", [
        "fit_diagnostics.py", "--model", str(tmp_path / "model.keras"),
        "--config", str(repo / "configs" / "photos.yaml"), "--set", f"data.root={tmp_path / 'photos'}",
        "--split", "train", "--probe", "--output", str(tmp_path / "d.json"),
    ])
    diagnostics.main()
    summary = json.loads((tmp_path / "d.json").read_text())
    assert summary == json.loads(capsys.readouterr().out)
    assert summary["objects"] == 10
    sigmoid = 1 / (1 + np.exp(3.0))
    assert summary["median_centre_score"] == pytest.approx(sigmoid, rel=1e-4)
    assert summary["share_centre_score_over_0.3"] == 0.0
    assert summary["mean_detections_iou50_per_object_score_over_0.1"] == 0.0  # every score is 0.047 < 0.1
    assert summary["median_size_ratio_predicted_to_true"] == pytest.approx(1.0, rel=1e-3)
    # one predicted shape for all boxes (and one true shape): no spread, and the correlation reads 0, not NaN
    assert summary["log_aspect_sd_predicted"] == pytest.approx(0.0, abs=1e-6)
    assert summary["log_aspect_correlation_predicted_true"] == 0.0
    probe = summary["probe_cross_validated_correlation"]
    assert list(probe)[-1] == "neck" and probe["neck"]["channels"] == 64  # fpn's stride-4 level
    assert len(probe) == len(model.part_outputs["backbone"]) + 1
    # every box has the same shape: nothing to probe for, read as 0 (NaN would not be valid JSON)
    assert {name: figures["log_aspect"] for name, figures in probe.items()} == {name: 0.0 for name in probe}
