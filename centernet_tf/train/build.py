"""The config's model: built with its class names, decoder settings and loss, initialised from ``init_from``, and
its float32 twin for saving."""

from __future__ import annotations

import dataclasses
from typing import Any

from centernet_tf.config import Config, LossConfig
from centernet_tf.data.index import DatasetIndex
from centernet_tf.model.centernet import CenterNet, build_centernet
from centernet_tf.model.decode import decoder_settings
from centernet_tf.model.losses import CenterNetLoss
from centernet_tf.train.init_from import image_normalization, load_init_source, transfer_weights
from centernet_tf.train.size_prior import apply_size_prior, median_box_size
from centernet_tf.model.policy import dtype_policy


def loss_from_config(loss: LossConfig) -> CenterNetLoss:
    """The CenterNet loss of the config's ``loss`` section (its keys are the loss' arguments)."""
    return CenterNetLoss(**dataclasses.asdict(loss))


def float32_model(config: Config, model: CenterNet) -> CenterNet:
    """``model`` itself when it computes in float32, else a float32 twin with its weights: what is saved, so the
    ``.keras`` file, its exports and TFLite run in float32 whatever precision trained it."""
    if model.dtype_policy.name == "float32":
        return model
    plain = dataclasses.replace(config, model=dataclasses.replace(config.model, init_from=None))  # weights follow
    with dtype_policy("float32"):
        twin = model_from_config(plain, list(model.class_names or []), normalization=image_normalization(model))
    twin.set_weights(model.get_weights())
    return twin


def model_from_config(
    config: Config, class_names: list[str], synchronized_batch_norm: bool = False,
    normalization: dict[str, Any] | None = None, train_index: DatasetIndex | None = None,
) -> CenterNet:
    """The config's CenterNet; class names, decoder settings and loss weights are saved with it.
    ``normalization`` replaces the input normalisation (default: the backbone's, or ``model.init_from``'s).
    ``train_index``: the training boxes, whose median size starts the size head with ``model.size_prior``
    (before ``init_from``, whose heads win where they fit)."""
    m = config.model
    source = load_init_source(m.init_from, m.init_arch, m.init_dataset) if m.init_from else None
    if normalization is None and source is not None:
        normalization = image_normalization(source)
    model = build_centernet(
        len(class_names),
        backbone=m.backbone,
        input_shape=(m.input_size[0], m.input_size[1], 3),
        backbone_weights=m.backbone_weights,
        head_conv=m.head_conv,
        neck=m.neck,
        head_batch_norm=m.head_batch_norm,
        class_names=class_names,
        decoder=decoder_settings(config.eval),
        loss=loss_from_config(config.loss),
        normalization=normalization,
        synchronized_batch_norm=synchronized_batch_norm,
        box_features_stride=m.box_features_stride,
    )
    if m.size_prior and train_index is not None:
        apply_size_prior(model, *median_box_size(train_index, (m.input_size[0], m.input_size[1]), model.output_stride))
    if source is not None:
        transfer_weights(source, model)
    return model
