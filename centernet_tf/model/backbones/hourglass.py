"""Hourglass-104 (Newell et al. 2016, as CornerNet / the original CenterNet's ``large_hourglass.py``).

A stem to stride 4 (7x7/2 conv, residual/2), then two hourglasses: each goes down five times (channels
256-256-384-384-384-512, two residuals per level, four at the bottom), comes back with nearest 2x upsampling
and a skip branch per level, and ends in a 3x3 conv. Between the stacks, ``relu(inters_(x) + cnvs_(cnv))``
and a residual feed the second hourglass. The backbone returns both stacks' stride-4 features, ``stack1_P2``
and ``P2``, so the ``identity`` neck puts heads on each (the original's intermediate supervision: the loss is
on both, inference uses the last). Input height and width must be multiples of 128.

Layer names are the original module paths (``kps.0.low2.up1.1.conv2``); checkpoint conversion maps by them.
"""

from __future__ import annotations

import keras
from keras import layers

from centernet_tf.model.backbones.registry import check_weights_argument, load_builder_weights, register_backbone
from centernet_tf.model.layers import conv_bn

#: Channels and residual counts per level of each hourglass (Hourglass-104); five levels down.
HOURGLASS104_DIMS = (256, 256, 384, 384, 384, 512)
HOURGLASS104_MODULES = (2, 2, 2, 2, 2, 4)
HOURGLASS104_STACKS = 2
#: Channels of the 3x3 conv that ends each stack (the heads' input).
CNV_DIM = 256


def _residual(x: keras.KerasTensor, filters: int, stride: int, name: str) -> keras.KerasTensor:
    y = layers.ReLU(name=f"{name}.relu1")(conv_bn(x, filters, 3, stride, f"{name}.conv1", f"{name}.bn1"))
    y = conv_bn(y, filters, 3, 1, f"{name}.conv2", f"{name}.bn2")
    skip = x
    if stride != 1 or x.shape[-1] != filters:
        skip = conv_bn(x, filters, 1, stride, f"{name}.skip.0", f"{name}.skip.1")
    return layers.ReLU(name=f"{name}.relu")(layers.Add(name=f"{name}.add")([y, skip]))


def _convolution(x: keras.KerasTensor, filters: int, kernel: int, stride: int, name: str) -> keras.KerasTensor:
    return layers.ReLU(name=f"{name}.relu")(conv_bn(x, filters, kernel, stride, f"{name}.conv", f"{name}.bn"))


def _residuals(x: keras.KerasTensor, filters: list[int], first_stride: int, name: str) -> keras.KerasTensor:
    for i, out in enumerate(filters):
        x = _residual(x, out, first_stride if i == 0 else 1, f"{name}.{i}")
    return x


def _hourglass(x: keras.KerasTensor, dims: tuple[int, ...], modules: tuple[int, ...], name: str) -> keras.KerasTensor:
    """One level (``kp_module``): ``up1`` here + (``low1`` down, inner level, ``low3``, 2x up), recursively."""
    here, below, count = dims[0], dims[1], modules[0]
    up1 = _residuals(x, [here] * count, 1, f"{name}.up1")
    low = _residuals(x, [below] * count, 2, f"{name}.low1")
    if len(dims) > 2:
        low = _hourglass(low, dims[1:], modules[1:], f"{name}.low2")
    else:
        low = _residuals(low, [below] * modules[1], 1, f"{name}.low2")
    low = _residuals(low, [below] * (count - 1) + [here], 1, f"{name}.low3")
    up2 = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}.up2")(low)
    return layers.Add(name=f"{name}.merge")([up1, up2])


def hourglass_pyramid(
    image: keras.KerasTensor,
    weights: str | None,
    dims: tuple[int, ...] = HOURGLASS104_DIMS,
    modules: tuple[int, ...] = HOURGLASS104_MODULES,
    stacks: int = HOURGLASS104_STACKS,
) -> dict[str, keras.KerasTensor]:
    weights = check_weights_argument(weights)
    if weights == "imagenet":
        raise ValueError(
            "Hourglass-104 has no ImageNet weights (the original trains it from COCO weights); pass None, a weights "
            "file, or convert an original CenterNet checkpoint: python -m centernet_tf.deploy.convert ctdet_coco_hg.pth "
            "--arch hourglass --output hg.keras"
        )
    x = _convolution(image, 128, 7, 2, "pre.0")
    inter = _residual(x, dims[0], 2, "pre.1")
    pyramid = {}
    for stack in range(stacks):
        cnv = _convolution(_hourglass(inter, dims, modules, f"kps.{stack}"), CNV_DIM, 3, 1, f"cnvs.{stack}")
        last = stack == stacks - 1
        pyramid["P2" if last else f"stack{stack + 1}_P2"] = cnv
        if not last:
            merged = layers.Add(name=f"inters_merge.{stack}")([
                conv_bn(inter, dims[0], 1, 1, f"inters_.{stack}.0", f"inters_.{stack}.1"),
                conv_bn(cnv, dims[0], 1, 1, f"cnvs_.{stack}.0", f"cnvs_.{stack}.1"),
            ])
            inter = _residual(layers.ReLU(name=f"inters_relu.{stack}")(merged), dims[0], 1, f"inters.{stack}")
    load_builder_weights(image, pyramid, weights)
    return pyramid


@register_backbone(
    "hourglass104", mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375), size_multiple=128,
    description="Hourglass-104, two stacks (the paper's most accurate); use with the identity neck",
)
def hourglass104(image: keras.KerasTensor, weights: str | None) -> dict[str, keras.KerasTensor]:
    return hourglass_pyramid(image, weights)
