"""Run a trained or exported CenterNet on images: one interface over ``.keras``, SavedModel and ``.tflite``.

Every detector takes an RGB ``uint8`` image ``[H, W, 3]`` of any size and returns :class:`Detections` in
that image's pixels with 0-based class ids, so ``predict.py``, the parity tests and the export benchmark
compare like with like. Other images are brought to that form by one rule for all three
(:func:`as_rgb_uint8`): grayscale and RGBA are accepted, a float image in 0-1 is scaled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from centernet_tf.data.letterbox import letterbox_array, letterbox_image
from centernet_tf.deploy.tta import detect_image, network_outputs
from centernet_tf.deploy.visualize import heatmap_overlay
from centernet_tf.labels import class_names_for
from centernet_tf.model.decode import CenterNetDecoder
from centernet_tf.model.detections import Detections


def _from_detection_api(outputs: dict[str, Any], height: float, width: float) -> Detections:
    """Object Detection API outputs (normalised ``ymin, xmin, ymax, xmax``, 1-based classes) -> pixels."""
    num = int(np.asarray(outputs["num_detections"]).reshape(-1)[0])
    boxes = np.asarray(outputs["detection_boxes"])[0, :num]
    return Detections(
        boxes=boxes[:, [1, 0, 3, 2]] * np.array([width, height, width, height], np.float32),
        scores=np.asarray(outputs["detection_scores"])[0, :num],
        classes=np.asarray(outputs["detection_classes"])[0, :num].astype(np.int32) - 1,
    )


def as_rgb_uint8(image: Any) -> np.ndarray:
    """The ``uint8 [H, W, 3]`` RGB image every detector runs on, or a ``ValueError`` that says what is wrong.

    Grayscale ``(H, W)`` / ``(H, W, 1)`` is repeated to three channels and RGBA loses its alpha. A float image
    whose values all lie in [0, 1] is taken as 0-1 and scaled to 0-255 (the network expects 0-255: unscaled it
    is an all-black picture with no detections); other floats and integers are taken as 0-255 (16-bit images as
    0-65535) and must be finite.
    """
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an image [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"empty image (shape {array.shape})")
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.number)):
        raise ValueError(f"expected a numeric image, got dtype {array.dtype}")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    elif array.shape[-1] == 4:
        array = array[..., :3]
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError("the image has non-finite (NaN or inf) pixels")
        if array.min() >= 0.0 and array.max() <= 1.0:
            array = array * 255.0
    elif array.dtype == np.uint16:
        array = array / 257.0
    return np.clip(np.round(array), 0, 255).astype(np.uint8)


class KerasDetector:
    """A :class:`~centernet_tf.model.centernet.CenterNet` (or a ``.keras`` file) plus its in-graph decoder.

    Without ``decoder``, the settings saved in the model (those of the run that trained it) decode.
    """

    def __init__(self, model: Any, decoder: CenterNetDecoder | None = None) -> None:
        from centernet_tf.model.centernet import decoder_for, load_centernet

        self.model = load_centernet(model) if isinstance(model, (str, Path)) else model
        #: The names saved in the model, else a ``labels.txt`` beside its file.
        self.class_names = getattr(self.model, "class_names", None) or (
            class_names_for(model) if isinstance(model, (str, Path)) else None
        )
        self.decoder = decoder or decoder_for(self.model)
        self.input_size = tuple(int(v) for v in self.model.input_shape[1:3])
        self._run = tf.function(self._detect)

    def _detect(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        return detect_image(self.model, self.decoder, image, self.input_size)

    def heatmap_overlay(self, image: np.ndarray) -> np.ndarray:
        """The letterboxed network input with the max-over-classes heatmap blended in red (``uint8``): where
        the model sees object centres, as the paper's figures show it."""
        letterboxed, _ = letterbox_image(tf.convert_to_tensor(as_rgb_uint8(image)), self.input_size)
        heatmap = network_outputs(self.model, letterboxed[None], self.decoder.flip_test)["heatmap"]
        return (heatmap_overlay(letterboxed[None], heatmap)[0].numpy() * 255).round().astype(np.uint8)

    def detect(self, image: np.ndarray) -> Detections:
        out = self._run(tf.convert_to_tensor(as_rgb_uint8(image)))
        num = int(out["num_detections"][0])
        return Detections(out["boxes"][0, :num].numpy(), out["scores"][0, :num].numpy(),
                          out["classes"][0, :num].numpy())


class SavedModelDetector:
    """A SavedModel from :func:`centernet_tf.deploy.export.export_saved_model` (only TensorFlow is needed to run it)."""

    def __init__(self, path: str | Path) -> None:
        self.loaded = tf.saved_model.load(str(path))
        self.class_names = class_names_for(path)
        self.serve = self.loaded.signatures["serving_default"]

    def detect(self, image: np.ndarray) -> Detections:
        image = as_rgb_uint8(image)
        outputs = self.serve(input_tensor=tf.convert_to_tensor(image[None]))
        return _from_detection_api({k: v.numpy() for k, v in outputs.items()}, image.shape[0], image.shape[1])


