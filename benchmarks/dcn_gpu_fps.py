"""Frames per second of the paper's deformable models on a GPU: ``dla_34`` and ``resdcn_18`` at 512x512.

    python benchmarks/dcn_gpu_fps.py            # writes benchmarks/results/dcn_gpu_fps.json

The paper's figures (TITAN Xp, batch 1, network only): DLA-34 52 FPS, ResNet-18-DCN 142 FPS. Random weights
(speed does not depend on them), offset branches random; batch 1; the Keras forward as a ``tf.function``,
with and without XLA; ``--iterations`` timed after a warm-up, synchronised by reading the heatmap back.
Runs on a CPU too (``device`` in the JSON says which), for a smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.dcn_speed import random_model  # noqa: E402

PAPER_FPS = {"dla_34": 52, "resdcn_18": 142}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "dcn_gpu_fps.json"))
    args = parser.parse_args()
    gpus = tf.config.list_physical_devices("GPU")
    device = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else "CPU"
    pixels = tf.constant(np.random.default_rng(0).uniform(0, 255, (1, *args.size, 3)).astype(np.float32))
    results = {}
    for arch in PAPER_FPS:
        model = random_model(arch, tuple(args.size))
        for xla in (False, True):
            forward = tf.function(lambda x, m=model: m(x, training=False)["heatmap"], jit_compile=xla)
            for _ in range(5):
                forward(pixels).numpy()
            started = time.perf_counter()
            for _ in range(args.iterations):
                forward(pixels).numpy()
            seconds = (time.perf_counter() - started) / args.iterations
            results[f"{arch}{'_xla' if xla else ''}"] = {"fps": round(1 / seconds, 1), "ms": round(1000 * seconds, 2),
                                                        "paper_fps": PAPER_FPS[arch]}
            print(arch, "xla" if xla else "", results[f"{arch}{'_xla' if xla else ''}"], flush=True)
    Path(args.output).write_text(json.dumps({
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), "device": device,
        "tensorflow": tf.__version__, "input": list(args.size), "iterations": args.iterations, "results": results,
    }, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
