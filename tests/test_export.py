"""Export: SavedModel and TFLite give the detections of the Keras model; predict.py matches the evaluation path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from centernet_tf.deploy.export import export_saved_model, export_tflite, write_label_files
from centernet_tf.deploy.inference import Detections, KerasDetector, SavedModelDetector, TFLiteDetector, tflite_interpreter
from centernet_tf.model.centernet import build_centernet
from centernet_tf.model.deformable import DeformableConv2D

REPO = Path(__file__).resolve().parents[1]
INPUT = (64, 96)
CLASSES = ["Platelets", "RBC", "WBC"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return peaked_model()


def peaked_model() -> keras.Model:
    """A tiny CenterNet whose heatmap has clear, well separated peaks (so top-K order is not a matter of ties)."""
    keras.utils.set_random_seed(3)
    net = build_centernet(len(CLASSES), "resnet10_slim", (*INPUT, 3))
    # Larger random head weights spread the scores out, as training does.
    kernel, bias = net.get_layer("heatmap").get_weights()
    net.get_layer("heatmap").set_weights([kernel * 40.0, bias])
    return net


def _image(seed: int = 0, size: tuple[int, int] = (120, 170)) -> np.ndarray:
    """A smooth random picture (blurred noise) of a size other than the model input: letterbox in play."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size[0] // 10, size[1] // 10, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((size[1], size[0]), Image.BILINEAR))


def _assert_same_detections(expected: Detections, actual: Detections, image_size: tuple[int, int]) -> None:
    """The acceptance tolerance: boxes within 1e-3 of the image size, same classes, scores within 1e-4."""
    assert len(expected.scores) == len(actual.scores) > 0
    np.testing.assert_array_equal(expected.classes, actual.classes)
    np.testing.assert_allclose(actual.scores, expected.scores, atol=1e-4)
    np.testing.assert_allclose(actual.boxes, expected.boxes, atol=1e-3 * max(image_size))


