"""Export a trained CenterNet as a SavedModel or a TFLite file with pre- and post-processing in the graph.

Both formats answer with the four outputs that clients of the TensorFlow Object Detection API already read:

* ``detection_boxes`` ``[1, K, 4]`` float32: ``ymin, xmin, ymax, xmax`` normalised to ``[0, 1]``;
* ``detection_scores`` ``[1, K]`` float32, sorted, 0 past ``num_detections``;
* ``detection_classes`` ``[1, K]`` float32: **1-based** class ids as in ``label_map.pbtxt`` (id ``i + 1`` is
  line ``i`` of ``labels.txt``), 0 past ``num_detections``;
* ``num_detections`` ``[1]`` float32.

The SavedModel's ``serving_default`` takes a ``uint8`` image ``[1, H, W, 3]`` of any size: letterbox,
normalisation, network and decoding all run inside, and boxes are normalised to that original image.
A TFLite file has the fixed input size of the model config (``[1, H, W, 3]``, float32 RGB 0-255); the caller
letterboxes (see :mod:`centernet_tf.deploy.inference`) and boxes are normalised to that input.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from centernet_tf.deploy.tta import detect_image, network_outputs
from centernet_tf.files import atomic_write
from centernet_tf.labels import with_labels_metadata, write_label_files
from centernet_tf.model.centernet import decoder_for
from centernet_tf.model.decode import CenterNetDecoder
from centernet_tf.progress import progress

logger = logging.getLogger(__name__)

OUTPUT_KEYS = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")
QUANTIZATIONS = ("fp32", "fp16", "int8")
SIGNATURE = "serving_default"


def model_input_size(model: keras.Model) -> tuple[int, int]:
    height, width = model.input_shape[1:3]
    if height is None or width is None:
        raise ValueError("the model has no fixed input size; build it with input_shape=(H, W, 3)")
    return int(height), int(width)


def detection_api_outputs(detections: dict[str, tf.Tensor], height: Any, width: Any) -> dict[str, tf.Tensor]:
    """Decoder output (``x1, y1, x2, y2`` pixels of a ``height x width`` image) -> Object Detection API outputs."""
    size = tf.cast(tf.stack([height, width, height, width]), tf.float32)
    boxes = tf.gather(detections["boxes"], [1, 0, 3, 2], axis=-1) / size
    valid = detections["classes"] >= 0
    return {
        "detection_boxes": tf.clip_by_value(boxes, 0.0, 1.0),
        "detection_scores": detections["scores"],
        "detection_classes": tf.where(valid, tf.cast(detections["classes"] + 1, tf.float32), 0.0),
        "num_detections": tf.cast(detections["num_detections"], tf.float32),
    }


def any_size_detection_fn(model: keras.Model, decoder: CenterNetDecoder) -> Callable[[tf.Tensor], dict]:
    """``uint8 [1, H, W, 3]`` of any size -> letterbox -> network -> decode -> normalised boxes."""
    input_size = model_input_size(model)

    def detect(input_tensor: tf.Tensor) -> dict[str, tf.Tensor]:
        image = input_tensor[0]
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        return detection_api_outputs(detect_image(model, decoder, image, input_size), height, width)

    return detect


def fixed_size_detection_fn(model: keras.Model, decoder: CenterNetDecoder) -> Callable[[tf.Tensor], dict]:
    """``[1, H, W, 3]`` at the model's input size (already letterboxed) -> network -> decode -> normalised boxes."""
    height, width = model_input_size(model)
    if decoder.test_scales != (1.0,):
        logger.warning("A fixed-size export runs one letterboxed input: test_scales %s are not applied "
                       "(the flip test is)", list(decoder.test_scales))

    def detect(image: tf.Tensor) -> dict[str, tf.Tensor]:
        outputs = network_outputs(model, image, decoder.flip_test)
        return detection_api_outputs(decoder(outputs), height, width)

    return detect


