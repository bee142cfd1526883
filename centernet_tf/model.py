"""The CenterNet network: backbone -> 3 transposed-conv upsampling blocks -> heatmap / wh / offset heads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import layers, ops

from centernet_tf.backbones import get_backbone

#: Output stride of the network: the heads predict on a map 4x smaller than the input.
OUTPUT_STRIDE = 4
#: Bias of the heatmap logits, so the initial sigmoid is ~0.1 (focal-loss prior from RetinaNet / CenterNet).
HEATMAP_BIAS_INIT = -2.19
DECODER_FILTERS = (256, 128, 64)
#: Keras momentum of every BatchNorm layer: the reference implementation's PyTorch momentum 0.1. Keras'
#: default (0.99) lags far behind the weights in short runs: measured on the shapes demo, heatmap peaks at
#: inference were half of those in training mode.
BN_MOMENTUM = 0.9


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


def _conv_bn_relu(x: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _head(
    features: keras.KerasTensor,
    channels: int,
    name: str,
    head_conv: int,
    activation: str | None = None,
    bias_init: float = 0.0,
) -> keras.KerasTensor:
    x = _conv_bn_relu(features, head_conv, name=f"{name}_head")
    return layers.Conv2D(
        channels,
        1,
        activation=activation,
        bias_initializer=keras.initializers.Constant(bias_init),
        dtype="float32",  # keep outputs (and the losses on them) in float32 under mixed precision
        name=name,
    )(x)


def build_centernet(
    num_classes: int,
    backbone: str = "resnet50",
    input_shape: tuple[int | None, int | None, int] = (512, 512, 3),
    backbone_weights: str | None = None,
    head_conv: int = 64,
) -> keras.Model:
    """Build CenterNet as a functional Keras model.

    Input ``"image"``: RGB pixels in 0-255 (any float or int dtype), height and width divisible by 32.
    Output dict: ``"heatmap"`` (sigmoid scores, ``num_classes`` channels), ``"wh"`` and ``"offset"`` (2 channels),
    all at stride 4. ``backbone_weights``: None (random init), ``"imagenet"`` (Keras download) or a weights file.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    height, width = input_shape[0], input_shape[1]
    for size in (height, width):
        if size is not None and size % 32:
            raise ValueError(f"input height and width must be divisible by 32, got {input_shape[:2]}")
    spec = get_backbone(backbone)
    image = keras.Input(shape=tuple(input_shape), name="image")
    x = ImageNormalization(spec.mean, spec.std, spec.bgr, name="normalize")(image)
    x = spec.build(x, backbone_weights)
    for i, filters in enumerate(DECODER_FILTERS, start=1):
        x = layers.Conv2DTranspose(
            filters, 4, strides=2, padding="same", use_bias=False, name=f"decoder{i}_deconv"
        )(x)
        x = layers.BatchNormalization(name=f"decoder{i}_bn")(x)
        x = layers.ReLU(name=f"decoder{i}_relu")(x)
    outputs = {
        "heatmap": _head(x, num_classes, "heatmap", head_conv, "sigmoid", HEATMAP_BIAS_INIT),
        "wh": _head(x, 2, "wh", head_conv),
        "offset": _head(x, 2, "offset", head_conv),
    }
    model = keras.Model(image, outputs, name=f"centernet_{backbone}")
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    return model