def test_saved_model_reloads_in_a_process_that_imports_only_tensorflow(model: keras.Model, tmp_path: Path) -> None:
    export_dir = export_saved_model(model, tmp_path / "saved_model", CLASSES)
    image = _image()
    np.save(tmp_path / "image.npy", image)
    script = f"""
import sys
import numpy as np
import tensorflow as tf
serve = tf.saved_model.load({str(export_dir)!r}).signatures["serving_default"]
outputs = serve(input_tensor=tf.constant(np.load({str(tmp_path / 'image.npy')!r})[None]))
assert not [m for m in sys.modules if m.startswith("centernet_tf")], "the project was imported"
np.savez({str(tmp_path / 'out.npz')!r}, **{{k: v.numpy() for k, v in outputs.items()}})
"""
    # A clean environment: run from elsewhere, with nothing of the project on the path.
    env = {k: v for k, v in ENV.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = dict(np.load(tmp_path / "out.npz"))

    assert set(out) == {"detection_boxes", "detection_scores", "detection_classes", "num_detections"}
    assert out["detection_boxes"].shape == (1, 100, 4)
    assert out["detection_scores"].shape == out["detection_classes"].shape == (1, 100)
    assert out["num_detections"].shape == (1,)
    assert all(v.dtype == np.float32 for v in out.values())

    expected = KerasDetector(model).detect(image)
    num = int(out["num_detections"][0])
    height, width = image.shape[:2]
    yx = out["detection_boxes"][0, :num]
    assert (yx >= 0).all() and (yx <= 1).all()
    actual = Detections(yx[:, [1, 0, 3, 2]] * [width, height, width, height], out["detection_scores"][0, :num],
                        out["detection_classes"][0, :num].astype(np.int32) - 1)  # 1-based in the export
    _assert_same_detections(expected, actual, image.shape[:2])
    assert (export_dir / "labels.txt").read_text().splitlines() == CLASSES


def test_label_files(tmp_path: Path) -> None:
    write_label_files(tmp_path, ["cat", "dog's toy"])
    assert (tmp_path / "labels.txt").read_text() == "cat\ndog's toy\n"
    assert (tmp_path / "label_map.pbtxt").read_text() == (
        "item {\n  id: 1\n  name: 'cat'\n  display_name: 'cat'\n}\n"
        "item {\n  id: 2\n  name: 'dog\\'s toy'\n  display_name: 'dog\\'s toy'\n}\n"
    )


def test_label_files_escape_quotes_and_backslashes_and_refuse_newlines(tmp_path: Path) -> None:
    from google.protobuf import text_format

    names = ["it's", 'say "hi"', "back\\slash", "naïve"]
    write_label_files(tmp_path, names)
    assert (tmp_path / "labels.txt").read_text(encoding="utf-8").splitlines() == names
    lines = (tmp_path / "label_map.pbtxt").read_text(encoding="utf-8").splitlines()
    parsed = [text_format.Tokenizer([line.split(": ", 1)[1]]).ConsumeString() for line in lines if "  name: " in line]
    assert parsed == names  # what an Object Detection API reader gets back
    with pytest.raises(ValueError, match="non-empty single lines"):
        write_label_files(tmp_path, ["two\nlines"])


def _op_names(path: Path) -> set[str]:
    return {op["op_name"] for op in tflite_interpreter(path)._get_ops_details()}


def _builtin_ops(path: Path) -> tuple[dict[int, dict], list[dict]]:
    """The file's tensors by index and its ops, after checking every op is a TFLite builtin."""
    interpreter = tflite_interpreter(path)
    ops = interpreter._get_ops_details()
    assert not [op for op in ops if op["op_name"].startswith("Flex") or op["op_name"] == "CUSTOM"]
    return {t["index"]: t for t in interpreter.get_tensor_details()}, ops


def test_tflite_fp32_matches_keras_and_uses_builtin_ops_only(model: keras.Model, tmp_path: Path) -> None:
    path = export_tflite(model, tmp_path / "model.tflite", CLASSES, "fp32")
    ops = _op_names(path)
    assert {"CONV_2D", "TRANSPOSE_CONV", "MAX_POOL_2D", "TOPK_V2"} <= ops
    assert not [op for op in ops if op.startswith("Flex") or op == "CUSTOM"]
    detector = TFLiteDetector(path, num_threads=1)
    assert detector.input_dtype == np.float32 and detector.input_size == INPUT
    keras_detector = KerasDetector(model)
    for seed, size in ((1, (120, 170)), (2, (64, 96)), (3, (300, 90))):
        image = _image(seed, size)
        _assert_same_detections(keras_detector.detect(image), detector.detect(image), size)
    # Without OpenCV the detector letterboxes with TensorFlow: the same detections.
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "cv2", None)  # import cv2 -> ImportError
        without_opencv = TFLiteDetector(path, num_threads=1)
    image = _image(1, (120, 170))
    _assert_same_detections(keras_detector.detect(image), without_opencv.detect(image), image.shape[:2])
    saved = SavedModelDetector(export_saved_model(model, tmp_path / "saved_model", CLASSES))
    image = _image(4)
    _assert_same_detections(keras_detector.detect(image), saved.detect(image), image.shape[:2])


