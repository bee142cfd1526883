"""Transfer learning: find the backbone inside a built CenterNet and freeze or unfreeze it.

The backbone is not a nested model (``keras.applications`` layers are inlined into the functional graph), so it
is found from the graph itself: every layer between the ``normalize`` layer and the first decoder layer. That
works the same for a freshly built model and for one loaded from a ``.keras`` file.
"""

from __future__ import annotations

import keras
from keras import layers

#: The layers that bracket the backbone in :func:`centernet_tf.model.build_centernet`.
NORMALIZATION_LAYER = "normalize"
FIRST_DECODER_LAYER = "decoder1_deconv"


def backbone_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The backbone's layers, in graph order (no input, normalisation, decoder or head layers)."""
    try:
        start = model.get_layer(NORMALIZATION_LAYER).output
        end = model.get_layer(FIRST_DECODER_LAYER).input
    except ValueError as error:
        raise ValueError(f"{model.name} is not a CenterNet from build_centernet: {error}") from None
    # A throwaway functional view over the same layer objects: its layer list is exactly the backbone.
    view = keras.Model(start, end)
    return [layer for layer in view.layers if not isinstance(layer, keras.layers.InputLayer)]


def set_backbone_trainable(model: keras.Model, trainable: bool, train_batch_norm: bool = True) -> int:
    """Freeze (``trainable=False``) or unfreeze the backbone; returns how many layers were changed.

    A Keras BatchNormalization layer with ``trainable=False`` runs in inference mode: it normalises with its
    moving statistics and does not update them. Frozen therefore means weights *and* statistics fixed. With
    ``train_batch_norm=False`` an unfrozen backbone still keeps its BatchNorm layers frozen, which is what
    fine-tuning pretrained weights with small batches needs (batch statistics of 8 images would overwrite
    the ImageNet ones). Recompile the model afterwards: the optimizer is built for one set of variables.
    """
    changed = 0
    for layer in backbone_layers(model):
        layer.trainable = trainable and (train_batch_norm or not isinstance(layer, layers.BatchNormalization))
        changed += 1
    return changed
