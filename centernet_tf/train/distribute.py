"""``tf.distribute`` for training: the strategy named by ``train.distribute``, and the epoch loop for several
workers.

The model, its optimizer and metrics are built in the strategy's scope and each global batch of
``train.batch_size`` images is split across the replicas. The losses normalise by the whole global batch
(:func:`centernet_tf.model.losses.cross_replica_sum`) and BatchNorm computes its statistics over it
(``synchronized``), so several replicas train as one device does on the same batch (tested).

``none`` and ``mirrored`` train with Keras' ``model.fit``. ``multi_worker`` trains with :func:`fit_on_strategy`,
because with the pinned Keras 3.15 / TensorFlow 2.21 ``fit`` cannot run ``MultiWorkerMirroredStrategy``
(keras-team/keras#20585, measured on two local workers): it first averages a batch of input data over the
workers with an eager reduce that fails on ``PerReplica`` values, then reduces the scalar logs with ``axis=0``
("Invalid reduction dimension 0"). The loop runs the model's own ``train_step`` under ``strategy.run`` with the
same callbacks, so everything else (loss, optimizer, ``BackupAndRestore``, TensorBoard) is what ``fit`` uses.
How the workers share the run folder: :func:`centernet_tf.train.training.run_training`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

STRATEGIES = ("none", "mirrored", "multi_worker")
_multi_worker: tf.distribute.MultiWorkerMirroredStrategy | None = None


def strategy_for(name: str) -> tf.distribute.Strategy:
    """``none``: the default (one device); ``mirrored``: every local GPU (or the logical CPUs); ``multi_worker``:
    the workers of ``TF_CONFIG``, each with its local devices.

    ``multi_worker`` must be created before TensorFlow runs its first operation (collective ops are configured
    at start-up); ``train.py`` does so first thing.
    """
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        global _multi_worker
        if _multi_worker is not None:  # collectives are configured once per process: one strategy
            return _multi_worker
        if "TF_CONFIG" in os.environ:
            _check_tf_config(os.environ["TF_CONFIG"])
        try:
            _multi_worker = tf.distribute.MultiWorkerMirroredStrategy()
            return _multi_worker
        except RuntimeError as error:
            raise RuntimeError(
                "train.distribute=multi_worker: the strategy must be created before TensorFlow runs anything "
                f"in this process ({error}); create it first, as train.py does"
            ) from error
    raise ValueError(f"train.distribute must be one of {', '.join(STRATEGIES)}, got {name!r}")


def _check_tf_config(text: str) -> None:
    """A readable error for the usual ``TF_CONFIG`` mistakes, before TensorFlow's own."""
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task = config["task"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            'TF_CONFIG must be JSON like {"cluster": {"worker": ["host1:port", "host2:port"]}, '
            f'"task": {{"type": "worker", "index": 0}}}}; got {text!r} ({error!r})'
        ) from None
    if task.get("type") == "worker" and not 0 <= int(task.get("index", -1)) < len(workers):
        raise ValueError(f"TF_CONFIG task index {task.get('index')} is not one of the {len(workers)} workers")


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files: the ``chief`` task, or worker 0 in a cluster without one
    (TensorFlow's convention); always true outside a multi-worker cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not is_multi_worker(strategy) or resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs


def fit_on_strategy(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    dataset: tf.distribute.DistributedDataset,
    *,
    epochs: int,
    steps_per_epoch: int,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    initial_epoch: int = 0,
    verbose: int | str = "auto",
) -> keras.callbacks.History:
    """``model.fit``'s epoch loop on ``strategy``: ``model.train_step`` on each replica's part of the global
    batch (``strategy.run``), the logs averaged over the replicas, the callbacks called as ``fit`` calls them.

    Every worker runs it with the same arguments and callbacks (a resumed run starts at the epoch
    ``BackupAndRestore`` found); only the chief shows progress.
    """
    verbose = (1 if verbose == "auto" else verbose) if is_chief(strategy) else 0
    history = keras.callbacks.History()
    callback_list = keras.callbacks.CallbackList(
        [*callbacks, history], add_history=True, add_progbar=verbose != 0, model=model,
        verbose=verbose, epochs=epochs, steps=steps_per_epoch,
    )
    with strategy.scope():
        if not model.optimizer.built:  # its variables must exist before the step is traced
            model.optimizer.build(model.trainable_variables)

    @tf.function
    def train_step(iterator: Any) -> dict[str, tf.Tensor]:
        logs = strategy.run(model.train_step, args=(next(iterator),))
        return {name: strategy.reduce("MEAN", value, axis=None) for name, value in logs.items()}

    model.stop_training = False
    callback_list.on_train_begin()
    # BackupAndRestore sets the epoch to resume at, as fit reads it.
    first_epoch = getattr(model, "_initial_epoch", None) or initial_epoch
    iterator = iter(dataset)
    logs: dict[str, float] = {}
    for epoch in range(first_epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        for step in range(steps_per_epoch):
            callback_list.on_train_batch_begin(step)
            logs = {name: float(value) for name, value in train_step(iterator).items()}
            callback_list.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        callback_list.on_epoch_end(epoch, dict(logs))
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return history