def test_tflite_int8_runs_the_network_in_int8_and_decodes_in_float(model: keras.Model, tmp_path: Path) -> None:
    calibration = [np.asarray(tf.image.resize(_image(s), INPUT)) for s in range(8)]
    path = export_tflite(model, tmp_path / "int8.tflite", CLASSES, "int8", representative_images=calibration)
    tensors, ops = _builtin_ops(path)
    convolutions = [op for op in ops if op["op_name"] in ("CONV_2D", "TRANSPOSE_CONV")]
    float_convs = []
    for op in convolutions:
        types = {tensors[i]["dtype"] for i in op["inputs"] if i >= 0}
        if types <= {np.int8, np.int32}:
            continue  # int8 activations and weights (no hybrid, dynamic-range kernels)
        assert types == {np.float32}, op
        float_convs.append(tensors[op["outputs"][0]]["name"].split(";")[0])
    # Only the three 1x1 head outputs stay float; the backbone and the upsampling decoder are int8.
    assert len(float_convs) == 3 and all(any(h in n for h in ("heatmap", "/wh", "offset")) for n in float_convs)
    assert len(convolutions) - len(float_convs) >= 15
    assert sum(op["op_name"] == "TRANSPOSE_CONV" for op in convolutions) == 3
    # The decoding runs in float: top-K over float scores, boxes not on an int8 grid.
    topk = next(op for op in ops if op["op_name"] == "TOPK_V2")
    assert tensors[topk["inputs"][0]]["dtype"] == np.float32

    detector = TFLiteDetector(path, num_threads=1)
    image = _image()
    found, reference = detector.detect(image), KerasDetector(model).detect(image)
    assert len(found.scores) > 0 and np.isfinite(found.boxes).all()
    # The sigmoid's scores reach the peak test and top-K in float, not through an int8 round trip, which would
    # put them on a 1/256 grid (ties between a peak and its neighbours: duplicate detections).
    producers = {int(op["outputs"][0]): op["op_name"] for op in ops}
    peak_pool = next(op for op in ops if op["op_name"] == "MAX_POOL_2D" and tensors[op["inputs"][0]]["dtype"] == np.float32)
    assert producers[int(peak_pool["inputs"][0])] == "LOGISTIC"
    assert np.abs(found.scores * 256 - np.round(found.scores * 256)).max() > 1e-3
    # Quantised, not identical; but the strongest detection is still found, close to where Keras puts it.
    match = np.abs(found.boxes - reference.boxes[0]).max(axis=1).argmin()
    assert found.classes[match] == reference.classes[0]
    assert np.abs(found.boxes[match] - reference.boxes[0]).max() < 0.05 * max(image.shape[:2])
    with pytest.raises(ValueError, match="representative_images"):
        export_tflite(model, tmp_path / "x.tflite", CLASSES, "int8")
    with pytest.raises(ValueError, match="quantize"):
        export_tflite(model, tmp_path / "x.tflite", CLASSES, "dynamic")


def _like_a_trained_model(net: keras.Model) -> np.random.Generator:
    """Spread the heatmap's scores (as training does) and give deformable convolutions real offsets (a new
    layer's are all zero); the generator that drew them, to draw more."""
    kernel, bias = net.head_output_layers["heatmap"].get_weights()
    net.head_output_layers["heatmap"].set_weights([kernel * 40.0, bias])
    rng = np.random.default_rng(0)
    for layer in net.layers:
        if isinstance(layer, DeformableConv2D):
            kernel, bias = layer.conv_offset_mask.get_weights()
            layer.conv_offset_mask.set_weights([rng.normal(0, 0.05, kernel.shape), rng.normal(0, 1.5, bias.shape)])
    return rng


