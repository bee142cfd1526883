"""``tf.distribute`` for training: the strategy named by ``train.distribute``.

The model, its optimizer and metrics are built in the strategy's scope; ``model.fit`` splits each global batch
of ``train.batch_size`` images across the replicas. The losses normalise by the whole global batch
(:func:`centernet_tf.losses.cross_replica_sum`) and BatchNorm computes its statistics over it
(``synchronized``), so several replicas train as one device on the same batch does (tested).
"""

from __future__ import annotations

import tensorflow as tf

STRATEGIES = ("none", "mirrored", "multi_worker")


def strategy_for(name: str) -> tf.distribute.Strategy:
    """``none``: the default (one device); ``mirrored``: every local GPU (or the logical CPUs); ``multi_worker``:
    the workers of ``TF_CONFIG``, each with its local devices."""
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        # Measured with Keras 3.15 / TensorFlow 2.21 on two local workers: fit first averages the first batch
        # over the workers with an eager reduce that fails on PerReplica values, then reduces the scalar logs
        # with axis=0 ("Invalid reduction dimension 0") - keras-team/keras#20585. Refuse it plainly until the
        # training runs its own loop on the strategy for this case.
        raise ValueError(
            "train.distribute=multi_worker is not supported yet: Keras 3's fit cannot run "
            "MultiWorkerMirroredStrategy (keras-team/keras#20585). Use mirrored (all GPUs of one machine)."
        )
    raise ValueError(f"train.distribute must be one of {', '.join(STRATEGIES)}, got {name!r}")

