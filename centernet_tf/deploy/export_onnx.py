"""ONNX export: the TFLite contract (a letterboxed float image in, normalisation, network and decoding inside,
Object Detection API outputs) in the format ONNX Runtime, OpenVINO and TensorRT run.

tf2onnx converts the same ``tf.function`` the TFLite export converts, so both formats hold one graph. PyTorch
is not involved; the ``onnx`` extra brings tf2onnx, onnx and ONNX Runtime.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

import keras
import tensorflow as tf

from centernet_tf.deploy.export import fixed_size_detection_fn, model_input_size
from centernet_tf.files import atomic_write
from centernet_tf.labels import write_label_files
from centernet_tf.model.centernet import decoder_for
from centernet_tf.model.decode import CenterNetDecoder

logger = logging.getLogger(__name__)

ONNX_INSTALL_HINT = 'pip install "centernet-tf[onnx]"'
#: ONNX opset 17 (ONNX 1.12, 2022): every op of the graph (TopK, MaxPool, GatherND, NonMaxSuppression, Resize)
#: has had its current form since, and ONNX Runtime 1.12+ and OpenVINO 2022.3+ read it.
OPSET = 17
#: The key of the class names (a JSON list) in the model's ``metadata_props``: they travel with the file.
LABELS_KEY = "class_names"


def export_onnx(
    model: keras.Model,
    output_path: str | Path,
    class_names: Iterable[str],
    decoder: CenterNetDecoder | None = None,
    opset: int = OPSET,
) -> Path:
    """Write an ``.onnx`` file whose input ``image`` is ``float32 [1, H, W, 3]`` RGB 0-255 at the model's input
    size (letterboxed, as for TFLite: :class:`~centernet_tf.deploy.inference.ONNXDetector` does it), plus the label
    files beside it. NMS, when the decoder has it, is inside (ONNX ``NonMaxSuppression``)."""
    try:
        import tf2onnx
    except ImportError as error:
        raise ImportError(f"ONNX export needs tf2onnx and onnx: {ONNX_INSTALL_HINT}") from error
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)  # its INFO lines describe every graph rewrite
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    decoder = decoder or decoder_for(model)
    height, width = model_input_size(model)
    spec = tf.TensorSpec([1, height, width, 3], tf.float32, name="image")
    function = tf.function(fixed_size_detection_fn(model, decoder), input_signature=[spec])
    proto, _ = tf2onnx.convert.from_function(function, input_signature=[spec], opset=opset)
    class_names = list(class_names)
    entry = proto.metadata_props.add()
    entry.key, entry.value = LABELS_KEY, json.dumps(class_names)
    data = proto.SerializeToString()
    atomic_write(output_path, data)
    write_label_files(output_path.parent, class_names, stem=output_path.stem)
    logger.info("Wrote ONNX model %s (opset %d, %.1f MB)", output_path, opset, len(data) / 1e6)
    return output_path
