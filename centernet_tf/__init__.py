"""CenterNet ("Objects as Points", Zhou et al. 2019) for Keras 3 / TensorFlow 2.

Importing the package registers its custom layers and losses, so ``keras.models.load_model`` can read the
``.keras`` files that training writes.
"""

from centernet_tf import losses
from centernet_tf.backbones import available_backbones, register_backbone
from centernet_tf.config import Config, load_config
from centernet_tf.decode import CenterNetDecoder
from centernet_tf.model import ImageNormalization, build_centernet
from centernet_tf.targets import encode_targets, gaussian_radius, keras_targets

__version__ = "0.1.0"

__all__ = [
    "CenterNetDecoder",
    "Config",
    "ImageNormalization",
    "available_backbones",
    "build_centernet",
    "encode_targets",
    "gaussian_radius",
    "keras_targets",
    "load_config",
    "losses",
    "register_backbone",
]