@pytest.mark.usefixtures("tiny_hourglass")
@pytest.mark.parametrize("backbone, neck, size, check_int8", [
    ("dla34", "ida_up", (64, 96), True),
    ("resnet18", "deconv3_256", (64, 96), True),
    ("hourglass_tiny_test", "identity", (64, 96), True),
    # The deformable archs: dla_34, resdcn_*. int8 of a deformable layer is checked once, on the cheaper one
    # (calibrating DLA-34's deformable neck takes 48 s of the suite).
    ("dla34", "dla_up_dcn", (64, 96), False),
    ("resnet18", "dcn_deconv3", (64, 96), True),
])
def test_original_archs_export_with_parity(
    tmp_path: Path, backbone: str, neck: str, size: tuple[int, int], check_int8: bool
) -> None:
    """Every original-arch part exports: SavedModel (any size) and TFLite fp32 give Keras' detections, int8 runs
    on builtin ops only with its int8 network and float decoding."""
    keras.utils.set_random_seed(5)
    net = build_centernet(len(CLASSES), backbone, (*size, 3), neck=neck, head_batch_norm=False, head_conv=32,
                          decoder={"score_threshold": 0.0, "max_detections": 20})
    _like_a_trained_model(net)
    keras_detector = KerasDetector(net)
    image = _image(7, (90, 130))
    expected = keras_detector.detect(image)
    saved = SavedModelDetector(export_saved_model(net, tmp_path / "saved_model", CLASSES))
    _assert_same_detections(expected, saved.detect(image), image.shape[:2])
    fp32 = export_tflite(net, tmp_path / "fp32.tflite", CLASSES, "fp32")
    assert not [op for op in _op_names(fp32) if op.startswith("Flex") or op == "CUSTOM"]
    _assert_same_detections(expected, TFLiteDetector(fp32, num_threads=1).detect(image), image.shape[:2])
    if not check_int8:
        return
    calibration = [np.asarray(tf.image.resize(_image(s), size)) for s in range(4)]
    int8 = export_tflite(net, tmp_path / "int8.tflite", CLASSES, "int8", representative_images=calibration)
    tensors, ops = _builtin_ops(int8)
    convs = [op for op in ops if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV")]
    float_convs = [op for op in convs if {tensors[i]["dtype"] for i in op["inputs"] if i >= 0} == {np.float32}]
    assert len(float_convs) == 3 and len(convs) > 20  # only the last stack's three 1x1 head outputs are float
    found = TFLiteDetector(int8, num_threads=1).detect(image)
    assert len(found.scores) > 0 and np.isfinite(found.boxes).all()


def test_flip_test_exports_to_saved_model_and_tflite(model: keras.Model, tmp_path: Path) -> None:
    from centernet_tf.model.centernet import decoder_for

    flip = decoder_for(model, {"flip_test": True})
    keras_flip, keras_plain = KerasDetector(model, flip), KerasDetector(model)
    image = _image(5)
    expected = keras_flip.detect(image)
    assert not np.allclose(expected.scores[:5], keras_plain.detect(image).scores[:5])  # the flip test changes them
    saved = SavedModelDetector(export_saved_model(model, tmp_path / "saved_model", CLASSES, flip))
    _assert_same_detections(expected, saved.detect(image), image.shape[:2])
    path = export_tflite(model, tmp_path / "flip.tflite", CLASSES, "fp32", decoder=flip)
    _assert_same_detections(expected, TFLiteDetector(path, num_threads=1).detect(image), image.shape[:2])


def test_every_detector_takes_grayscale_rgba_and_float_images_by_one_rule(model: keras.Model, tmp_path: Path) -> None:
    """Grayscale (H, W) and (H, W, 1), RGBA and a float image in 0-1 give the detections of the same RGB uint8
    image, in all three runtimes; an empty or two-channel image is a clear error."""
    detectors = {
        "keras": KerasDetector(model),
        "saved_model": SavedModelDetector(export_saved_model(model, tmp_path / "saved_model", CLASSES)),
        "tflite": TFLiteDetector(export_tflite(model, tmp_path / "m.tflite", CLASSES, "fp32"), num_threads=1),
    }
    rgb = _image(6)
    gray = rgb[..., 0]
    variants = {
        "gray_2d": (gray, np.repeat(gray[..., None], 3, axis=-1)),
        "gray_1_channel": (gray[..., None], np.repeat(gray[..., None], 3, axis=-1)),
        "rgba": (np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=-1), rgb),
        "float_0_1": (rgb.astype(np.float32) / 255.0, rgb),
        "float_0_255": (rgb.astype(np.float64), rgb),
    }
    for runtime, detector in detectors.items():
        for name, (image, equivalent) in variants.items():
            expected = detector.detect(equivalent)
            got = detector.detect(image)
            assert len(got.scores) > 0, (runtime, name)
            np.testing.assert_array_equal(got.classes, expected.classes, err_msg=f"{runtime} {name}")
            np.testing.assert_allclose(got.boxes, expected.boxes, atol=1e-4, err_msg=f"{runtime} {name}")
        with pytest.raises(ValueError, match=r"empty image \(shape \(0, 5, 3\)\)"):
            detector.detect(np.zeros((0, 5, 3), np.uint8))
        with pytest.raises(ValueError, match=r"expected an image \[H, W\].*got shape \(4, 4, 2\)"):
            detector.detect(np.zeros((4, 4, 2), np.uint8))
        with pytest.raises(ValueError, match="non-finite"):
            detector.detect(np.full((8, 8, 3), np.nan, np.float32))


