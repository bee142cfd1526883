"""ResNets of basic blocks written here (no ``keras.applications`` equivalent): ResNet-18 and a slim CPU variant."""

from __future__ import annotations

import keras
from keras import layers

from centernet_tf.backbones.registry import check_weights_argument, load_builder_weights, register_backbone

_IMAGENET_MEAN = (123.675, 116.28, 103.53)
_IMAGENET_STD = (58.395, 57.12, 57.375)


def _basic_block(x: keras.KerasTensor, filters: int, stride: int, name: str) -> keras.KerasTensor:
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_down_conv")(x)
        shortcut = layers.BatchNormalization(name=f"{name}_down_bn")(shortcut)
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def resnet_basic_pyramid(
    image: keras.KerasTensor, weights: str | None, blocks: tuple[int, ...], width: int
) -> dict[str, keras.KerasTensor]:
    """Stem (7x7/2 + max-pool/2) and one stage per entry of ``blocks``: features ``P2`` (stride 4) to ``P5``."""
    weights = check_weights_argument(weights)
    if weights == "imagenet":
        raise ValueError("This backbone has no downloadable ImageNet weights; pass None or a weights file.")
    x = layers.Conv2D(width, 7, strides=2, padding="same", use_bias=False, name="stem_conv")(image)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    pyramid = {}
    for stage, count in enumerate(blocks):
        for block in range(count):
            stride = 2 if (block == 0 and stage > 0) else 1
            x = _basic_block(x, width * 2**stage, stride, name=f"stage{stage + 1}_block{block + 1}")
        pyramid[f"P{stage + 2}"] = x
    load_builder_weights(image, pyramid, weights)
    return pyramid


@register_backbone(
    "resnet18", mean=_IMAGENET_MEAN, std=_IMAGENET_STD,
    description="ResNet-18 (basic blocks, 512 channels at stride 32), as in the paper's fast ResNet-18 runs",
)
def resnet18(image: keras.KerasTensor, weights: str | None) -> dict[str, keras.KerasTensor]:
    return resnet_basic_pyramid(image, weights, blocks=(2, 2, 2, 2), width=64)


@register_backbone(
    "resnet10_slim", mean=_IMAGENET_MEAN, std=_IMAGENET_STD,
    description="A slim ResNet (1 basic block per stage, 32-256 channels) for quick CPU experiments and tests",
)
def resnet10_slim(image: keras.KerasTensor, weights: str | None) -> dict[str, keras.KerasTensor]:
    return resnet_basic_pyramid(image, weights, blocks=(1, 1, 1, 1), width=32)
