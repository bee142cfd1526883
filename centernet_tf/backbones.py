"""Backbone registry: a backbone maps a normalised image tensor to its stride-32 feature map.

New backbones register a builder with :func:`register_backbone`; the decoder and heads never change.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

import keras
from keras import layers


BackboneBuilder = Callable[[keras.KerasTensor, "str | None"], keras.KerasTensor]


@dataclass(frozen=True)
class BackboneSpec:
    """How to build a backbone and how its input must be normalised (its pretrained weights expect it)."""

    build: BackboneBuilder
    #: Per-channel mean and std in RGB order applied to 0-255 pixels, and whether to feed BGR.
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    bgr: bool
    description: str


_REGISTRY: dict[str, BackboneSpec] = {}

#: Where Keras puts (or finds) the ImageNet weights of ResNet50 without the classifier.
RESNET50_IMAGENET_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
_DOWNLOAD_TIMEOUT_S = 20.0


def register_backbone(
    name: str,
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
    std: tuple[float, float, float] = (1.0, 1.0, 1.0),
    bgr: bool = False,
    description: str = "",
) -> Callable[[BackboneBuilder], BackboneBuilder]:
    """Decorator adding a backbone builder ``fn(image_tensor, weights) -> stride-32 features``."""

    def decorate(fn: BackboneBuilder) -> BackboneBuilder:
        _REGISTRY[name] = BackboneSpec(fn, mean, std, bgr, description or (fn.__doc__ or "").strip())
        return fn

    return decorate


def get_backbone(name: str) -> BackboneSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown backbone {name!r}; available: {', '.join(available_backbones())}") from None


def available_backbones() -> list[str]:
    return sorted(_REGISTRY)


def _check_weights_argument(weights: str | None) -> str | None:
    """Fail early with an actionable message instead of deep inside Keras."""
    if weights is None or weights == "imagenet":
        return weights
    path = os.path.expanduser(str(weights))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"backbone_weights={weights!r} is neither None, 'imagenet' nor an existing weights file."
        )
    return path


def _keras_cached_weights(filename: str) -> str | None:
    cache_dir = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    path = os.path.join(cache_dir, "models", filename)
    return path if os.path.isfile(path) else None


def _build_keras_application(
    factory: Callable[..., keras.Model], image: keras.KerasTensor, weights: str | None, weights_file: str
) -> keras.Model:
    """Build a ``keras.applications`` model, downloading ImageNet weights with a bounded wait.

    Keras downloads without a timeout; offline, that can hang or fail with an opaque URL error. We bound the
    socket wait and turn any download failure into a message that says how to pass a local file.
    """
    weights = _check_weights_argument(weights)
    if weights != "imagenet" or _keras_cached_weights(weights_file):
        return factory(include_top=False, weights=weights, input_tensor=image)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
    try:
        return factory(include_top=False, weights="imagenet", input_tensor=image)
    except Exception as error:  # noqa: BLE001 - any download failure gets the same actionable message
        raise RuntimeError(
            f"Could not download the ImageNet weights ({type(error).__name__}: {error}). "
            f"On a machine with internet access, download '{weights_file}' (Keras stores it in "
            f"~/.keras/models/), copy it here, and pass backbone_weights='/path/to/{weights_file}' "
            "(config: model.backbone_weights), or put it in ~/.keras/models/, or train from scratch with "
            "backbone_weights=None."
        ) from error
    finally:
        socket.setdefaulttimeout(previous)


@register_backbone(
    "resnet50",
    mean=(123.68, 116.779, 103.939),
    std=(1.0, 1.0, 1.0),
    bgr=True,
    description="keras.applications.ResNet50 (2048 channels at stride 32), the backbone of the paper's ResNet runs",
)
def resnet50(image: keras.KerasTensor, weights: str | None) -> keras.KerasTensor:
    backbone = _build_keras_application(keras.applications.ResNet50, image, weights, RESNET50_IMAGENET_FILE)
    return backbone.output


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


def _resnet_basic(
    image: keras.KerasTensor, weights: str | None, blocks: tuple[int, ...], width: int
) -> keras.KerasTensor:
    x = layers.Conv2D(width, 7, strides=2, padding="same", use_bias=False, name="stem_conv")(image)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, count in enumerate(blocks):
        for block in range(count):
            stride = 2 if (block == 0 and stage > 0) else 1
            x = _basic_block(x, width * 2**stage, stride, name=f"stage{stage + 1}_block{block + 1}")
    weights = _check_weights_argument(weights)
    if weights == "imagenet":
        raise ValueError("This backbone has no downloadable ImageNet weights; pass None or a weights file.")
    if weights is not None:
        # A file written by ``save_weights`` of this backbone built the same way.
        keras.Model(keras.utils.get_source_inputs(image), x).load_weights(weights)
    return x


@register_backbone(
    "resnet18",
    mean=(123.675, 116.28, 103.53),
    std=(58.395, 57.12, 57.375),
    description="ResNet-18 (basic blocks, 512 channels at stride 32), as in the paper's fast ResNet-18 runs",
)
def resnet18(image: keras.KerasTensor, weights: str | None) -> keras.KerasTensor:
    return _resnet_basic(image, weights, blocks=(2, 2, 2, 2), width=64)


@register_backbone(
    "resnet10_slim",
    mean=(123.675, 116.28, 103.53),
    std=(58.395, 57.12, 57.375),
    description="A slim ResNet (1 basic block per stage, 32-256 channels) for quick CPU experiments and tests",
)
def resnet10_slim(image: keras.KerasTensor, weights: str | None) -> keras.KerasTensor:
    return _resnet_basic(image, weights, blocks=(1, 1, 1, 1), width=32)