def test_tflite_export_with_nms_runs_builtin_ops_and_matches_keras(model: keras.Model, tmp_path: Path) -> None:
    """eval.nms: true used to make the TFLite export fail (CombinedNonMaxSuppression is not a builtin)."""
    from centernet_tf.model.centernet import decoder_for

    keras.utils.set_random_seed(3)
    model = build_centernet(len(CLASSES), "resnet10_slim", (*INPUT, 3))
    for head, scale, shift in (("heatmap", 400.0, 0.0), ("wh", 100.0, 4.0)):  # spread scores; boxes of ~16 px
        kernel, bias = model.head_output_layers[head].get_weights()
        model.head_output_layers[head].set_weights([kernel * scale, bias + shift])
    nms = decoder_for(model, {"nms": True, "nms_iou_threshold": 0.3, "score_threshold": 0.05})
    path = export_tflite(model, tmp_path / "nms.tflite", CLASSES, "fp32", decoder=nms)
    ops = _op_names(path)
    assert "NON_MAX_SUPPRESSION_V5" in ops and not [op for op in ops if op.startswith("Flex") or op == "CUSTOM"]
    keras_detector = KerasDetector(model, nms)
    tflite_detector = TFLiteDetector(path, num_threads=1)
    for seed in (1, 2):
        image = _image(seed)
        _assert_same_detections(keras_detector.detect(image), tflite_detector.detect(image), image.shape[:2])
    calibration = [np.asarray(tf.image.resize(_image(s), INPUT)) for s in range(4)]
    int8 = export_tflite(model, tmp_path / "nms_int8.tflite", CLASSES, "int8", representative_images=calibration,
                         decoder=nms)
    assert "NON_MAX_SUPPRESSION_V5" in _op_names(int8)
    assert len(TFLiteDetector(int8, num_threads=1).detect(_image(1)).scores) > 0


def test_tflite_fp16_stores_half_weights_and_matches_keras(model: keras.Model, tmp_path: Path) -> None:
    fp32 = export_tflite(model, tmp_path / "fp32.tflite", CLASSES, "fp32")
    fp16 = export_tflite(model, tmp_path / "fp16.tflite", CLASSES, "fp16")
    tensors = tflite_interpreter(fp16).get_tensor_details()
    assert sum(t["dtype"] == np.float16 for t in tensors) >= 20  # the convolution weights
    assert fp16.stat().st_size < 0.6 * fp32.stat().st_size
    assert not [op for op in _op_names(fp16) if op.startswith("Flex") or op == "CUSTOM"]
    image = _image(3)
    expected, found = KerasDetector(model).detect(image), TFLiteDetector(fp16, num_threads=1).detect(image)
    # float16 weights: the strongest detections stay, within a pixel and 1e-2 in score
    np.testing.assert_array_equal(found.classes[:5], expected.classes[:5])
    np.testing.assert_allclose(found.scores[:5], expected.scores[:5], atol=1e-2)
    np.testing.assert_allclose(found.boxes[:5], expected.boxes[:5], atol=1.0)


def test_giou_ttf_model_exports_with_parity_and_its_flip_test(tmp_path: Path) -> None:
    """The 4-distance box head decodes the same in Keras, the SavedModel and TFLite fp32, flip test included."""
    from centernet_tf.model.centernet import decoder_for

    keras.utils.set_random_seed(6)
    net = build_centernet(len(CLASSES), "resnet10_slim", (64, 96, 3), loss={"box": "giou_ttf"},
                          decoder={"score_threshold": 0.0, "max_detections": 20, "flip_test": True})
    kernel, bias = net.head_output_layers["heatmap"].get_weights()
    net.head_output_layers["heatmap"].set_weights([kernel * 40.0, bias])
    kernel, bias = net.head_output_layers["wh"].get_weights()
    net.head_output_layers["wh"].set_weights([kernel * 100.0, bias + 2.0])  # sides some 8-16 px away
    image = _image(8, (90, 130))
    expected = KerasDetector(net).detect(image)
    plain = KerasDetector(net, decoder_for(net, {"flip_test": False})).detect(image)
    assert np.ptp(expected.boxes[:, 2] - expected.boxes[:, 0]) > 1.0  # real, varied box widths
    assert not np.allclose(expected.boxes[:5], plain.boxes[:5])  # the flip test changes them
    saved = SavedModelDetector(export_saved_model(net, tmp_path / "saved_model", CLASSES))
    _assert_same_detections(expected, saved.detect(image), image.shape[:2])
    fp32 = export_tflite(net, tmp_path / "fp32.tflite", CLASSES, "fp32")
    assert not [op for op in _op_names(fp32) if op.startswith("Flex") or op == "CUSTOM"]
    _assert_same_detections(expected, TFLiteDetector(fp32, num_threads=1).detect(image), image.shape[:2])
