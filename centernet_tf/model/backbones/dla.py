"""DLA-34 (Yu et al., "Deep Layer Aggregation", 2018) as the original CenterNet's ``dlav0.py`` builds it.

Trees of basic blocks whose outputs are merged by 1x1 "root" convolutions, plus the previous level's
features at each level root. The features of levels 2-5 (strides 4-32) feed the ``ida_up`` neck
(:func:`centernet_tf.model.necks.ida_up`). Layer names are the original module paths (``level3.tree1.root.conv``),
which is what checkpoint conversion maps by. PyTorch padding and BatchNorm epsilon throughout.

Two things of the original are left out on purpose, because no output depends on them: the ImageNet
classifier (``fc``) and the ``project`` of the two-level trees (levels 3 and 4), whose first subtree computes
the residual again with its own projection. Checkpoint conversion drops those tensors by name.
"""

from __future__ import annotations

import keras
from keras import layers

from centernet_tf.model.backbones.registry import check_weights_argument, load_builder_weights, register_backbone
from centernet_tf.model.layers import conv_bn

#: Channels of the base layer and levels 0-5; levels of trees per level (levels 0-1 are plain convolutions).
DLA34_CHANNELS = (16, 32, 64, 128, 256, 512)
DLA34_LEVELS = (1, 1, 1, 2, 2, 1)
#: The original's module paths inside ``DLASeg`` that hold tensors no output depends on.
UNUSED_ORIGINAL_MODULES = ("fc", "level3.project", "level4.project")


def _relu(x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    return layers.ReLU(name=name)(x)


def _basic_block(
    x: keras.KerasTensor, residual: keras.KerasTensor, filters: int, stride: int, name: str
) -> keras.KerasTensor:
    """Conv3x3 (strided) + BN + ReLU, Conv3x3 + BN, + the residual the tree gives, ReLU."""
    y = _relu(conv_bn(x, filters, 3, stride, f"{name}.conv1", f"{name}.bn1"), f"{name}.relu1")
    y = conv_bn(y, filters, 3, 1, f"{name}.conv2", f"{name}.bn2")
    return _relu(layers.Add(name=f"{name}.add")([y, residual]), f"{name}.relu")


def _root(children: list[keras.KerasTensor], filters: int, name: str) -> keras.KerasTensor:
    x = layers.Concatenate(name=f"{name}.concat")(children)
    return _relu(conv_bn(x, filters, 1, 1, f"{name}.conv", f"{name}.bn"), f"{name}.relu")


def _tree(
    x: keras.KerasTensor,
    levels: int,
    filters: int,
    stride: int,
    name: str,
    level_root: bool = False,
    children: list[keras.KerasTensor] | None = None,
) -> keras.KerasTensor:
    children = [] if children is None else children
    bottom = layers.MaxPooling2D(stride, stride, name=f"{name}.downsample")(x) if stride > 1 else x
    if level_root:
        children.append(bottom)
    if levels == 1:
        residual = bottom
        if bottom.shape[-1] != filters:
            residual = conv_bn(bottom, filters, 1, 1, f"{name}.project.0", f"{name}.project.1")
        x1 = _basic_block(x, residual, filters, stride, f"{name}.tree1")
        x2 = _basic_block(x1, x1, filters, 1, f"{name}.tree2")
        return _root([x2, x1, *children], filters, f"{name}.root")
    x1 = _tree(x, levels - 1, filters, stride, f"{name}.tree1")
    children.append(x1)
    return _tree(x1, levels - 1, filters, 1, f"{name}.tree2", children=children)


def dla_pyramid(
    image: keras.KerasTensor, weights: str | None, channels: tuple[int, ...], levels: tuple[int, ...]
) -> dict[str, keras.KerasTensor]:
    """Base layer (7x7, stride 1), levels 0-1 (3x3 convolutions, the second strided), levels 2-5 (trees):
    features ``P2`` (stride 4) to ``P5`` (stride 32)."""
    weights = check_weights_argument(weights)
    if weights == "imagenet":
        raise ValueError(
            "DLA-34 has no ImageNet weights that download here; pass None, a weights file, or convert an original "
            "CenterNet dlav0_34 checkpoint (python -m centernet_tf.deploy.convert --arch dlav0_34)."
        )
    x = _relu(conv_bn(image, channels[0], 7, 1, "base_layer.0", "base_layer.1"), "base_layer.2")
    x = _relu(conv_bn(x, channels[0], 3, 1, "level0.0", "level0.1"), "level0.2")
    x = _relu(conv_bn(x, channels[1], 3, 2, "level1.0", "level1.1"), "level1.2")
    pyramid = {}
    for level in range(2, 6):
        x = _tree(x, levels[level], channels[level], 2, f"level{level}", level_root=level > 2)
        pyramid[f"P{level}"] = x
    load_builder_weights(image, pyramid, weights)
    return pyramid


@register_backbone(
    "dla34", mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375),
    description="DLA-34 as the original CenterNet's dlav0 (no deformable convolution); use with the ida_up neck",
)
def dla34(image: keras.KerasTensor, weights: str | None) -> dict[str, keras.KerasTensor]:
    return dla_pyramid(image, weights, DLA34_CHANNELS, DLA34_LEVELS)
