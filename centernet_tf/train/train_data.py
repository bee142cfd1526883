"""The training ``tf.data`` pipeline from a config: augmentation, targets at the model's stride, steps per epoch."""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow as tf

from centernet_tf.config import Config
from centernet_tf.data.augment import Augmentation
from centernet_tf.data.index import DatasetIndex
from centernet_tf.data.pipeline import DecodeWatch, build_train_dataset


def train_dataset_from_config(
    config: Config, train_index: DatasetIndex, stride: int = 4, input_context: tf.distribute.InputContext | None = None,
    watch: DecodeWatch | None = None,
) -> tuple[Any, int]:
    """The repeated, augmented training ``tf.data.Dataset`` (targets at the model's output ``stride``) and the
    number of steps in one epoch.

    With an ``input_context`` (one input pipeline per worker of a multi-worker run) the pipeline reads only its
    share of the images, every ``num_input_pipelines``-th one, in batches of one replica's part of the global
    batch: no worker decodes an image another one trains on. A ``watch`` (one pipeline only) counts the images
    decoded, to name the ones dropped.
    """
    batch_size = config.train.batch_size
    if len(train_index.examples) < batch_size:
        raise ValueError(f"train.batch_size {batch_size} is larger than the {len(train_index.examples)} training "
                         f"images: set train.batch_size to {len(train_index.examples)} or less, or add images")
    # Repeating with an explicit step count keeps epochs the same length even if a file fails to decode.
    steps_per_epoch = config.train.steps_per_epoch or max(len(train_index.examples) // batch_size, 1)
    if input_context is not None:
        shard = train_index.examples[input_context.input_pipeline_id::input_context.num_input_pipelines]
        train_index = dataclasses.replace(train_index, examples=shard)
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    train_ds = build_train_dataset(
        train_index,
        (config.model.input_size[0], config.model.input_size[1]),
        batch_size,
        max_objects=config.data.max_objects,
        flip=config.data.flip,
        seed=config.train.seed,
        stride=stride,
        augmentation=Augmentation.from_settings(config.data),
        box_targets=config.loss.box == "giou_ttf",
        radius=config.loss.gaussian_radius,
        watch=watch if input_context is None else None,
    )
    return train_ds.repeat(), steps_per_epoch


def require_a_batch(train_ds: Any, train_index: DatasetIndex) -> None:
    """``ValueError`` when the pipeline yields no batch at all: every image failed to decode (the loading check
    was lighter than a decode), which would otherwise surface as a bare ``StopIteration``."""
    try:
        next(iter(train_ds))
    except StopIteration:
        raise ValueError(f"not one training batch could be made: none of the {len(train_index.examples)} training "
                         "images decodes (see the warnings above); check the files or set data.image_check: decode") from None