def tflite_interpreter(model: str | Path | bytes, num_threads: int | None = None) -> Any:
    """The LiteRT interpreter (``ai-edge-litert``) when installed, else ``tf.lite.Interpreter``.

    ``model`` is a ``.tflite`` path or the flatbuffer bytes.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    if isinstance(model, bytes):
        return Interpreter(model_content=model, num_threads=num_threads)
    return Interpreter(model_path=str(model), num_threads=num_threads)


class _LetterboxedDetector:
    """A fixed-size exported file (``.tflite``, ``.onnx``): the letterbox and its inverse here, the rest inside.

    The letterbox uses OpenCV when it is installed (:func:`letterbox_array`, no TensorFlow op per image),
    else a compiled TensorFlow function.
    """

    input_size: tuple[int, int]
    input_dtype: Any = np.float32

    def _set_up_letterbox(self) -> None:
        try:
            import cv2  # noqa: F401

            self._letterbox = lambda image: letterbox_array(image, self.input_size)
        except ImportError:
            # One compiled graph for any image size (eager ops cost ~7 ms per image).
            compiled = tf.function(
                lambda image: letterbox_image(image, self.input_size),
                input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)],
            )
            self._letterbox = lambda image: tuple(t.numpy() for t in compiled(tf.convert_to_tensor(image, tf.uint8)))

    def _run(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def detect(self, image: np.ndarray) -> Detections:
        image = as_rgb_uint8(image)
        letterboxed, letterbox = self._letterbox(image)
        pixels = letterboxed[None]
        if self.input_dtype == np.uint8:
            pixels = np.clip(np.round(pixels), 0, 255)
        found = _from_detection_api(self._run(pixels.astype(self.input_dtype, copy=False)), *self.input_size)
        # undo_letterbox in numpy: an eager TensorFlow call here cost milliseconds per image.
        scale, pad_x, pad_y = letterbox
        boxes = (found.boxes - np.array([pad_x, pad_y, pad_x, pad_y], np.float32)) / scale
        height, width = image.shape[:2]
        boxes = np.clip(boxes, 0.0, np.array([width, height, width, height], np.float32))
        return Detections(boxes, found.scores, found.classes)


class TFLiteDetector(_LetterboxedDetector):
    """A ``.tflite`` file from :func:`centernet_tf.deploy.export.export_tflite`."""

    def __init__(self, path: str | Path, num_threads: int | None = None) -> None:
        self.interpreter = tflite_interpreter(path, num_threads)
        self.class_names = class_names_for(path)
        self.runner = self.interpreter.get_signature_runner("serving_default")
        (name, detail), = self.runner.get_input_details().items()
        self.input_name, self.input_dtype = name, detail["dtype"]
        self.input_size = (int(detail["shape"][1]), int(detail["shape"][2]))
        self._set_up_letterbox()

    def _run(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        return self.runner(**{self.input_name: pixels})


class ONNXDetector(_LetterboxedDetector):
    """An ``.onnx`` file from :func:`centernet_tf.deploy.export_onnx.export_onnx`, run by ONNX Runtime on the CPU."""

    def __init__(self, path: str | Path, num_threads: int | None = None) -> None:
        try:
            import onnxruntime
        except ImportError as error:
            raise ImportError('running an .onnx file needs ONNX Runtime: pip install "centernet-tf[onnx]"') from error
        options = onnxruntime.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inside = self.session.get_modelmeta().custom_metadata_map.get("class_names")
        self.class_names = json.loads(inside) if inside else class_names_for(path)
        (model_input,) = self.session.get_inputs()
        self.input_name = model_input.name
        self.input_size = (int(model_input.shape[1]), int(model_input.shape[2]))
        self.output_names = [output.name for output in self.session.get_outputs()]
        self._set_up_letterbox()

    def _run(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(self.output_names, {self.input_name: pixels})))


def load_detector(path: str | Path, num_threads: int | None = None, decoder: CenterNetDecoder | None = None) -> Any:
    """``.keras`` file, SavedModel directory, ``.tflite`` or ``.onnx`` file -> a detector with ``detect(image)``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model not found: {path}")
    if path.is_dir() and (path / "saved_model.pb").exists():
        return SavedModelDetector(path)
    if path.suffix == ".tflite" and path.is_file():
        return TFLiteDetector(path, num_threads)
    if path.suffix == ".onnx" and path.is_file():
        return ONNXDetector(path, num_threads)
    if path.suffix == ".keras" and path.is_file():
        return KerasDetector(path, decoder)
    raise ValueError(f"{path}: expected a .keras file, a SavedModel directory, a .tflite or an .onnx file")
