"""The CenterNet model: a nested backbone, a neck chosen by name and heads on each output stack.

:class:`CenterNet` is a functional ``keras.Model`` built from those parts (the keras-hub task pattern): its
``.keras`` file holds the backbone, the neck's name, the head settings, the class names, the decoder settings
and the loss weights, so whoever loads it can train, fine-tune, evaluate, predict and export with the run's
own settings. Its ``compute_loss`` reads the whole target dict (see :mod:`centernet_tf.model.losses`).
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
from keras import layers

from centernet_tf.labels import class_names_for
from centernet_tf.model.backbones import available_backbones, build_backbone
from centernet_tf.model.backbones.registry import features_by_stride
from centernet_tf.model.decode import CenterNetDecoder, decoder_settings
from centernet_tf.model.layers import (  # noqa: F401  (ImageNormalization re-exported)
    BN_MOMENTUM,
    ImageNormalization,
    ScaledSoftplus,
)
from centernet_tf.model.losses import CenterNetLoss
from centernet_tf.model.necks import build_neck

logger = logging.getLogger(__name__)

#: Bias of the heatmap logits, so the initial sigmoid is ~0.1 (focal-loss prior from RetinaNet / CenterNet).
HEATMAP_BIAS_INIT = -2.19
#: Std of the final 1x1 convs' normal init. Heatmap: RetinaNet's prior init, so every pixel starts at
#: sigmoid(bias) ~ 0.1 and the first focal loss is ~13 per object; with Glorot init the logits spread by ~1 and
#: the first loss on aquarium photos was 156-196 (measured), which the first epochs spent undoing. wh / offset:
#: 0.001, as the original code's ``fill_fc_weights``.
HEATMAP_KERNEL_STD = 0.01
REGRESSION_KERNEL_STD = 0.001
#: The ``giou_ttf`` box head's distances are ``softplus(conv) * this`` (output pixels; TTFNet has ``relu``,
#: see :class:`~centernet_tf.model.layers.ScaledSoftplus`): TTFNet's ``wh_offset_base``, 16 input pixels at
#: stride 4. Adam moves each weight by about the learning rate per step, so a raw output would need
#: thousands of steps to reach the 20-100 output pixels of large boxes.
TTF_DISTANCE_SCALE = 4.0
#: Input size used to derive the output stride of a model built for any input size.
_PROBE_SIZE = 512


def _head(
    features: keras.KerasTensor,
    channels: int,
    name: str,
    head_conv: int,
    batch_norm: bool,
    activation: str | None = None,
    bias_init: float = 0.0,
    kernel_std: float = REGRESSION_KERNEL_STD,
    scale: float | None = None,
) -> tuple[keras.KerasTensor, layers.Layer]:
    """Conv3x3(head_conv) [+ BN] + ReLU -> Conv1x1(channels) [-> scale x softplus]; the output and the 1x1 layer."""
    x = layers.Conv2D(head_conv, 3, padding="same", use_bias=not batch_norm, name=f"{name}_head_conv")(features)
    if batch_norm:
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_head_bn")(x)
    x = layers.ReLU(name=f"{name}_head_relu")(x)
    output_layer = layers.Conv2D(
        channels,
        1,
        activation=activation,
        kernel_initializer=keras.initializers.RandomNormal(stddev=kernel_std),
        bias_initializer=keras.initializers.Constant(bias_init),
        dtype="float32",  # keep outputs (and the losses on them) in float32 under mixed precision
        name=name if scale is None else f"{name}_conv",
    )
    output = output_layer(x)
    if scale is not None:
        output = ScaledSoftplus(scale, dtype="float32", name=name)(output)
    return output, output_layer


def _box_features(
    pyramid: dict[str, keras.KerasTensor], features: keras.KerasTensor, head_stride: int, stride: int
) -> keras.KerasTensor:
    """The box head's input: the heads' features (at ``head_stride``) + the backbone's ``stride`` level (1x1 conv
    to their channels, bilinear upsampling). Why: a box's width and height are a property of the whole object,
    which the stride-4 maps of ``fpn`` describe poorly (on large objects a linear probe's prediction of the log
    aspect ratio from the neck's features at the centres correlated 0.18 with it, from the backbone's stride-16
    level 0.94); the heatmap keeps its input."""
    by_stride = features_by_stride(pyramid)
    if stride not in by_stride or stride <= head_stride:
        coarser = sorted(s for s in by_stride if s > head_stride)
        raise ValueError(
            f"box_features_stride={stride}: the backbone has no such level coarser than the heads' stride "
            f"{head_stride}; choose one of {coarser}"
        )
    extra = layers.Conv2D(int(features.shape[-1]), 1, use_bias=False, name="box_features_reduce")(by_stride[stride])
    extra = layers.UpSampling2D(stride // head_stride, interpolation="bilinear", name="box_features_upsample")(extra)
    return layers.Add(name="box_features_add")([features, extra])


def _stride_of(image: keras.KerasTensor, features: keras.KerasTensor) -> int:
    """Input height / ``features`` height, from the static shapes (or a probe size when they are dynamic)."""
    height, map_height = image.shape[1], features.shape[1]
    if height is None or map_height is None:
        height = _PROBE_SIZE
        probe = keras.Model(image, features).compute_output_spec(keras.KerasTensor((1, _PROBE_SIZE, _PROBE_SIZE, 3)))
        map_height = probe.shape[1]
    return int(height // map_height)


def stack_prefix(stack: int, num_stacks: int) -> str:
    """Output-key prefix of a stack: ``""`` for the last (the one inference uses), ``"stack1_"``... before it."""
    return "" if stack == num_stacks - 1 else f"stack{stack + 1}_"


@keras.saving.register_keras_serializable(package="centernet_tf")
class CenterNet(keras.Model):
    """CenterNet = ``backbone`` (nested model, RGB 0-255 -> ``{"P{level}": features}``) -> neck -> heads.

    Input ``"image"``: RGB pixels in 0-255. Outputs: ``"heatmap"`` (sigmoid scores, ``num_classes`` channels),
    ``"wh"`` and ``"offset"`` (2 channels each; with the loss' ``box="giou_ttf"``, ``"wh"`` holds the 4
    distances to the box sides and there is no ``"offset"``) of the last stack, plus ``"stack{i}_heatmap"``... of earlier
    stacks when the neck has several. ``output_stride`` is derived from the shapes.

    ``head_batch_norm``: True for Conv3x3 + BN + ReLU heads (this library's default, steadier from scratch),
    False for the original code's Conv3x3 with bias + ReLU. ``box_features_stride``: None, or a coarser backbone
    level (e.g. 16) added to the box head's input only (:func:`_box_features`). ``class_names``, ``decoder`` (a
    :class:`CenterNetDecoder`, or its settings) and ``loss`` (a :class:`CenterNetLoss` or its config) travel
    with the model; :attr:`decoder` is the decoder at the model's own output stride.
    Train with ``model.compile(optimizer=...)`` and ``model.fit`` on ``(image, targets)`` where ``targets`` is
    the dict of :func:`centernet_tf.model.targets.encode_targets`: no ``loss=`` is needed.
    """

    def __init__(
        self,
        backbone: keras.Model,
        num_classes: int,
        neck: str = "deconv3",
        head_conv: int = 64,
        head_batch_norm: bool = True,
        class_names: Sequence[str] | None = None,
        decoder: CenterNetDecoder | dict[str, Any] | None = None,
        loss: CenterNetLoss | dict[str, Any] | None = None,
        box_features_stride: int | None = None,
        **kwargs: Any,
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        centernet_loss = loss if isinstance(loss, CenterNetLoss) else CenterNetLoss(**(loss or {}))
        image = keras.Input(shape=backbone.input_shape[1:], name="image")
        pyramid = backbone(image)
        stacks = build_neck(neck, pyramid)
        if box_features_stride is not None and len(stacks) > 1:
            raise ValueError(f"box_features_stride needs a neck with one output stack; {neck!r} has {len(stacks)}")
        # Every stack is at the same stride and the heads keep their input's size, so this is the outputs' stride.
        output_stride = _stride_of(image, stacks[-1])
        outputs: dict[str, keras.KerasTensor] = {}
        head_layers: list[dict[str, layers.Layer]] = []
        for stack, features in enumerate(stacks):
            prefix = stack_prefix(stack, len(stacks))
            specs = {
                "heatmap": (num_classes, "sigmoid", HEATMAP_BIAS_INIT, HEATMAP_KERNEL_STD, None),
                "wh": (2, None, 0.0, REGRESSION_KERNEL_STD, None),
                "offset": (2, None, 0.0, REGRESSION_KERNEL_STD, None),
            }
            if centernet_loss.box == "giou_ttf":
                specs["wh"] = (4, None, 0.0, REGRESSION_KERNEL_STD, TTF_DISTANCE_SCALE)
            inputs = {term: features for term in specs}
            if box_features_stride is not None:
                inputs["wh"] = _box_features(pyramid, features, output_stride, int(box_features_stride))
            finals = {}
            for term in centernet_loss.term_names:
                channels, activation, bias, std, scale = specs[term]
                outputs[prefix + term], finals[term] = _head(
                    inputs[term], channels, prefix + term, head_conv, head_batch_norm, activation, bias, std, scale
                )
            head_layers.append(finals)
        kwargs.setdefault("name", f"centernet_{backbone.name}")
        super().__init__(inputs=image, outputs=outputs, **kwargs)
        for layer in self.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = BN_MOMENTUM

        self.backbone = backbone
        self.num_classes = int(num_classes)
        self.neck = str(neck)
        self.head_conv = int(head_conv)
        self.head_batch_norm = bool(head_batch_norm)
        self.box_features_stride = None if box_features_stride is None else int(box_features_stride)
        self.class_names = [str(n) for n in class_names] if class_names is not None else None
        # Only the settings are kept (a decoder is rebuilt at the model's stride, which the shapes decide below);
        # a file saved before the decoder chose its own keys gives a plain dict, read the same way.
        self._decoder_settings = decoder_settings(decoder or {})
        CenterNetDecoder(**self._decoder_settings)  # the decoder checks its settings now, not at first use
        self.centernet_loss = centernet_loss
        self.num_stacks = len(stacks)
        #: The final 1x1 convolution of each head of the last stack (export keeps them float in int8 files).
        self.head_output_layers = head_layers[-1]
        #: The heatmap's final convolution of every stack: one output channel per class.
        self.heatmap_output_layers = [finals["heatmap"] for finals in head_layers]
        #: The box-size head's final convolution of every stack (``model.size_prior`` sets its bias).
        self.size_output_layers = [finals["wh"] for finals in head_layers]
        self.output_stride = output_stride
        #: Symbolic outputs of the parts in this graph, to cut sub-models (profiling, features) without
        #: looking layers up by name: the backbone's levels and the last stack's neck features.
        self.part_outputs = {"backbone": list(pyramid.values()), "neck": stacks[-1]}
        self.term_trackers = {
            term: keras.metrics.Mean(name=f"{term}_loss") for term in centernet_loss.term_names
        }

    @property
    def stack_prefixes(self) -> list[str]:
        return [stack_prefix(i, self.num_stacks) for i in range(self.num_stacks)]

    @property
    def saved_decoder_settings(self) -> dict[str, Any]:
        """The decoder settings the model was given (empty for a converted centernet-tf 0.1 file)."""
        return dict(self._decoder_settings)

    @property
    def decoder(self) -> CenterNetDecoder:
        """The decoder with the settings saved in the model and its own output stride."""
        return CenterNetDecoder(**self._decoder_settings, stride=self.output_stride)

    def compute_loss(
        self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None, training: bool = True
    ) -> Any:
        """The CenterNet loss of all stacks from the whole target dict; each term is tracked as a metric."""
        terms = self.centernet_loss(y, y_pred, self.stack_prefixes)
        # Under tf.distribute each replica holds its share of the global-batch loss (the shares add up, and so
        # do their gradients); a metric averages over replicas, so it is given the share times their number.
        replicas = self.distribute_strategy.num_replicas_in_sync
        for term, tracker in self.term_trackers.items():
            tracker.update_state(terms[term] * replicas)
        total = terms["loss"]
        if self.losses:
            total = total + keras.ops.sum(self.losses)
        return total

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
            "neck": self.neck,
            "head_conv": self.head_conv,
            "head_batch_norm": self.head_batch_norm,
            "class_names": self.class_names,
            "decoder": decoder_settings(self.decoder),
            "loss": self.centernet_loss.get_config(),
            # only when set, so a model without the path still loads in versions before the setting
            **({"box_features_stride": self.box_features_stride} if self.box_features_stride is not None else {}),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> CenterNet:
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"], custom_objects=custom_objects)
        return cls(**config)


def build_centernet(
    num_classes: int,
    backbone: str = "resnet50",
    input_shape: tuple[int | None, int | None, int] = (512, 512, 3),
    backbone_weights: str | None = None,
    head_conv: int = 64,
    neck: str = "deconv3",
    head_batch_norm: bool = True,
    class_names: Sequence[str] | None = None,
    decoder: CenterNetDecoder | dict[str, Any] | None = None,
    loss: CenterNetLoss | dict[str, Any] | None = None,
    normalization: dict[str, Any] | None = None,
    synchronized_batch_norm: bool = False,
    box_features_stride: int | None = None,
) -> CenterNet:
    """Build a :class:`CenterNet` from registered parts by name.

    ``backbone_weights``: None (random init), ``"imagenet"`` (download or Keras cache) or a local weights file.
    Input height and width must be multiples of the backbone's ``size_multiple`` (32 for most).
    ``normalization`` replaces the backbone's registered input normalisation (see ``build_backbone``).
    ``synchronized_batch_norm``: BatchNorm statistics over the global batch of all ``tf.distribute`` replicas.
    ``box_features_stride``: the box head also reads the backbone's level of that stride (see :func:`_box_features`).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    parts = build_backbone(backbone, tuple(input_shape), backbone_weights, normalization)
    model = CenterNet(
        parts, num_classes, neck=neck, head_conv=head_conv, head_batch_norm=head_batch_norm,
        class_names=class_names, decoder=decoder, loss=loss, box_features_stride=box_features_stride,
    )
    if synchronized_batch_norm:
        for layer in [*model.backbone.layers, *model.layers]:
            if isinstance(layer, layers.BatchNormalization):
                layer.synchronized = True
    return model


