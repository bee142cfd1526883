"""Small layers and constants shared by backbones, necks and heads."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import layers, ops

#: Keras momentum of every BatchNorm layer: the reference implementation's PyTorch momentum 0.1. Keras'
#: default (0.99) lags far behind the weights in short runs: measured on the shapes demo, heatmap peaks at
#: inference were half of those in training mode.
BN_MOMENTUM = 0.9
#: PyTorch's BatchNorm epsilon (Keras' default is 1e-3): layers meant to run PyTorch weights use it.
TORCH_BN_EPSILON = 1e-5


@keras.saving.register_keras_serializable(package="centernet_tf")
class ImageNormalization(layers.Layer):
    """Turns 0-255 RGB pixels into what the backbone expects: optional RGB->BGR, then ``(x - mean) / std``.

    Living inside the model, the same normalisation is used by training, evaluation, prediction and export:
    callers always feed plain RGB pixels.
    """

    def __init__(
        self,
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        bgr: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.bgr = bool(bgr)

    def call(self, images: Any) -> Any:
        x = ops.cast(images, self.compute_dtype)
        if self.bgr:
            x = ops.flip(x, axis=-1)
            mean, std = self.mean[::-1], self.std[::-1]
        else:
            mean, std = self.mean, self.std
        height, width, channels = x.shape[1:]
        if height is None or width is None or channels is None:
            return (x - ops.convert_to_tensor(mean, x.dtype)) / ops.convert_to_tensor(std, x.dtype)
        # The same arithmetic on rows of width * channels values. Broadcasting a 3-vector over the last axis is
        # a slow path in TFLite (XNNPACK): the int8 network at 288x384 on 2 cores took 4.87 ms with it, 3.92 ms
        # in this row-wise form and 3.89 ms with no normalisation at all.
        rows = ops.reshape(x, (-1, height, width * channels))
        rows = (rows - ops.convert_to_tensor(mean * width, x.dtype)) / ops.convert_to_tensor(std * width, x.dtype)
        return ops.reshape(rows, (-1, height, width, channels))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(mean=list(self.mean), std=list(self.std), bgr=self.bgr)
        return config


def conv_bn(
    x: keras.KerasTensor,
    filters: int,
    kernel: int,
    stride: int,
    conv_name: str,
    bn_name: str,
    torch_layout: bool = True,
) -> keras.KerasTensor:
    """Bias-free convolution + BatchNorm; in ``torch_layout`` padded ``kernel // 2`` on every side and with
    PyTorch's epsilon, so PyTorch weights give PyTorch's outputs. (Keras' ``"same"`` puts the extra row of a
    strided convolution at the bottom only, which shifts every feature by half a pixel against PyTorch.)"""
    if torch_layout and stride > 1 and kernel > 1:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{conv_name}_pad")(x)
        padding = "valid"
    else:
        padding = "same"
    x = layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=False, name=conv_name)(x)
    return layers.BatchNormalization(epsilon=TORCH_BN_EPSILON if torch_layout else 1e-3, name=bn_name)(x)


def bilinear_upsampling_kernel(size: int) -> np.ndarray:
    """The ``size x size`` bilinear interpolation kernel (FCN's / the original DLA-up's ``fill_up_weights``)."""
    factor = math.ceil(size / 2)
    centre = (2 * factor - 1 - factor % 2) / (2.0 * factor)
    profile = 1 - np.abs(np.arange(size) / factor - centre)
    return np.outer(profile, profile).astype(np.float32)


@keras.saving.register_keras_serializable(package="centernet_tf")
class BilinearUpsampling(keras.initializers.Initializer):
    """A ``Conv2DTranspose`` kernel ``(k, k, out, in)`` that starts as bilinear upsampling of each channel into
    itself (zero across channels), as the original code's ``fill_up_weights`` intends."""

    def __call__(self, shape: Any, dtype: Any = None) -> Any:
        size, _, out_channels, in_channels = shape
        kernel = np.zeros(shape, np.float32)
        for c in range(min(out_channels, in_channels)):
            kernel[:, :, c, c] = bilinear_upsampling_kernel(size)
        return ops.cast(kernel, dtype or "float32")

    def get_config(self) -> dict[str, Any]:
        return {}


