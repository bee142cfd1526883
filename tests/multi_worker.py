"""One worker of a two-worker ``MultiWorkerMirroredStrategy`` cluster on localhost, run by
``tests/test_distribute.py`` (each worker is its own process, started with its ``TF_CONFIG``).

``multi_worker.py step PORTS INDEX OUTPUT``: one training step of the tiny CenterNet of ``distributed_step.py``
on its fixed global batch, each worker feeding its replica half of it; the chief writes the loss terms and the
weights as ``distributed_step.py`` does.

``multi_worker.py train PORTS INDEX RUN_DIR [EXIT_AT_EPOCH]``: ``run_training`` (what ``train.py`` runs) on tiny
shapes with ``train.distribute=multi_worker``; worker 1 exits abruptly when epoch ``EXIT_AT_EPOCH`` (0-based)
begins, as a killed worker does. Prints the epochs this process trained and a checksum of its weights.
"""

from __future__ import annotations

import json
import os
import sys

mode, ports, index = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
os.environ["TF_CONFIG"] = json.dumps({
    "cluster": {"worker": [f"localhost:{port}" for port in ports]}, "task": {"type": "worker", "index": index},
})

from centernet_tf.train.distribute import strategy_for  # noqa: E402

strategy = strategy_for("multi_worker")  # before TensorFlow runs anything else

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def one_step(output: str) -> None:
    sys.path.insert(0, os.path.dirname(__file__))
    from distributed_step import batch, tiny_model

    from centernet_tf.train.distribute import fit_on_strategy, is_chief

    images, targets = batch()

    def replica_half(context: tf.distribute.InputContext) -> tf.data.Dataset:
        part = slice(context.input_pipeline_id, None, context.num_input_pipelines)
        return tf.data.Dataset.from_tensors((images[part], {k: v[part] for k, v in targets.items()}))

    with strategy.scope():
        model = tiny_model(synchronized_batch_norm=True)
    initial = [w.numpy() for w in model.weights]
    history = fit_on_strategy(model, strategy, strategy.distribute_datasets_from_function(replica_half),
                              epochs=1, steps_per_epoch=1, verbose=0)
    if is_chief(strategy):
        np.savez(output, *[w.numpy() for w in model.weights], *initial)
        print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                          **{k: float(v[-1]) for k, v in history.history.items()}}))


class ExitAtEpoch(keras.callbacks.Callback):
    """Ends the process without any clean-up when ``epoch`` begins: a worker killed mid-run."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.epoch:
            os._exit(17)


def train(run_dir: str, exit_at_epoch: int | None) -> None:
    from centernet_tf.train import phases, training
    from centernet_tf.config import load_config

    epochs: list[int] = []
    checksum: list[float] = []

    class RecordEpochs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            epochs.append(epoch)

        def on_train_end(self, logs: dict | None = None) -> None:
            checksum[:] = [float(sum(np.abs(w.numpy()).sum() for w in self.model.weights))]

    make_callbacks = phases.training_callbacks

    def callbacks(*args, **kwargs) -> list[keras.callbacks.Callback]:
        extra = [ExitAtEpoch(exit_at_epoch)] if exit_at_epoch is not None and index == 1 else []
        return [*make_callbacks(*args, **kwargs), RecordEpochs(), *extra]

    phases.training_callbacks = callbacks
    work = os.path.dirname(run_dir)
    config = load_config(os.path.join(os.path.dirname(__file__), "..", "configs", "shapes.yaml"), [
        "train.distribute=multi_worker", "model.backbone=resnet10_slim", "model.input_size=[64,64]",
        "data.shapes_num_train=16", "data.shapes_num_val=4", "data.shapes_image_size=[64,64]",
        f"data.shapes_dir={os.path.join(work, 'shapes')}", "train.epochs=4", "train.steps_per_epoch=2",
        "train.batch_size=4", "train.warmup_steps=1", "train.jit_compile=false",
    ])
    metrics = training.run_training(config, run_dir, verbose=0)
    print(json.dumps({"worker": index, "epochs": epochs, "checksum": checksum[0], "evaluated": "mAP50" in metrics}))


if mode == "step":
    one_step(sys.argv[4])
else:
    train(sys.argv[4], int(sys.argv[5]) if len(sys.argv) > 5 else None)
