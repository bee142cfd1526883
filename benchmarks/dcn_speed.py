"""What deformable convolution costs on this CPU: the paper's DCN archs against their plain twins, 512x512.

    python benchmarks/dcn_speed.py            # --rounds 5; writes benchmarks/results/dcn_speed.json

``dla_34`` against ``dlav0_34`` and ``resdcn_18`` against ``res_18`` (80 classes, random weights, offset
branches random so the sampling is not trivial), batch 1, 2 threads: the raw Keras forward as a
``tf.function`` and the TFLite fp32 export (normalisation, network and decoding), the archs taking turns in
every round after a warm-up; medians. The DCN share is the sum of each ``DeformableConv2D`` layer timed alone on
its input shape, over the whole Keras forward. (The original code's DCN op is CUDA-only: no CPU number exists
to compare with.)
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
from centernet_tf.deploy.convert import build_original_arch  # noqa: E402
from centernet_tf.deploy.export import export_tflite  # noqa: E402
from centernet_tf.deploy.inference import tflite_interpreter  # noqa: E402
from centernet_tf.model.deformable import DeformableConv2D  # noqa: E402

PAIRS = (("dla_34", "dlav0_34"), ("resdcn_18", "res_18"))
SIZE = (512, 512)


def random_model(arch: str, size: tuple[int, int]):
    """The arch with its offset branches random: offsets of about a pixel, masks spread around 0.5."""
    model = build_original_arch(arch, 80, size)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, DeformableConv2D):
            kernel, bias = layer.conv_offset_mask.get_weights()
            layer.conv_offset_mask.set_weights([rng.normal(0, 0.01, kernel.shape), rng.normal(0, 1.0, bias.shape)])
    return model


def timed(fn, samples: list[float]) -> None:
    started = time.perf_counter()
    fn()
    samples.append(time.perf_counter() - started)


def median_ms(samples: list[float]) -> float:
    return round(1000 * float(np.median(samples)), 1)


def dcn_layer_ms(model, rounds: int) -> float:
    """The deformable layers, each timed alone on a random input of its shape: their summed median."""
    total = 0.0
    for layer in model.layers:
        if isinstance(layer, DeformableConv2D):
            x = tf.random.normal((1, *layer.input.shape[1:]))
            call = tf.function(lambda t, layer=layer: layer(t))
            call(x).numpy()
            samples: list[float] = []
            for _ in range(rounds):
                timed(lambda: call(x).numpy(), samples)
            total += float(np.median(samples))
    return round(1000 * total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, nargs=2, default=SIZE, metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "dcn_speed.json"))
    args = parser.parse_args()
    started = time.perf_counter()
    size = tuple(args.size)
    pixels = np.random.default_rng(1).uniform(0, 255, (1, *size, 3)).astype(np.float32)
    archs = [arch for pair in PAIRS for arch in pair]
    keras_runs, tflite_runs, models = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for arch in archs:
            model = models[arch] = random_model(arch, size)
            forward = tf.function(lambda x, m=model: m(x, training=False)["heatmap"])
            forward(tf.constant(pixels)).numpy()
            keras_runs[arch] = lambda f=forward: f(tf.constant(pixels)).numpy()
            path = export_tflite(model, Path(tmp) / f"{arch}.tflite", [str(i) for i in range(80)], "fp32")
            runner = tflite_interpreter(path, THREADS).get_signature_runner("serving_default")
            (name, _detail), = runner.get_input_details().items()
            runner(**{name: pixels})
            tflite_runs[arch] = lambda r=runner, n=name: r(**{n: pixels})
        keras_ms = {arch: [] for arch in archs}
        tflite_ms = {arch: [] for arch in archs}
        for _ in range(args.rounds):  # every arch once per round, so a slow moment hits all of them
            for arch in archs:
                timed(keras_runs[arch], keras_ms[arch])
                timed(tflite_runs[arch], tflite_ms[arch])
    results = {arch: {"parameters": int(sum(np.prod(w.shape) for w in models[arch].trainable_weights)),
                      "keras_ms": median_ms(keras_ms[arch]), "tflite_fp32_ms": median_ms(tflite_ms[arch])}
               for arch in archs}
    for deformable, plain in PAIRS:
        dcn_ms = dcn_layer_ms(models[deformable], args.rounds)
        results[deformable].update(
            dcn_layers_ms=dcn_ms,
            dcn_share_of_keras=round(dcn_ms / results[deformable]["keras_ms"], 2),
            keras_ratio_to_plain=round(results[deformable]["keras_ms"] / results[plain]["keras_ms"], 2),
            tflite_fp32_ratio_to_plain=round(results[deformable]["tflite_fp32_ms"] / results[plain]["tflite_fp32_ms"], 2),
        )
    for arch in archs:
        print(arch, results[arch], flush=True)
    output = Path(args.output)
    output.write_text(json.dumps({
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": machine(), "input": list(size), "threads": THREADS, "rounds": args.rounds,
        "wall_seconds": round(time.perf_counter() - started, 1), "results": results,
    }, indent=2) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
