"""ResNets written here: torchvision's layout (ResNet-18/34 and the "v1b" bottleneck ResNets) and a slim CPU variant.

``keras.applications`` ResNets differ from torchvision's, which the original CenterNet (``msra_resnet.py``)
and most published checkpoints use: their convolutions carry biases, the bottleneck strides in its first 1x1
instead of the 3x3 (v1 vs v1b) and Keras' ``"same"`` padding puts the extra row of a strided convolution at the
bottom where PyTorch pads both sides. The ``torch_layout`` networks here pad explicitly and use PyTorch's
BatchNorm epsilon, so PyTorch weights give the same outputs (tested against a PyTorch twin).
"""

from __future__ import annotations

import keras
from keras import layers

from centernet_tf.model.backbones.registry import check_weights_argument, load_builder_weights, register_backbone
from centernet_tf.model.layers import conv_bn

_IMAGENET_MEAN = (123.675, 116.28, 103.53)
_IMAGENET_STD = (58.395, 57.12, 57.375)


def _shortcut(x: keras.KerasTensor, filters: int, stride: int, name: str, torch_layout: bool) -> keras.KerasTensor:
    if stride == 1 and x.shape[-1] == filters:
        return x
    return conv_bn(x, filters, 1, stride, f"{name}_down_conv", f"{name}_down_bn", torch_layout)


def _basic_block(x: keras.KerasTensor, filters: int, stride: int, name: str, torch_layout: bool) -> keras.KerasTensor:
    shortcut = _shortcut(x, filters, stride, name, torch_layout)
    y = conv_bn(x, filters, 3, stride, f"{name}_conv1", f"{name}_bn1", torch_layout)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = conv_bn(y, filters, 3, 1, f"{name}_conv2", f"{name}_bn2", torch_layout)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def _bottleneck_block(
    x: keras.KerasTensor, filters: int, stride: int, name: str, torch_layout: bool
) -> keras.KerasTensor:
    """1x1 -> 3x3 (strided: "v1b", as torchvision) -> 1x1 with 4x ``filters`` outputs."""
    shortcut = _shortcut(x, filters * 4, stride, name, torch_layout)
    y = conv_bn(x, filters, 1, 1, f"{name}_conv1", f"{name}_bn1", torch_layout)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = conv_bn(y, filters, 3, stride, f"{name}_conv2", f"{name}_bn2", torch_layout)
    y = layers.ReLU(name=f"{name}_relu2")(y)
    y = conv_bn(y, filters * 4, 1, 1, f"{name}_conv3", f"{name}_bn3", torch_layout)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def resnet_pyramid(
    image: keras.KerasTensor,
    weights: str | None,
    blocks: tuple[int, ...],
    width: int,
    bottleneck: bool = False,
    torch_layout: bool = True,
) -> dict[str, keras.KerasTensor]:
    """Stem (7x7/2 + max-pool 3x3/2) and one stage per entry of ``blocks``: features ``P2`` (stride 4) to ``P5``.

    Layer names follow torchvision's modules (``stage{s}_block{b}_conv1`` is ``layer{s}.{b-1}.conv1``), which
    is what :mod:`centernet_tf.deploy.convert` maps checkpoints by.
    """
    weights = check_weights_argument(weights)
    if weights == "imagenet":
        raise ValueError("This backbone has no downloadable ImageNet weights; pass None or a weights file.")
    x = conv_bn(image, width, 7, 2, "stem_conv", "stem_bn", torch_layout)
    x = layers.ReLU(name="stem_relu")(x)
    if torch_layout:  # zeros pad like PyTorch's -inf here: the input is >= 0 after the ReLU
        x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="valid" if torch_layout else "same", name="stem_pool")(x)
    block_fn = _bottleneck_block if bottleneck else _basic_block
    pyramid = {}
    for stage, count in enumerate(blocks):
        for block in range(count):
            stride = 2 if (block == 0 and stage > 0) else 1
            x = block_fn(x, width * 2**stage, stride, f"stage{stage + 1}_block{block + 1}", torch_layout)
        pyramid[f"P{stage + 2}"] = x
    load_builder_weights(image, pyramid, weights)
    return pyramid


@register_backbone(
    "resnet18", mean=_IMAGENET_MEAN, std=_IMAGENET_STD,
    description="ResNet-18 in torchvision's layout (512 channels at stride 32), the paper's res_18",
)
def resnet18(image: keras.KerasTensor, weights: str | None) -> dict[str, keras.KerasTensor]:
    return resnet_pyramid(image, weights, blocks=(2, 2, 2, 2), width=64)


@register_backbone(
    "resnet34", mean=_IMAGENET_MEAN, std=_IMAGENET_STD,
    description="ResNet-34 in torchvision's layout (basic blocks 3-4-6-3)",
)
def resnet34(image: keras.KerasTensor, weights: str | None) -> dict[str, keras.KerasTensor]:
    return resnet_pyramid(image, weights, blocks=(3, 4, 6, 3), width=64)


@register_backbone(
    "resnet50_v1b", mean=_IMAGENET_MEAN, std=_IMAGENET_STD,
    description="ResNet-50 in torchvision's layout (bottlenecks stride in the 3x3; 'resnet50' is keras.applications')",
)
def resnet50_v1b(image: keras.KerasTensor, weights: str | None) -> dict[str, keras.KerasTensor]:
    return resnet_pyramid(image, weights, blocks=(3, 4, 6, 3), width=64, bottleneck=True)


@register_backbone(
    "resnet101_v1b", mean=_IMAGENET_MEAN, std=_IMAGENET_STD,
    description="ResNet-101 in torchvision's layout, the paper's res_101 ('resnet101' is keras.applications')",
)
def resnet101_v1b(image: keras.KerasTensor, weights: str | None) -> dict[str, keras.KerasTensor]:
    return resnet_pyramid(image, weights, blocks=(3, 4, 23, 3), width=64, bottleneck=True)


@register_backbone(
    "resnet10_slim", mean=_IMAGENET_MEAN, std=_IMAGENET_STD,
    description="A slim ResNet (1 basic block per stage, 32-256 channels) for quick CPU experiments and tests",
)
def resnet10_slim(image: keras.KerasTensor, weights: str | None) -> dict[str, keras.KerasTensor]:
    # Keras "same" padding and epsilon: the layout the shipped shapes and BCCD results were measured with.
    return resnet_pyramid(image, weights, blocks=(1, 1, 1, 1), width=32, torch_layout=False)