def decoder_for(model: keras.Model, overrides: dict[str, Any] | None = None) -> CenterNetDecoder:
    """The one way to a model's decoder: the settings saved with ``model`` at its output stride, ``overrides``
    (any of :data:`~centernet_tf.model.decode.DECODER_SETTINGS`) on top; a plain model from centernet-tf 0.1 gets the
    default settings at stride 4."""
    saved = decoder_settings(model.decoder) if isinstance(model, CenterNet) else {}
    return CenterNetDecoder(**{**saved, **(overrides or {})}, stride=getattr(model, "output_stride", 4))


def load_centernet(path: str | Path, compile: bool = False) -> CenterNet:
    """Load a ``.keras`` file as a :class:`CenterNet`; a file of centernet-tf 0.1 (one flat functional model) is
    converted to the model of parts with the same weights, its class names read from ``labels.txt`` beside it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model not found: {path}")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path}: not a valid .keras file (not a zip archive: truncated, or another format; a SavedModel is a "
            "directory, a TFLite model ends in .tflite)"
        )
    try:
        model = keras.models.load_model(path, compile=compile)
    except (zipfile.BadZipFile, KeyError, EOFError) as error:
        raise ValueError(f"{path}: not a valid .keras file ({type(error).__name__}: {error})") from error
    if isinstance(model, CenterNet):
        return model
    class_names = class_names_for(path)
    upgraded = upgrade_legacy_model(model, class_names)
    logger.warning(
        "%s was written by centernet-tf 0.1; converted it to a model of parts with the same weights. "
        "Save it again (model.save) to skip this step next time.", path,
    )
    return upgraded


def upgrade_legacy_model(old: keras.Model, class_names: Sequence[str] | None = None) -> CenterNet:
    """The :class:`CenterNet` equivalent of a flat 0.1 model (``centernet_<backbone>``, backbone -> deconv3 ->
    BN heads), weights copied in graph order; an error saying how to re-export when it does not fit."""
    how = (
        "Re-export it with the version that wrote it, or retrain: python train.py --config <its config.yaml>."
    )
    backbone = old.name.removeprefix("centernet_")
    if backbone not in available_backbones():
        raise TypeError(f"{old.name!r} is not a CenterNet this version can read (backbone {backbone!r}?). {how}")
    weights = old.get_weights()
    outputs = old(keras.ops.zeros((1, *[s or 64 for s in old.input_shape[1:3]], 3)))
    num_classes = int(outputs["heatmap"].shape[-1])
    head_conv = int(weights[-2].shape[2])  # the offset head's 1x1 kernel [1, 1, head_conv, 2]
    new = build_centernet(
        num_classes, backbone, tuple(old.input_shape[1:]), head_conv=head_conv, class_names=class_names
    )
    shapes_new = [tuple(w.shape) for w in new.get_weights()]
    if shapes_new != [tuple(w.shape) for w in weights]:
        raise TypeError(f"{old.name!r}: its weights do not fit the current {backbone} CenterNet. {how}")
    new.set_weights(weights)
    return new


def require_centernet(model: keras.Model, purpose: str) -> CenterNet:
    """``model`` if it is a :class:`CenterNet`; else an error that says how to get one."""
    if isinstance(model, CenterNet):
        return model
    raise TypeError(
        f"{purpose} needs a CenterNet model of parts (backbone, neck, heads); {model.name!r} is a plain "
        f"{type(model).__name__}, as written by centernet-tf 0.1. It still predicts, evaluates and exports; to "
        "fine-tune or freeze it, load it with centernet_tf.model.centernet.load_centernet(path), which converts it."
    )
