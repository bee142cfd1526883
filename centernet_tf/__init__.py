"""CenterNet ("Objects as Points", Zhou et al. 2019) for Keras 3 / TensorFlow 2.

Importing the package registers its custom layers, models and losses, so ``keras.models.load_model`` can read
the ``.keras`` files that training writes.
"""

from centernet_tf import losses
from centernet_tf.backbones import available_backbones, build_backbone, register_backbone
from centernet_tf.config import Config, load_config
from centernet_tf.decode import CenterNetDecoder
from centernet_tf.layers import ImageNormalization
from centernet_tf.losses import CenterNetLoss
from centernet_tf.model import CenterNet, build_centernet, load_centernet
from centernet_tf.necks import available_necks, register_neck
from centernet_tf.targets import encode_targets, gaussian_radius, keras_targets

__version__ = "0.2.0"

__all__ = [
    "CenterNet",
    "CenterNetDecoder",
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
