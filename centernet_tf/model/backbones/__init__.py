"""Backbones: registered builders of nested Keras models that return image features by stride.

A backbone is a ``keras.Model`` that takes RGB pixels in 0-255 (its input normalisation is its first layer, so
the weights and the normalisation they were trained with never part) and returns a dict of feature maps keyed
``"P{level}"``, the map of level ``l`` having stride ``2**l`` (keras-hub's ``pyramid_outputs`` convention), e.g.
``{"P2": stride 4, ..., "P5": stride 32}``. Necks pick what they need from that dict.

A new backbone needs one registered builder and nothing else::

    @register_backbone("my_net", mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))
    def my_net(image: keras.KerasTensor, weights: str | None) -> dict[str, keras.KerasTensor]:
        ...  # layers on the normalised image; return {"P3": ..., "P4": ..., "P5": ...}
"""

from centernet_tf.model.backbones.registry import (
    BackboneSpec,
    available_backbones,
    build_backbone,
    features_by_stride,
    get_backbone,
    register_backbone,
)
from centernet_tf.model.backbones import applications, dla, efficientnet_lite_backbone, hourglass, resnet  # noqa: F401  (register the built-in backbones)

__all__ = [
    "BackboneSpec",
    "available_backbones",
    "build_backbone",
    "features_by_stride",
    "get_backbone",
    "register_backbone",
]
