"""Milliseconds per 512x512 image for the original CenterNet archs: Keras against PyTorch, plus TFLite int8.

    python benchmarks/backbone_latency.py            # needs the pretrained extra (PyTorch)

For each arch (``res_18``, ``res_101``, ``dlav0_34``, ``hourglass``, 80 classes) a PyTorch twin of the original
network (``tests/torch_reference.py``) gets random weights and BatchNorm statistics, its state dict is converted
with :func:`centernet_tf.deploy.convert.model_from_state_dict`, and both run the raw forward pass (batch 1, no
decoding) on the same input: Keras as a ``tf.function``, PyTorch in ``torch.no_grad()``, each on 2 threads,
taking turns for ``--rounds`` rounds after a warm-up; medians are reported, with the largest heatmap
difference between the two as a check that they compute the same thing. The TFLite int8 file (the product's
export: normalisation, network and decoding, calibrated on ``--calibration`` aquarium photos when present,
else on noise) runs on 2 threads. Writes ``benchmarks/results/backbone_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from pinned import REPO, THREADS  # first: quiet log, the repository importable, threads pinned

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.bccd import machine  # noqa: E402
from centernet_tf.deploy.convert import ORIGINAL_NORMALIZATION, model_from_state_dict  # noqa: E402
from centernet_tf.deploy.export import export_tflite  # noqa: E402
from centernet_tf.deploy.inference import tflite_interpreter  # noqa: E402

ARCHS = ("res_18", "res_101", "dlav0_34", "hourglass")
SIZE = (512, 512)


def twin(arch: str):
    from tests.torch_reference import DLASeg, HourglassNet, PoseResNet, fill_randomly

    network = {"res_18": lambda: PoseResNet(18, 80), "res_101": lambda: PoseResNet(101, 80),
               "dlav0_34": lambda: DLASeg(80), "hourglass": lambda: HourglassNet(80)}[arch]()
    return fill_randomly(network, seed=0)


def calibration_images(count: int) -> list[np.ndarray]:
    """Letterboxed aquarium photos (real pixel statistics for int8 ranges), or noise without the dataset."""
    from centernet_tf.data.letterbox import letterbox_image
    from centernet_tf.data.pipeline import read_image

    root = REPO.parent / "shared" / "data" / "aquarium"
    photos = sorted(root.rglob("*.jpg"))[:count]
    if not photos:
        rng = np.random.default_rng(0)
        return [rng.uniform(0, 255, (*SIZE, 3)).astype(np.float32) for _ in range(count)]
    return [letterbox_image(read_image(str(p)), SIZE)[0].numpy() for p in photos]


def median_ms(samples: list[float]) -> float:
    return round(1000 * float(np.median(samples)), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calibration", type=int, default=16, help="int8 calibration images")
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "backbone_latency.json"))
    args = parser.parse_args()
    import torch

    from tests.torch_reference import original_preprocess

    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    images = calibration_images(args.calibration)
    mean, std = ORIGINAL_NORMALIZATION["coco"]
    pixels = images[0][None].astype(np.float32)
    torch_input = original_preprocess(torch.from_numpy(pixels), mean, std)
    results = {}
    for arch in args.archs:
        network = twin(arch)
        state = {k: v.detach().numpy() for k, v in network.state_dict().items()}
        model = model_from_state_dict(state, arch, input_size=SIZE)
        forward = tf.function(lambda x, m=model: m(x, training=False)["heatmap"])
        keras_ms, torch_ms = [], []
        with torch.no_grad():
            reference = torch.sigmoid(network(torch_input)[-1]["hm"]).numpy().transpose(0, 2, 3, 1)
            difference = float(np.abs(forward(tf.constant(pixels)).numpy() - reference).max())
            for _ in range(args.rounds):
                t = time.perf_counter()
                forward(tf.constant(pixels)).numpy()
                keras_ms.append(time.perf_counter() - t)
                t = time.perf_counter()
                network(torch_input)
                torch_ms.append(time.perf_counter() - t)
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            path = export_tflite(model, Path(tmp) / "int8.tflite", [str(i) for i in range(80)], "int8",
                                 representative_images=images)
            export_seconds = time.perf_counter() - t
            interpreter = tflite_interpreter(path, THREADS)
            runner = interpreter.get_signature_runner("serving_default")
            (name, _detail), = runner.get_input_details().items()
            runner(**{name: pixels})
            int8_ms = []
            for _ in range(args.rounds):
                t = time.perf_counter()
                runner(**{name: pixels})
                int8_ms.append(time.perf_counter() - t)
            size_mb = round(path.stat().st_size / 2**20, 1)
        results[arch] = {
            "parameters": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
            "keras_ms": median_ms(keras_ms), "pytorch_ms": median_ms(torch_ms),
            "keras_over_pytorch": round(float(np.median(keras_ms) / np.median(torch_ms)), 2),
            "tflite_int8_ms": median_ms(int8_ms), "tflite_int8_mb": size_mb,
            "int8_export_seconds": round(export_seconds, 1), "max_heatmap_difference": difference,
        }
        print(arch, results[arch], flush=True)
        del model, network, forward
    output = Path(args.output)
    output.write_text(json.dumps({
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": machine(), "input": list(SIZE), "threads": THREADS, "rounds": args.rounds,
        "pytorch": torch.__version__, "wall_seconds": round(time.perf_counter() - started, 1), "results": results,
    }, indent=2) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