def export_archive(model: keras.Model, fn: Callable, spec: tf.TensorSpec) -> keras.export.ExportArchive:
    """``fn`` over ``model`` as the ``serving_default`` endpoint of a SavedModel archive (the TFLite source too)."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name=SIGNATURE, fn=fn, input_signature=[spec])
    return archive


def export_saved_model(
    model: keras.Model, output_dir: str | Path, class_names: Iterable[str], decoder: CenterNetDecoder | None = None
) -> Path:
    """Write a SavedModel whose ``serving_default`` takes ``uint8 [1, None, None, 3]``, plus the label files."""
    output_dir = Path(output_dir)
    decoder = decoder or decoder_for(model)
    spec = tf.TensorSpec([1, None, None, 3], tf.uint8, name="input_tensor")
    if output_dir.is_file():
        raise ValueError(f"{output_dir} is a file: a SavedModel is a folder; choose another output")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not (output_dir / "saved_model.pb").is_file():
        raise ValueError(f"{output_dir} is a folder with other files in it, not a SavedModel: choose another output")
    # Written beside, then swapped in: a failed export leaves the previous SavedModel (or nothing) behind.
    partial = output_dir.with_name(f".{output_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        export_archive(model, any_size_detection_fn(model, decoder), spec).write_out(str(partial), verbose=False)
        write_label_files(partial, class_names)
        if output_dir.exists():
            old = output_dir.with_name(f".{output_dir.name}.old-{os.getpid()}")
            os.replace(output_dir, old)
            try:
                os.replace(partial, output_dir)
            except OSError:
                os.replace(old, output_dir)  # the previous SavedModel back in its place
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(partial, output_dir)
    except OSError as error:
        raise OSError(error.errno, f"could not write {output_dir}: {error.strerror or error}") from error
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    logger.info("Wrote SavedModel %s", output_dir)
    return output_dir


def export_tflite(
    model: keras.Model,
    output_path: str | Path,
    class_names: Iterable[str],
    quantize: str = "fp32",
    representative_images: Iterable[np.ndarray] | None = None,
    decoder: CenterNetDecoder | None = None,
) -> Path:
    """Write a TFLite file with normalisation and decoding inside (built-in ops only), plus the label files.

    ``fp32``: float. ``fp16``: float16 weights (computed in float32 where the device has no fp16 kernels).
    ``int8``: post-training integer quantisation calibrated on ``representative_images`` (letterboxed
    ``[H, W, 3]`` arrays at the model's input size, e.g. from :func:`representative_images`): every layer of
    the backbone and the upsampling decoder runs in int8, while the three 1x1 head outputs, the sigmoid and
    the box decoding stay float (see :func:`_selectively_quantized`). Dynamic-range quantisation is
    deliberately not offered: its hybrid kernels made the ``Conv2DTranspose`` decoder far slower than float.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZATIONS)}, got {quantize!r}")
    images = None
    if quantize == "int8":
        images = [np.asarray(image, np.float32)[None] for image in (representative_images or [])]
        if not images:
            raise ValueError("int8 quantisation needs representative_images (real training images)")
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    decoder = decoder or decoder_for(model)
    height, width = model_input_size(model)
    spec = tf.TensorSpec([1, height, width, 3], tf.float32, name="image")
    with tempfile.TemporaryDirectory() as tmp:
        export_archive(model, fixed_size_detection_fn(model, decoder), spec).write_out(tmp, verbose=False)

        def converter() -> tf.lite.TFLiteConverter:
            conv = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=[SIGNATURE])
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            return conv

        if quantize == "fp32":
            flatbuffer = converter().convert()
        elif quantize == "fp16":
            conv = converter()
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.target_spec.supported_types = [tf.float16]
            flatbuffer = conv.convert()
        else:
            flatbuffer = _selectively_quantized(converter, model, images)
    class_names = list(class_names)
    atomic_write(output_path, with_labels_metadata(flatbuffer, class_names))
    write_label_files(output_path.parent, class_names, stem=output_path.stem)
    logger.info("Wrote %s TFLite model %s (%.1f MB)", quantize, output_path, len(flatbuffer) / 1e6)
    return output_path


def _head_output_pattern(model: keras.Model) -> re.Pattern[str]:
    """TFLite tensor names of the heads' final 1x1 convolutions, from the layers the model lists as its heads.

    TFLite names a tensor by the name scopes of the traced layers (``<model>/<layer>[_N]/...``).
    """
    from centernet_tf.model.centernet import require_centernet

    heads = require_centernet(model, "int8 export").head_output_layers.values()
    names = "|".join(re.escape(layer.name) for layer in heads)
    return re.compile(rf"/({names})(_\d+)?/")


