"""The same CenterNet in Keras and in PyTorch: inference and a training step, taking turns in one run.

    python benchmarks/keras_vs_pytorch.py            # needs the pretrained extra (PyTorch)

The architecture is the original ``res_50`` (ResNet-50, three 4x4 stride-2 deconvolutions of 256 filters, the
heatmap / wh / offset heads, 80 classes) at 512x512: a PyTorch twin of the original network
(``tests/torch_reference.py``) with random weights, converted to Keras with
:func:`centernet_tf.deploy.convert.model_from_state_dict`, so both hold the same weights. Each side runs on 2 threads.

Inference, batch 1 (milliseconds per image):
  - ``keras_detect``: the product end to end, ``KerasDetector.detect`` from a uint8 photo-sized image to boxes
    (letterbox, normalisation, network, peak extraction, decoding, letterbox removed);
  - ``keras_forward``: the raw Keras forward pass (``tf.function``), for the overhead of everything else;
  - ``keras_detect_bfloat16`` / ``keras_forward_bfloat16``: the same with the bfloat16 twin
    (:func:`centernet_tf.deploy.bfloat16.bfloat16_model`: weights and arithmetic in bfloat16, heads' outputs
    and decoding in float32), where the CPU computes bfloat16 natively (AVX512-BF16 / AMX);
  - ``pytorch_forward``: the twin's raw forward pass in ``torch.no_grad()``, on an already normalised tensor.
Training, batch 8 (seconds per step, same images and targets):
  - ``keras_fit_step``: ``model.train_on_batch`` - the step ``model.fit`` runs (the product's loss and its
    three term metrics, Adam, no XLA: on this CPU XLA is slower, see ``train_step_time.py``);
  - ``keras_bare_step``: a ``tf.function`` of forward, the same loss, gradients and Adam with nothing else, for
    the overhead of Keras' step (metrics, bookkeeping);
  - ``pytorch_step``: the twin in train mode, the original CenterNet losses (penalty-reduced focal loss, L1 at
    the object centres), backward, ``torch.optim.Adam``.
The inference variants take turns for 4 x ``--rounds`` rounds, then the training variants for ``--rounds``
rounds, each after a warm-up; medians are reported.
Writes ``benchmarks/results/keras_vs_pytorch.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pinned import REPO, THREADS  # first: quiet log, the repository importable, threads pinned

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras  # noqa: E402

from benchmarks.bccd import machine  # noqa: E402
from centernet_tf.deploy.bfloat16 import bfloat16_model, computes_bfloat16  # noqa: E402
from centernet_tf.deploy.convert import ORIGINAL_NORMALIZATION, model_from_state_dict  # noqa: E402
from centernet_tf.deploy.inference import KerasDetector  # noqa: E402
from centernet_tf.model.targets import encode_targets, keras_targets  # noqa: E402

SIZE, CLASSES, BATCH, STRIDE, MAX_OBJECTS = 512, 80, 8, 4, 128


def training_batch(seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Eight noise images with 1-20 random boxes each, and their targets as the product encodes them."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (BATCH, SIZE, SIZE, 3)).astype(np.float32)
    targets = []
    for _ in range(BATCH):
        count = int(rng.integers(1, 21))
        xy = rng.uniform(0, SIZE - 100, (count, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(10, 100, (count, 2))], axis=1).astype(np.float32)
        encoded = encode_targets(tf.constant(boxes), tf.constant(rng.integers(0, CLASSES, count), tf.int32),
                                 (SIZE, SIZE), CLASSES, STRIDE, MAX_OBJECTS)
        targets.append({k: v.numpy() for k, v in keras_targets(encoded).items()})
    return images, {k: np.stack([t[k] for t in targets]) for k in targets[0]}


def torch_step(network, images: np.ndarray, targets: dict[str, np.ndarray]):
    """The twin's training step with the original CenterNet losses (``FocalLoss`` / ``RegL1Loss``)."""
    import torch

    from tests.torch_reference import original_preprocess

    inputs = original_preprocess(torch.from_numpy(images), *ORIGINAL_NORMALIZATION["coco"])
    heatmap = torch.from_numpy(targets["heatmap"].transpose(0, 3, 1, 2).copy())
    indices = torch.from_numpy(targets["indices"].astype(np.int64))
    mask = torch.from_numpy(targets["mask"].astype(np.float32))
    wh, offset = torch.from_numpy(targets["wh"]), torch.from_numpy(targets["offset"])
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-4)

    def gather(feature: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) at the flat centre indices -> (B, K, C)
        flat = feature.flatten(2).transpose(1, 2)
        return flat.gather(1, indices[..., None].expand(-1, -1, flat.shape[2]))

    def l1(feature: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = mask[..., None].expand_as(target)
        return (torch.abs(gather(feature) - target) * weight).sum() / (weight.sum() + 1e-4)

    def step() -> float:
        network.train()
        output = network(inputs)[-1]
        pred = torch.clamp(torch.sigmoid(output["hm"]), 1e-4, 1 - 1e-4)
        positive = heatmap.eq(1).float()
        positive_loss = (torch.log(pred) * (1 - pred) ** 2 * positive).sum()
        negative_loss = (torch.log(1 - pred) * pred ** 2 * (1 - heatmap) ** 4 * (1 - positive)).sum()
        focal = -(positive_loss + negative_loss) / positive.sum().clamp(min=1)
        loss = focal + 0.1 * l1(output["wh"], wh) + l1(output["reg"], offset)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step


def keras_bare_step(model: keras.Model, images: np.ndarray, targets: dict[str, np.ndarray]):
    """Forward, the product's loss, gradients and Adam, with nothing of Keras' step around them."""
    optimizer = keras.optimizers.Adam(1e-4)
    optimizer.build(model.trainable_variables)
    x, y = tf.constant(images), {k: tf.constant(v) for k, v in targets.items()}

    @tf.function
    def step() -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = model.centernet_loss(y, model(x, training=True), model.stack_prefixes)["loss"]
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    return lambda: float(step())


def median(samples: list[float], scale: float = 1.0) -> float:
    return round(scale * float(np.median(samples)), 4 if scale == 1.0 else 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "keras_vs_pytorch.json"))
    args = parser.parse_args()
    import torch

    from tests.torch_reference import PoseResNet, fill_randomly, original_preprocess

    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    network = fill_randomly(PoseResNet(50, CLASSES), seed=0)
    model = model_from_state_dict({k: v.detach().numpy() for k, v in network.state_dict().items()}, "res_50",
                                  input_size=(SIZE, SIZE))
    photo = np.random.default_rng(1).integers(0, 256, (480, 640, 3), np.uint8)  # letterboxed to 512x512
    detector = KerasDetector(model)
    pixels = tf.constant(np.random.default_rng(2).uniform(0, 255, (1, SIZE, SIZE, 3)).astype(np.float32))
    forward = tf.function(lambda x: model(x, training=False))
    torch_input = original_preprocess(torch.from_numpy(pixels.numpy()), *ORIGINAL_NORMALIZATION["coco"])
    network.eval()
    with torch.no_grad():
        difference = float(np.abs(forward(pixels)["heatmap"].numpy()
                                  - torch.sigmoid(network(torch_input)[-1]["hm"]).numpy().transpose(0, 2, 3, 1)).max())

    def torch_forward() -> None:
        network.eval()
        with torch.no_grad():
            network(torch_input)

    inference = {
        "keras_detect": lambda: detector.detect(photo),
        "keras_forward": lambda: forward(pixels)["heatmap"].numpy(),
        "pytorch_forward": torch_forward,
    }
    bfloat16_difference = None
    if computes_bfloat16():
        twin = bfloat16_model(model)
        twin_detector = KerasDetector(twin)
        twin_forward = tf.function(lambda x: twin(x, training=False))
        bfloat16_difference = float(np.abs(twin_forward(pixels)["heatmap"].numpy()
                                           - forward(pixels)["heatmap"].numpy()).max())
        inference["keras_detect_bfloat16"] = lambda: twin_detector.detect(photo)
        inference["keras_forward_bfloat16"] = lambda: twin_forward(pixels)["heatmap"].numpy()
    images, targets = training_batch()
    model.compile(optimizer=keras.optimizers.Adam(1e-4), jit_compile=False)
    training = {
        "keras_fit_step": lambda: model.train_on_batch(images, targets),
        "keras_bare_step": keras_bare_step(model, images, targets),
        "pytorch_step": torch_step(network, images, targets),
    }
    times: dict[str, list[float]] = {name: [] for name in [*inference, *training]}
    # Inference first, then training, each alternating between its variants: a heavy training step just before
    # would leave the next forward pass with cold caches, which is not what a deployed detector sees.
    for block, repeats in ((inference, 4), (training, 1)):
        for run in block.values():  # warm-up: tracing, first allocations
            run()
        for _ in range(args.rounds * repeats):
            for name, run in block.items():
                t = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t)
        print({name: round(float(np.median(times[name])), 4) for name in block}, flush=True)
    results = {
        "inference_ms": {name: median(times[name], 1000) for name in inference},
        "train_step_s": {name: median(times[name]) for name in training},
    }
    ratio = lambda a, b: round(float(np.median(times[a]) / np.median(times[b])), 2)  # noqa: E731
    results["ratios"] = {
        "keras_detect_over_pytorch_forward": ratio("keras_detect", "pytorch_forward"),
        "keras_forward_over_pytorch_forward": ratio("keras_forward", "pytorch_forward"),
        "keras_fit_step_over_pytorch_step": ratio("keras_fit_step", "pytorch_step"),
        "keras_bare_step_over_pytorch_step": ratio("keras_bare_step", "pytorch_step"),
    }
    if bfloat16_difference is not None:
        results["ratios"]["keras_detect_bfloat16_over_pytorch_forward"] = ratio("keras_detect_bfloat16", "pytorch_forward")
        results["ratios"]["keras_forward_bfloat16_over_pytorch_forward"] = ratio("keras_forward_bfloat16", "pytorch_forward")
    print(json.dumps(results, indent=2))
    output = Path(args.output)
    output.write_text(json.dumps({
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": machine(), "arch": "res_50", "input": [SIZE, SIZE], "classes": CLASSES, "batch": BATCH,
        "threads": THREADS, "rounds": args.rounds, "pytorch": torch.__version__,
        "max_heatmap_difference": difference, "bfloat16_max_heatmap_difference": bfloat16_difference,
        "native_bfloat16": computes_bfloat16(), "wall_seconds": round(time.perf_counter() - started, 1), **results,
    }, indent=2) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
