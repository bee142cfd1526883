"""Transfer learning: freeze or unfreeze the backbone of a CenterNet (``model.backbone``, a nested model)."""

from __future__ import annotations

import keras
from keras import layers

from centernet_tf.config import TrainConfig
from centernet_tf.model.backbones.registry import features_by_stride, pyramids_by_stack
from centernet_tf.model.centernet import require_centernet


def backbone_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The backbone's layers (its normalisation included), in graph order."""
    backbone = require_centernet(model, "finding the backbone").backbone
    return [layer for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer)]


def layers_up_to_stride(model: keras.Model, stride: int) -> list[keras.layers.Layer]:
    """The backbone layers that its stride-``stride`` features are computed from: the stem and the stages
    before that level, found from the graph (a sub-model ending at that output), not from names. A layer used
    both there and later (none of the shipped backbones has one) would be among them."""
    backbone = require_centernet(model, "finding the backbone").backbone
    stacks = pyramids_by_stack(backbone.output)
    if len(stacks) > 1:  # an hourglass' stride-4 features come out of a whole hourglass, not of a stem
        raise ValueError(f"train.fine_tune_frozen_stride needs a backbone of one stack; this one has {len(stacks)}")
    by_stride = features_by_stride(stacks[0])
    if stride not in by_stride:
        raise ValueError(f"train.fine_tune_frozen_stride {stride}: the backbone gives features at strides "
                         f"{sorted(by_stride)} only")
    feeding = keras.Model(backbone.input, by_stride[stride])
    return [layer for layer in feeding.layers if not isinstance(layer, keras.layers.InputLayer)]


def set_backbone_trainable(model: keras.Model, trainable: bool, train_batch_norm: bool = True) -> int:
    """Freeze (``trainable=False``) or unfreeze the backbone; returns how many layers were changed.

    A Keras BatchNormalization layer with ``trainable=False`` runs in inference mode: it normalises with its
    moving statistics and does not update them. Frozen therefore means weights *and* statistics fixed. With
    ``train_batch_norm=False`` an unfrozen backbone still keeps its BatchNorm layers frozen, which is what
    fine-tuning pretrained weights with small batches needs (batch statistics of 8 images would overwrite
    the ImageNet ones). Recompile the model afterwards: the optimizer is built for one set of variables.
    """
    found = backbone_layers(model)
    model.backbone.trainable = trainable
    for layer in found:
        layer.trainable = trainable and (train_batch_norm or not isinstance(layer, layers.BatchNormalization))
    return len(found)


def unfreeze_for_fine_tuning(model: keras.Model, train: TrainConfig) -> tuple[int, int]:
    """Make trainable what the fine-tuning phase trains, as ``train`` says (stated here once: the phases, the
    time-budget planner's step timing and benchmarks/train_step_time.py all fine-tune this way): the backbone,
    its BatchNorm only with ``fine_tune_batch_norm``, and the layers of :func:`layers_up_to_stride` kept frozen
    with ``fine_tune_frozen_stride``. Returns (backbone layers, layers kept frozen by the stride).
    """
    changed = set_backbone_trainable(model, True, train_batch_norm=train.fine_tune_batch_norm)
    kept = layers_up_to_stride(model, train.fine_tune_frozen_stride) if train.fine_tune_frozen_stride else []
    for layer in kept:
        layer.trainable = False
    return changed, len(kept)
