"""Modulated deformable convolution (DCNv2) from builtin TensorFlow ops: trains, saves, and converts to TFLite.

The semantics are those of the DCNv2 op the original CenterNet compiles (``DCNv2/dcn_v2.py`` and its CUDA
im2col kernel), so its checkpoints load unchanged:

- an inner ``conv_offset_mask`` convolution (same kernel, stride and padding; zero-initialised, so a new layer
  starts as a plain convolution whose every sample is weighted 0.5) gives ``3 * kh * kw`` channels; the first
  ``2 * kh * kw`` are the offsets, channel ``2k`` the vertical and ``2k + 1`` the horizontal shift of kernel tap
  ``k = i * kw + j``; the last ``kh * kw`` pass through a sigmoid as the taps' masks;
- tap ``k`` of output ``(y, x)`` samples the input at ``(y * stride - pad + i * dilation + dy,
  x * stride - pad + j * dilation + dx)`` by bilinear interpolation; a sample counts only when it lies in
  ``(-1, H) x (-1, W)``, and each of its four neighbours only when it is inside the map (zero otherwise);
- the samples times their masks go through the layer's ``kernel`` and ``bias`` as a convolution would.

The sampling is four ``tf.gather`` calls on the flattened map and a weighted sum; the convolution is one
matrix product over the ``kh * kw * C`` sampled columns (im2col). No custom op: CPU, GPU, SavedModel and TFLite
builtins. Only one deformable group, the original CenterNet's setting throughout.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from keras import layers


def _pair(value: int | tuple[int, int] | list[int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def modulated_deformable_columns(
    inputs: tf.Tensor,
    offsets: tf.Tensor,
    masks: tf.Tensor,
    kernel_size: tuple[int, int],
    strides: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> tf.Tensor:
    """The DCNv2 im2col: ``[B, Ho, Wo, kh * kw * C]`` columns (tap-major, then channel) of ``inputs``
    ``[B, H, W, C]`` sampled at the ``offsets`` ``[B, Ho, Wo, 2 * kh * kw]`` (dy, dx per tap) and weighted by
    ``masks`` ``[B, Ho, Wo, kh * kw]``."""
    kh, kw = kernel_size
    taps = kh * kw
    shape = tf.shape(inputs)
    batch, height, width, channels = shape[0], shape[1], shape[2], inputs.shape[-1]
    out_h, out_w = tf.shape(offsets)[1], tf.shape(offsets)[2]
    dtype = inputs.dtype

    # Where each tap samples before its offset: [Ho, 1, taps] rows and [1, Wo, taps] columns.
    tap_rows = tf.repeat(tf.range(kh), kw) * dilation[0]
    tap_cols = tf.tile(tf.range(kw), [kh]) * dilation[1]
    base_y = tf.cast(tf.range(out_h)[:, None, None] * strides[0] - padding[0] + tap_rows[None, None, :], dtype)
    base_x = tf.cast(tf.range(out_w)[None, :, None] * strides[1] - padding[1] + tap_cols[None, None, :], dtype)
    y = base_y[None] + offsets[..., 0::2]  # [B, Ho, Wo, taps]
    x = base_x[None] + offsets[..., 1::2]

    h_f, w_f = tf.cast(height, dtype), tf.cast(width, dtype)
    inside = tf.cast((y > -1.0) & (y < h_f) & (x > -1.0) & (x < w_f), dtype) * masks
    y0, x0 = tf.floor(y), tf.floor(x)
    ly, lx = y - y0, x - x0  # the gradient to the offsets flows through these
    y0i, x0i = tf.cast(y0, tf.int32), tf.cast(x0, tf.int32)
    flat = tf.reshape(inputs, [-1, channels])  # [B * H * W, C]
    image_start = (tf.range(batch) * height * width)[:, None, None, None]

    corners = []
    for dy, dx, weight in ((0, 0, (1 - ly) * (1 - lx)), (0, 1, (1 - ly) * lx), (1, 0, ly * (1 - lx)), (1, 1, ly * lx)):
        yi, xi = y0i + dy, x0i + dx
        valid = (yi >= 0) & (yi < height) & (xi >= 0) & (xi < width)
        index = image_start + tf.clip_by_value(yi, 0, height - 1) * width + tf.clip_by_value(xi, 0, width - 1)
        corners.append(tf.gather(flat, index) * (weight * tf.cast(valid, dtype) * inside)[..., None])
    return tf.reshape(tf.add_n(corners), [batch, out_h, out_w, taps * channels])


@keras.saving.register_keras_serializable(package="centernet_tf")
class DeformableConv2D(layers.Layer):
    """DCNv2 with its own offset-and-mask branch, as the original ``DCN`` module (see the module docstring).

    ``padding`` is explicit, in pixels per side, as PyTorch's ``padding`` (the original uses ``kernel // 2``).
    Weights: ``conv_offset_mask`` (a ``Conv2D`` of ``3 * kh * kw`` filters), ``kernel`` ``[kh, kw, C, filters]``
    and ``bias``.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int] = 3,
        strides: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | None = None,
        dilation_rate: int | tuple[int, int] = 1,
        use_bias: bool = True,
        kernel_initializer: Any = "he_uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(filters, int) or filters < 1:
            raise ValueError(f"filters must be a positive int, got {filters!r}")
        self.filters = filters
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
        if padding is None:
            padding = (self.dilation_rate[0] * (self.kernel_size[0] - 1) // 2,
                       self.dilation_rate[1] * (self.kernel_size[1] - 1) // 2)
        self.padding = _pair(padding, "padding")
        if min(*self.kernel_size, *self.strides, *self.dilation_rate) < 1 or min(self.padding) < 0:
            raise ValueError("kernel_size, strides and dilation_rate must be >= 1 and padding >= 0")
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        taps = self.kernel_size[0] * self.kernel_size[1]
        self.pad = layers.ZeroPadding2D(self.padding, name="pad", dtype=self.dtype_policy)
        self.conv_offset_mask = layers.Conv2D(
            3 * taps, self.kernel_size, strides=self.strides, dilation_rate=self.dilation_rate, padding="valid",
            kernel_initializer="zeros", bias_initializer="zeros", name="conv_offset_mask", dtype=self.dtype_policy,
        )

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("DeformableConv2D needs a known number of input channels")
        self.pad.build(input_shape)
        self.conv_offset_mask.build(self.pad.compute_output_shape(input_shape))
        self.kernel = self.add_weight(name="kernel", shape=(*self.kernel_size, channels, self.filters),
                                      initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros") if self.use_bias else None

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        taps = self.kernel_size[0] * self.kernel_size[1]
        offsets_and_masks = self.conv_offset_mask(self.pad(inputs))
        offsets = offsets_and_masks[..., : 2 * taps]
        masks = tf.sigmoid(offsets_and_masks[..., 2 * taps:])
        # Sample positions in float32 even under mixed precision: bfloat16 cannot tell x = 300 from 300.5.
        wide = tf.float32 if inputs.dtype in (tf.float16, tf.bfloat16) else inputs.dtype
        columns = modulated_deformable_columns(
            tf.cast(inputs, wide), tf.cast(offsets, wide), tf.cast(masks, wide), self.kernel_size, self.strides,
            self.padding, self.dilation_rate,
        )
        columns = tf.cast(columns, inputs.dtype)
        kernel = tf.reshape(tf.cast(self.kernel, columns.dtype), [-1, self.filters])
        shape = tf.shape(columns)
        outputs = tf.reshape(tf.matmul(tf.reshape(columns, [-1, columns.shape[-1]]), kernel),
                             [shape[0], shape[1], shape[2], self.filters])
        if self.bias is not None:
            outputs += tf.cast(self.bias, outputs.dtype)
        return outputs

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*self.conv_offset_mask.compute_output_shape(self.pad.compute_output_shape(input_shape))[:3],
                self.filters)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "dilation_rate": self.dilation_rate,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
