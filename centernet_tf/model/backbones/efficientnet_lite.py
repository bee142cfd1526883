"""EfficientNet-Lite0/1/2 written in Keras, with ImageNet weights converted from PyTorch.

EfficientNet-Lite (the TensorFlow ``efficientnet/lite`` builder) is EfficientNet-B0 made friendly to mobile
accelerators and int8: no squeeze-and-excitation, ReLU6 instead of swish, and a stem (32 channels) and head
(1280 channels) that width scaling leaves alone. Seven stages of MBConv blocks (expand 1x1 + BN + ReLU6,
depthwise kxk + BN + ReLU6, project 1x1 + BN, identity skip when the stride is 1 and the width unchanged).

Lite1 and Lite2 scale B0's stages (:data:`VARIANTS`): stage widths by ``round_filters`` (multiply, round to a
multiple of 8, never below 90% of the product) and repeats by ``ceil(depth * repeats)``, except the first and
the last stage, whose single block is kept, like the stem and head widths, so the variants stay small. The
checkpoints confirm it: Lite1 and Lite2 both have 21 blocks (1, 3, 3, 4, 4, 5, 1), and Lite2's stages are
16, 24, 48, 88, 120, 208, 352 channels (the first stage's 16 * 1.1 rounds back to 16) under a 1280-channel head.

Layer names follow the PyTorch checkpoints (``_blocks.3._expand_conv`` -> ``block3_expand_conv``, see
``efficientnet_lite_weights.keras_to_torch``), and the backbone and the ImageNet classifier build their common
layers in the same order from the same function, so one ``.weights.h5`` file (Keras keys layers by class and
order) loads into both: the backbone's layers are a prefix of the classifier's.

Padding: the PyTorch model that came with the checkpoint (``efficientnet_lite_pytorch``, a fork of
lukemelas/EfficientNet-PyTorch, with weights converted from the official TensorFlow checkpoints) pads every
convolution like TensorFlow's ``"same"`` (for a stride-2 conv on an even size: nothing before, the rest after),
not symmetrically (``k // 2``), because the weights were trained in TensorFlow that way. So plain ``"same"``
is the exact match here, and no ``ZeroPadding2D`` is needed; ``tests/test_efficientnet_lite.py`` checks the
logits against a PyTorch re-implementation with the checkpoint's padding (max difference 7e-6 for Lite0).
Symmetric padding would also be worse on real photos: 69.3% top-1 instead of 71.3% on the crops described below.

BatchNorm epsilon is 1e-3 (the checkpoint model's ``batch_norm_epsilon``). The registered backbones (this
network with its weights) are in :mod:`~centernet_tf.model.backbones.efficientnet_lite_backbone`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
from keras import layers


#: The input normalisation the ImageNet weights were trained with: ``(pixel - 127) / 128`` on RGB 0-255, the
#: official TensorFlow EfficientNet-Lite preprocessing (MEAN_RGB 127, STDDEV_RGB 128, the same for every
#: variant), and the best of the candidates on real photos. Converted Lite0 classifier on 101 square crops
#: (224x224) around the largest shark, stingray, starfish, jellyfish or penguin box of the aquarium test+valid
#: photos, counting a hit when the top-1 is that animal's ImageNet class (sharks: great white/tiger/hammerhead;
#: rays: stingray/electric ray):
#:   127/128: top-1 71.3%, top-5 77.2%, mean probability of the right class 0.52
#:   torchvision mean/std (123.675, 116.28, 103.53)/(58.395, 57.12, 57.375): 60.4%, 70.3%, 0.42
#:   [0, 1] (x / 255): 65.3%, 71.3%, 0.48
#: On the 5 crops of tests/test_efficientnet_lite.py, with 127/128: starfish "starfish" 0.99, jellyfish
#: "jellyfish" 0.97, stingray "stingray" 0.68 (torchvision's mean/std: "electric ray" 0.62 first), shark
#: "hammerhead" 0.29; the penguin crop (small penguins under water) is "gar" under all three.
IMAGENET_MEAN = (127.0, 127.0, 127.0)
IMAGENET_STD = (128.0, 128.0, 128.0)

BN_EPSILON = 1e-3
STEM_FILTERS = 32
HEAD_FILTERS = 1280
NUM_CLASSES = 1000
#: Lite0's classifier input; each variant's is ``VARIANTS[name].resolution`` square.
CLASSIFIER_INPUT_SHAPE = (224, 224, 3)

#: EfficientNet-B0 = Lite0 stages: (kernel, repeats, first stride, expand ratio, output channels), 16 blocks
#: numbered 0-15 like the checkpoint. The other variants scale these (:func:`variant_stages`).
STAGES = (
    (3, 1, 1, 1, 16),
    (3, 2, 2, 6, 24),
    (5, 2, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (5, 3, 1, 6, 112),
    (5, 4, 2, 6, 192),
    (3, 1, 1, 6, 320),
)


@dataclass(frozen=True)
class LiteVariant:
    """One row of the official builder's ``efficientnet_lite_params``: how much B0's stages grow."""

    width: float
    depth: float
    resolution: int
    dropout: float


#: Backbone name -> scaling (width and depth coefficients, ImageNet resolution, classifier dropout).
VARIANTS: dict[str, LiteVariant] = {
    "efficientnet_lite0": LiteVariant(width=1.0, depth=1.0, resolution=224, dropout=0.2),
    "efficientnet_lite1": LiteVariant(width=1.0, depth=1.1, resolution=240, dropout=0.2),
    "efficientnet_lite2": LiteVariant(width=1.1, depth=1.2, resolution=260, dropout=0.3),
}

# The official EfficientNet initialiser (variance scaling on fan-out), for training from random init.
_CONV_INIT = keras.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="truncated_normal")
_DENSE_INIT = keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_out", distribution="uniform")


def variant(name: str) -> LiteVariant:
    """The variant's scaling; an unknown name fails here, naming the known ones, not deep inside Keras."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown EfficientNet-Lite variant {name!r}; available: {', '.join(VARIANTS)}") from None


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """The official width rounding: nearest multiple of ``divisor``, bumped up if it lost more than 10%."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def variant_stages(name: str) -> tuple[tuple[int, int, int, int, int], ...]:
    """:data:`STAGES` scaled for a variant; the first and last stage keep their one block (the Lite rule)."""
    scaling = variant(name)
    last = len(STAGES) - 1
    return tuple(
        (kernel, repeats if i in (0, last) else math.ceil(scaling.depth * repeats), stride, expand,
         round_filters(filters, scaling.width))
        for i, (kernel, repeats, stride, expand, filters) in enumerate(STAGES)
    )


def _conv_bn(
    x: keras.KerasTensor, filters: int, kernel: int, stride: int, name: str, bn_name: str, relu: bool
) -> keras.KerasTensor:
    x = layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False, kernel_initializer=_CONV_INIT, name=name
    )(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=bn_name)(x)
    return layers.ReLU(max_value=6.0, name=f"{name}_relu6")(x) if relu else x


def _mbconv(
    x: keras.KerasTensor, index: int, kernel: int, stride: int, expand: int, filters: int
) -> keras.KerasTensor:
    name = f"block{index}"
    inputs = x
    channels = x.shape[-1]
    if expand != 1:
        x = _conv_bn(x, channels * expand, 1, 1, f"{name}_expand_conv", f"{name}_expand_bn", relu=True)
    x = layers.DepthwiseConv2D(
        kernel, strides=stride, padding="same", use_bias=False, depthwise_initializer=_CONV_INIT,
        name=f"{name}_dwconv",
    )(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_dw_bn")(x)
    x = layers.ReLU(max_value=6.0, name=f"{name}_dwconv_relu6")(x)
    x = _conv_bn(x, filters, 1, 1, f"{name}_project_conv", f"{name}_project_bn", relu=False)
    if stride == 1 and channels == filters:
        x = layers.Add(name=f"{name}_add")([inputs, x])
    return x


def efficientnet_lite_features(
    x: keras.KerasTensor, name: str = "efficientnet_lite0"
) -> dict[str, keras.KerasTensor]:
    """The convolutional part on a normalised image: ``{"P1": ..., "P5": ...}``, the last map of each stride.

    ``P5`` is the 1280-channel head (1x1 conv + BN + ReLU6) the classifier pools, like keras.applications'
    MobileNetV2 backbone here; ``P2``-``P4`` are the ends of the stride-4/8/16 stages (Lite0 and Lite1: 24, 40,
    112 channels; Lite2: 24, 48, 120).
    """
    x = _conv_bn(x, STEM_FILTERS, 3, 2, "stem_conv", "stem_bn", relu=True)
    features = {"P1": x}
    stride = 2
    index = 0
    for kernel, repeats, first_stride, expand, filters in variant_stages(name):
        for repeat in range(repeats):
            block_stride = first_stride if repeat == 0 else 1
            x = _mbconv(x, index, kernel, block_stride, expand, filters)
            index += 1
        stride *= first_stride
        features[f"P{stride.bit_length() - 1}"] = x
    features["P5"] = _conv_bn(x, HEAD_FILTERS, 1, 1, "head_conv", "head_bn", relu=True)
    return features


def efficientnet_lite_classifier(
    name: str = "efficientnet_lite0", input_shape: tuple[int | None, int | None, int] | None = None
) -> keras.Model:
    """A variant's ImageNet classifier: *normalised* image (``(rgb - 127) / 128``) -> 1000 logits (no softmax).

    ``input_shape`` defaults to the variant's ImageNet resolution (224, 240 or 260 square).
    """
    scaling = variant(name)
    shape = tuple(input_shape) if input_shape is not None else (scaling.resolution, scaling.resolution, 3)
    image = keras.Input(shape=shape, name="normalized_image")
    x = efficientnet_lite_features(image, name)["P5"]
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(scaling.dropout, name="top_dropout")(x)
    logits = layers.Dense(NUM_CLASSES, kernel_initializer=_DENSE_INIT, name="predictions")(x)
    return keras.Model(image, logits, name=name)


def efficientnet_lite0_features(x: keras.KerasTensor) -> dict[str, keras.KerasTensor]:
    """Lite0's :func:`efficientnet_lite_features` (kept for callers of the Lite0-only API)."""
    return efficientnet_lite_features(x, "efficientnet_lite0")


def efficientnet_lite0_classifier(
    input_shape: tuple[int | None, int | None, int] = CLASSIFIER_INPUT_SHAPE,
) -> keras.Model:
    """Lite0's :func:`efficientnet_lite_classifier` (kept for callers of the Lite0-only API)."""
    return efficientnet_lite_classifier("efficientnet_lite0", input_shape)