def _selectively_quantized(
    converter: Callable[[], tf.lite.TFLiteConverter], model: keras.Model, images: list[np.ndarray]
) -> bytes:
    """int8 everywhere except the head outputs and the decoding, which stay float.

    Measured on BCCD (``benchmarks/export_bccd.py``): quantising everything, box coordinates included, put
    them on a ~1.6 px grid and cost 5.1 points of mAP@0.5; float decoding and float 1x1 head outputs (a
    negligible share of the compute) recovered half of that, and removing the int8 round trip of the scores
    (:func:`_without_float_round_trips`) the rest (int8 0.849 against Keras 0.843; quantised 1x1 heads: 0.816,
    and no faster). The selection uses TFLite's documented selective quantisation (``QuantizationDebugger``
    with ``denylisted_nodes``), which keeps a float32 input.
    """
    from centernet_tf.deploy.inference import tflite_interpreter

    model_name, head_output = model.name, _head_output_pattern(model)
    float_model = tflite_interpreter(converter().convert())
    names = {t["index"]: t["name"] for t in float_model.get_tensor_details()}
    keep_float = []
    for op in float_model._get_ops_details():  # noqa: SLF001 - the public API has no op list
        name = names[op["outputs"][0]]
        in_network = name.startswith(model_name)
        if not in_network or (op["op_name"] == "CONV_2D" and head_output.search(name.split(";")[0])):
            keep_float.append(name)
    quantizing = converter()
    quantizing.optimizations = [tf.lite.Optimize.DEFAULT]
    quantizing.representative_dataset = lambda: ([image] for image in progress(images, len(images), "calibrating int8"))
    quantizing.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=quantizing,
        debug_dataset=lambda: ([image] for image in images[:1]),
        debug_options=tf.lite.experimental.QuantizationDebugOptions(
            denylisted_ops=["LOGISTIC", "SELECT_V2", "TOPK_V2"], denylisted_nodes=keep_float
        ),
    )
    return _without_float_round_trips(debugger.get_nondebug_quantized_model())


def _without_float_round_trips(flatbuffer: bytes) -> bytes:
    """Remove ``QUANTIZE -> DEQUANTIZE`` pairs that take a float tensor to int8 and straight back to float.

    The quantiser gives a sigmoid's output a fixed int8 range even when the sigmoid and every consumer stay
    float, so it inserts such a pair after the heatmap: scores land on a 1/256 grid, neighbouring cells of a
    peak tie and pass the 3x3 max-pool test together (duplicate detections), and ties blur the ranking that
    mAP is computed from. The pair computes nothing else, so its consumers read the float tensor instead.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    float32 = schema.TensorType.FLOAT32

    def code(op: Any) -> int:
        opcode = model.operatorCodes[op.opcodeIndex]
        return max(opcode.builtinCode, opcode.deprecatedBuiltinCode)

    for graph in model.subgraphs:
        producer = {int(out): op for op in graph.operators for out in op.outputs}
        replaced: dict[int, int] = {}
        dropped: set[int] = set()
        for op in graph.operators:
            if code(op) != schema.BuiltinOperator.DEQUANTIZE:
                continue
            quantize = producer.get(int(op.inputs[0]))
            if quantize is None or code(quantize) != schema.BuiltinOperator.QUANTIZE:
                continue
            source, target = int(quantize.inputs[0]), int(op.outputs[0])
            if graph.tensors[source].type == float32 and graph.tensors[target].type == float32:
                replaced[target] = source
                dropped.add(id(op))
        if not replaced:
            continue
        for op in graph.operators:
            op.inputs = [replaced.get(int(i), int(i)) for i in op.inputs]
        graph.outputs = [replaced.get(int(i), int(i)) for i in graph.outputs]
        graph.operators = [op for op in graph.operators if id(op) not in dropped]
        used = {int(i) for op in graph.operators for i in op.inputs} | {int(i) for i in graph.outputs}
        graph.operators = [
            op for op in graph.operators
            if code(op) != schema.BuiltinOperator.QUANTIZE or any(int(o) in used for o in op.outputs)
        ]
        for signature in model.signatureDefs or []:
            for tensor_map in signature.outputs or []:
                tensor_map.tensorIndex = replaced.get(int(tensor_map.tensorIndex), int(tensor_map.tensorIndex))
        logger.debug("Removed %d float -> int8 -> float round trips", len(replaced))
    return flatbuffer_utils.convert_object_to_bytearray(model)


def representative_images(index: Any, input_size: tuple[int, int], count: int = 300) -> list[np.ndarray]:
    """The first ``count`` images of a :class:`DatasetIndex`, letterboxed like evaluation, for int8 calibration."""
    from centernet_tf.data.pipeline import build_eval_dataset

    subset = type(index)(index.examples[:count], index.class_names, index.report)
    images: list[np.ndarray] = []
    seen: set[int] = set()
    for batch in build_eval_dataset(subset, input_size, 8):
        images.extend(batch["image"].numpy())
        seen.update(int(i) for i in batch["image_id"].numpy())
    dropped = [Path(e.image_path).name for e in subset.examples if e.image_id not in seen]
    if dropped:  # the pipeline drops a file it cannot decode; say so instead of calibrating on fewer quietly
        logger.warning("%d of %d calibration images could not be decoded and were left out (first: %s)",
                       len(dropped), len(subset.examples), ", ".join(dropped[:3]))
    return images
