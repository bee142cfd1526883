"""ImageNet-pretrained backbones from ``keras.applications``: ResNet-50/101, MobileNetV2, MobileNetV3-Large.

Their pyramid features are found from the graph's shapes, not from layer names: the feature map of stride
``s`` is the output of the last layer whose map is ``s`` times smaller than the input. That is the end of each
stage for any CNN, and stays right when Keras renames layers.
"""

from __future__ import annotations

import socket
import warnings
from collections.abc import Callable
from typing import Any

import keras

from centernet_tf.model.backbones.registry import (
    check_weights_argument,
    keras_cache_dir,
    keras_cached_weights,
    level_of_stride,
    register_backbone,
)

_DOWNLOAD_TIMEOUT_S = 20.0
#: Strides a pyramid is built from (stride 2 maps are too fine for any neck here).
PYRAMID_STRIDES = (4, 8, 16, 32)
#: Input size of the throwaway copy that locates the pyramid layers of a model with a dynamic input size.
_PROBE_SIZE = 256

#: The ``include_top=False`` ImageNet files Keras downloads (and looks for in ``~/.keras/models``).
RESNET50_IMAGENET_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
RESNET101_IMAGENET_FILE = "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5"
MOBILENET_V2_IMAGENET_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
MOBILENET_V3_LARGE_IMAGENET_FILE = "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5"


def download_failure_message(error: Exception, weights_file: str) -> str:
    """What to do when ImageNet weights cannot be downloaded (offline machines, firewalls)."""
    return (
        f"Could not download the ImageNet weights ({type(error).__name__}: {error}). "
        f"On a machine with internet access, download '{weights_file}' (Keras stores it in "
        f"~/.keras/models/), copy it here, and pass backbone_weights='/path/to/{weights_file}' "
        f"(config: model.backbone_weights), or put it in {keras_cache_dir()}/, or train from scratch with "
        "backbone_weights=None."
    )


def build_application(
    factory: Callable[..., keras.Model], image: keras.KerasTensor, weights: str | None, weights_file: str,
    **kwargs: Any,
) -> keras.Model:
    """Build a ``keras.applications`` model on ``image``, downloading ImageNet weights with a bounded wait.

    Keras downloads without a timeout; offline, that can hang or fail with an opaque URL error. We bound the
    socket wait and turn any download failure into a message that says how to pass a local file.
    """
    weights = check_weights_argument(weights)
    if weights != "imagenet" or keras_cached_weights(weights_file):
        return _quiet_factory(factory, weights, image, **kwargs)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
    try:
        return _quiet_factory(factory, "imagenet", image, **kwargs)
    except Exception as error:  # noqa: BLE001 - any download failure gets the same actionable message
        raise RuntimeError(download_failure_message(error, weights_file)) from error
    finally:
        socket.setdefaulttimeout(previous)


def _quiet_factory(
    factory: Callable[..., keras.Model], weights: str | None, image: keras.KerasTensor, **kwargs: Any
) -> keras.Model:
    """The MobileNets warn that other input sizes than 224 load the 224 weights: without the classifier the
    network is fully convolutional, so those weights are exactly what any size needs."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*Weights for input shape \(224, 224\) will be loaded")
        return factory(include_top=False, weights=weights, input_tensor=image, **kwargs)


def pyramid_layer_positions(model: keras.Model, input_hw: tuple[int, int]) -> dict[int, int]:
    """``{stride: position in model.layers}`` of the last layer whose output has that stride."""
    height, width = input_hw
    positions: dict[int, int] = {}
    for position, layer in enumerate(model.layers):
        shape = getattr(layer.output, "shape", None)
        if shape is None or len(shape) != 4 or shape[1] is None or shape[2] is None:
            continue
        if height % shape[1] or width % shape[2] or height // shape[1] != width // shape[2]:
            continue
        stride = height // shape[1]
        if stride in PYRAMID_STRIDES:
            positions[stride] = position
    return positions


def application_pyramid(
    factory: Callable[..., keras.Model], image: keras.KerasTensor, weights: str | None, weights_file: str,
    **kwargs: Any,
) -> dict[str, keras.KerasTensor]:
    """``{"P2": ..., "P5": ...}`` of a ``keras.applications`` model built on the normalised ``image``."""
    app = build_application(factory, image, weights, weights_file, **kwargs)
    height, width = image.shape[1], image.shape[2]
    if height is None or width is None:
        # Same architecture at a fixed size: its layer list is the same, so positions carry over.
        probe_input = keras.Input((_PROBE_SIZE, _PROBE_SIZE, image.shape[-1]))
        probe = factory(include_top=False, weights=None, input_tensor=probe_input, **kwargs)
        positions = pyramid_layer_positions(probe, (_PROBE_SIZE, _PROBE_SIZE))
        # The probe has no layer for the normalisation that precedes ``image`` in the real model.
        offset = len(app.layers) - len(probe.layers)
        positions = {stride: position + offset for stride, position in positions.items()}
    else:
        positions = pyramid_layer_positions(app, (height, width))
    return {level_of_stride(stride): app.layers[position].output for stride, position in sorted(positions.items())}


_CAFFE = {"mean": (123.68, 116.779, 103.939), "std": (1.0, 1.0, 1.0), "bgr": True}


@register_backbone(
    "resnet50", **_CAFFE,
    description="keras.applications.ResNet50 (2048 channels at stride 32), the backbone of the paper's ResNet runs",
)
def resnet50(image: keras.KerasTensor, weights: str | None) -> dict[str, keras.KerasTensor]:
    return application_pyramid(keras.applications.ResNet50, image, weights, RESNET50_IMAGENET_FILE)


@register_backbone("resnet101", **_CAFFE, description="keras.applications.ResNet101 (2048 channels at stride 32)")
def resnet101(image: keras.KerasTensor, weights: str | None) -> dict[str, keras.KerasTensor]:
    return application_pyramid(keras.applications.ResNet101, image, weights, RESNET101_IMAGENET_FILE)


@register_backbone(
    "mobilenet_v2", mean=(127.5, 127.5, 127.5), std=(127.5, 127.5, 127.5),
    description="keras.applications.MobileNetV2 (1280 channels at stride 32), inputs scaled to [-1, 1]",
)
def mobilenet_v2(image: keras.KerasTensor, weights: str | None) -> dict[str, keras.KerasTensor]:
    return application_pyramid(keras.applications.MobileNetV2, image, weights, MOBILENET_V2_IMAGENET_FILE)


@register_backbone(
    "mobilenet_v3_large",
    description="keras.applications.MobileNetV3Large (960 channels at stride 32); it rescales 0-255 itself",
)
def mobilenet_v3_large(image: keras.KerasTensor, weights: str | None) -> dict[str, keras.KerasTensor]:
    return application_pyramid(
        keras.applications.MobileNetV3Large, image, weights, MOBILENET_V3_LARGE_IMAGENET_FILE
    )