@keras.saving.register_keras_serializable(package="centernet_tf")
class DepthwiseConv2DTranspose(layers.Layer):
    """Per-channel transposed convolution: PyTorch's ``ConvTranspose2d(C, C, k, s, padding=p, groups=C)``.

    Keras has no grouped ``Conv2DTranspose``; a dense one would hold ``C`` times the weights. This computes the
    same thing from builtin ops only (so it runs in TFLite): insert ``s - 1`` zeros between pixels, pad
    ``k - 1 - p`` on each side and run a valid depthwise convolution with the spatially flipped kernel. The
    kernel is kept in PyTorch's orientation, ``(k, k, C, 1)``, and starts as bilinear upsampling.
    """

    def __init__(self, kernel_size: int, strides: int, padding: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.padding = int(padding)
        if not self.strides - 1 <= self.kernel_size - 1 - self.padding <= self.kernel_size - 1:
            raise ValueError(
                f"unsupported kernel_size {kernel_size}, strides {strides}, padding {padding}: needs "
                "0 <= padding <= kernel_size - strides"
            )

    def build(self, input_shape: Any) -> None:
        channels = int(input_shape[-1])
        bilinear = bilinear_upsampling_kernel(self.kernel_size)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.kernel_size, self.kernel_size, channels, 1),
            initializer=lambda shape, dtype=None: ops.cast(
                ops.tile(ops.reshape(bilinear, (*bilinear.shape, 1, 1)), (1, 1, shape[2], 1)), dtype or "float32"
            ),
        )

    def call(self, x: Any) -> Any:
        s, k, p = self.strides, self.kernel_size, self.padding
        shape = ops.shape(x)
        height, width, channels = shape[1], shape[2], x.shape[-1]
        if s > 1:  # each pixel followed by s - 1 zeros, along W then H (5-D at most: TFLite's PACK takes it)
            zeros = [ops.zeros_like(x)] * (s - 1)
            x = ops.reshape(ops.stack([x, *zeros], axis=3), (-1, height, width * s, channels))
            zeros = [ops.zeros_like(x)] * (s - 1)
            x = ops.reshape(ops.stack([x, *zeros], axis=2), (-1, height * s, width * s, channels))
        edge = k - 1 - p
        # The last s - 1 zeros are not part of the dilated input, so the right / bottom pad is shorter by them.
        x = ops.pad(x, [[0, 0], [edge, edge - (s - 1)], [edge, edge - (s - 1)], [0, 0]])
        kernel = ops.cast(ops.flip(ops.flip(self.kernel, 0), 1), x.dtype)
        return ops.depthwise_conv(x, kernel, strides=1, padding="valid")

    def compute_output_shape(self, input_shape: Any) -> tuple:
        def size(n: int | None) -> int | None:
            return None if n is None else (n - 1) * self.strides - 2 * self.padding + self.kernel_size

        return (input_shape[0], size(input_shape[1]), size(input_shape[2]), input_shape[3])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(kernel_size=self.kernel_size, strides=self.strides, padding=self.padding)
        return config


@keras.saving.register_keras_serializable(package="centernet_tf")
class ScaledSoftplus(layers.Layer):
    """``scale * softplus(x)``, written as ``relu(x) + log(1 + exp(-|x|))``: positive distances, live gradients.

    The ``giou_ttf`` box head regresses distances to the box sides. Behind a ReLU (TTFNet's choice) a channel
    whose inputs fall below 0 gets no gradient again, and a box of zero width or height gives GIoU no gradient
    either: on the aquarium photos the left and top distances were 0 at every object after 7 epochs (valid
    mAP@0.5 0.000). Softplus keeps distances positive (in float32 down to ``x`` of about -16) and the gradient
    ``scale * sigmoid(x)`` above 0 everywhere. This form, not
    ``ops.softplus``: TFLite lowers that to ``log(exp(x) + 1)``, which overflows to inf (measured), in float16
    already for distances above about 11 x scale.
    """

    def __init__(self, scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, x: Any) -> Any:
        return self.scale * (ops.relu(x) + ops.log(1.0 + ops.exp(-ops.abs(x))))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(scale=self.scale)
        return config
