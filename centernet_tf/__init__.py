"""CenterNet ("Objects as Points", Zhou et al. 2019) for Keras 3 / TensorFlow 2.

Importing the package registers its custom layers, models and losses, so ``keras.models.load_model`` can read
the ``.keras`` files that training writes.
"""

import os as _os
import sys as _sys

if _os.path.basename(_sys.argv[0] if _sys.argv else "").startswith("centernet-") or \
        _os.environ.pop("CENTERNET_TF_COMMAND", None) == "1":
    # A command (centernet-train..., or the repository's train.py...): TensorFlow's C++ log lines would bury its
    # own output. Set before TensorFlow is first imported; a value the user set wins, --debug shows them all.
    _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from centernet_tf.native_log import quiet_native_log as _quiet_native_log

    _quiet_native_log()

from centernet_tf.model import losses  # noqa: E402
from centernet_tf.model.backbones import available_backbones, build_backbone, register_backbone  # noqa: E402
from centernet_tf.config import Config, load_config  # noqa: E402
from centernet_tf.model.decode import CenterNetDecoder  # noqa: E402
from centernet_tf.model.deformable import DeformableConv2D  # noqa: E402
from centernet_tf.model.layers import ImageNormalization  # noqa: E402
from centernet_tf.model.losses import CenterNetLoss  # noqa: E402
from centernet_tf.model.centernet import CenterNet, build_centernet, load_centernet  # noqa: E402
from centernet_tf.model.necks import available_necks, register_neck  # noqa: E402
from centernet_tf.model.targets import encode_targets, gaussian_radius, keras_targets  # noqa: E402
# What a notebook calls, from the top level: data, training, evaluation, detection, export, conversion.
from centernet_tf.data.loaders import load_split  # noqa: E402
from centernet_tf.data.pipeline import build_eval_dataset, build_train_dataset  # noqa: E402
from centernet_tf.data.formats import load_coco, load_voc, load_yolo  # noqa: E402
from centernet_tf.evaluation.metrics import evaluate_detector, evaluate_model  # noqa: E402
from centernet_tf.deploy.export import export_saved_model, export_tflite  # noqa: E402
from centernet_tf.deploy.inference import load_detector  # noqa: E402
from centernet_tf.train.training import run_training  # noqa: E402
from centernet_tf.train.transfer import set_backbone_trainable  # noqa: E402

__version__ = "0.2.0"

__all__ = [
    "build_eval_dataset",
    "build_train_dataset",
    "evaluate_detector",
    "evaluate_model",
    "export_saved_model",
    "export_tflite",
    "load_coco",
    "load_detector",
    "load_split",
    "load_voc",
    "load_yolo",
    "run_training",
    "set_backbone_trainable",
    "CenterNet",
    "CenterNetDecoder",
    "DeformableConv2D",
    "CenterNetLoss",
    "Config",
    "ImageNormalization",
    "available_backbones",
    "available_necks",
    "build_backbone",
    "build_centernet",
    "encode_targets",
    "gaussian_radius",
    "keras_targets",
    "load_centernet",
    "load_config",
    "losses",
    "register_backbone",
    "register_neck",
]
