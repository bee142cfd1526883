"""ONNX export: ONNX Runtime gives the Keras network's outputs (1e-4) and the same detections, for a small model
and each original arch family; the class names travel inside the file; predict.py takes .onnx files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip("tf2onnx", reason='ONNX export needs tf2onnx: pip install -e ".[onnx]"')
onnxruntime = pytest.importorskip("onnxruntime", reason='running .onnx files needs ONNX Runtime: pip install -e ".[onnx]"')

from centernet_tf.deploy.export_onnx import OPSET, export_onnx  # noqa: E402
from centernet_tf.deploy.inference import KerasDetector, ONNXDetector, load_detector  # noqa: E402
from centernet_tf.deploy.tta import network_outputs  # noqa: E402
from centernet_tf.model.centernet import build_centernet  # noqa: E402
from tests.test_export import CLASSES, ENV, REPO, _image, _like_a_trained_model  # noqa: E402


def _assert_same_detections_in_any_order(expected, actual, image_size: tuple[int, int]) -> None:
    """The export tolerance (scores within 1e-4, boxes within 1e-3 of the image size, same classes), matching
    detections one to one: ONNX Runtime's float rounding may swap two detections whose scores tie to 1e-6."""
    assert len(expected.scores) == len(actual.scores) > 0
    unmatched = list(range(len(actual.scores)))
    for box, score, cls in zip(expected.boxes, expected.scores, expected.classes):
        match = next((j for j in unmatched if actual.classes[j] == cls and abs(actual.scores[j] - score) <= 1e-4
                      and np.abs(actual.boxes[j] - box).max() <= 1e-3 * max(image_size)), None)
        assert match is not None, f"no ONNX detection matches class {cls}, score {score}, box {box}"
        unmatched.remove(match)


def _raw_onnx_outputs(model: keras.Model, pixels: np.ndarray) -> dict[str, np.ndarray]:
    """The network alone (normalisation to heads) through tf2onnx and ONNX Runtime, by the export's converter."""
    import tf2onnx

    spec = tf.TensorSpec([1, *pixels.shape[1:]], tf.float32, name="image")
    function = tf.function(lambda image: network_outputs(model, image, False), input_signature=[spec])
    proto, _ = tf2onnx.convert.from_function(function, input_signature=[spec], opset=OPSET)
    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, {"image": pixels})))


@pytest.mark.usefixtures("tiny_hourglass")
@pytest.mark.parametrize("backbone, neck", [
    ("resnet10_slim", "deconv3"),
    ("resnet18", "deconv3_256"),  # the original res_* archs
    ("dla34", "ida_up"),  # dlav0_34
    ("hourglass_tiny_test", "identity"),  # the hourglass: two stacks, the last one decoded
    ("resnet18", "dcn_deconv3"),  # resdcn_*: deformable convolution from gathers, no custom op
])
def test_onnx_runtime_gives_the_keras_outputs_and_detections(tmp_path: Path, backbone: str, neck: str) -> None:
    keras.utils.set_random_seed(5)
    size = (64, 96)
    # Scores below 1e-4 are left out: among them (1e-8 and less) which cells tie is float rounding, not the model.
    net = build_centernet(len(CLASSES), backbone, (*size, 3), neck=neck, head_batch_norm=False, head_conv=32,
                          decoder={"score_threshold": 1e-4, "max_detections": 20})
    rng = _like_a_trained_model(net)
    pixels = rng.uniform(0, 255, (1, *size, 3)).astype(np.float32)
    expected = {k: v.numpy() for k, v in network_outputs(net, tf.constant(pixels), False).items()}
    found = _raw_onnx_outputs(net, pixels)
    assert set(found) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(found[name], value, atol=1e-4, err_msg=name)

    path = export_onnx(net, tmp_path / "model.onnx", CLASSES)
    image = _image(7, (90, 130))
    detector = ONNXDetector(path, num_threads=1)
    _assert_same_detections_in_any_order(KerasDetector(net).detect(image), detector.detect(image), image.shape[:2])


def test_an_onnx_file_carries_its_class_names_and_nms(tmp_path: Path) -> None:
    keras.utils.set_random_seed(3)
    net = build_centernet(len(CLASSES), "resnet10_slim", (64, 96, 3),
                          decoder={"nms": True, "nms_iou_threshold": 0.3, "score_threshold": 0.05, "max_detections": 20})
    kernel, bias = net.head_output_layers["heatmap"].get_weights()
    net.head_output_layers["heatmap"].set_weights([kernel * 40.0, bias])  # spread the scores, as training does
    path = export_onnx(net, tmp_path / "a.onnx", CLASSES)
    (tmp_path / "a.labels.txt").unlink()  # the names inside the file are enough
    detector = load_detector(path)
    assert isinstance(detector, ONNXDetector) and detector.class_names == CLASSES
    import onnx

    proto = onnx.load(str(path))
    assert {p.key: json.loads(p.value) for p in proto.metadata_props}["class_names"] == CLASSES
    assert proto.opset_import[0].version == OPSET
    assert "NonMaxSuppression" in {node.op_type for node in proto.graph.node}
    image = _image(2)
    _assert_same_detections_in_any_order(KerasDetector(net).detect(image), detector.detect(image), image.shape[:2])


def test_export_and_predict_clis_take_onnx(tmp_path: Path) -> None:
    keras.utils.set_random_seed(3)
    net = build_centernet(len(CLASSES), "resnet10_slim", (64, 96, 3), class_names=CLASSES,
                          decoder={"score_threshold": 0.0, "max_detections": 5})
    net.save(tmp_path / "model.keras")
    from PIL import Image

    Image.fromarray(_image(4)).save(tmp_path / "a.jpg")
    for command in (
        ["export.py", "--model", str(tmp_path / "model.keras"), "--format", "onnx"],
        ["predict.py", "--model", str(tmp_path / "model.onnx"), "--input", str(tmp_path / "a.jpg"),
         "--output", str(tmp_path / "out"), "--score-threshold", "0"],
    ):
        done = subprocess.run([sys.executable, *command], cwd=REPO, capture_output=True, text=True, timeout=300,
                              env=ENV)
        assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert rows["class_names"] == CLASSES
    expected = KerasDetector(net).detect(np.asarray(Image.open(tmp_path / "a.jpg")))
    found = rows["images"]["a.jpg"]
    assert len(found) == len(expected.scores) == 5
    np.testing.assert_allclose([d["score"] for d in found], expected.scores, atol=1e-4)
