"""Transfer learning: freeze or unfreeze the backbone of a CenterNet (``model.backbone``, a nested model)."""

from __future__ import annotations

import keras
from keras import layers

from centernet_tf.model.centernet import require_centernet


def backbone_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The backbone's layers (its normalisation included), in graph order."""
    backbone = require_centernet(model, "finding the backbone").backbone
    return [layer for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer)]


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
