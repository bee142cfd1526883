"""What each deployment format costs: one model exported to every format available here, each scored with the
same metric code on one split and timed per image, in one table (as Ultralytics' ``benchmark`` mode does).

Latency is the median time of ``detect`` (letterbox, network, decoding; JPEG decoding excluded) per image over
``rounds`` passes, every format running the whole image list in turn within each pass, so the drift of a shared
machine hits all of them alike. mAP is computed once per format over the whole split.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from centernet_tf.deploy.export import export_saved_model, export_tflite, model_input_size, representative_images
from centernet_tf.deploy.inference import KerasDetector, load_detector
from centernet_tf.evaluation.metrics import detector_results, index_metrics
from centernet_tf.model.decode import CenterNetDecoder

logger = logging.getLogger(__name__)

#: A format whose mAP@0.5 differs from the Keras model's by more than this is flagged in the table.
MAP_TOLERANCE = 0.015


@dataclass(frozen=True)
class Format:
    """One row of the table: how the model is written in it, and what must be installed to run it."""

    name: str
    #: ``write(model, folder, class_names, decoder, calibration)`` -> the exported file or folder; None: the
    #: Keras model itself runs (through ``twin``, when set: ``twin(model)`` is what runs).
    write: Callable[..., Path] | None
    needs: tuple[str, ...] = ()
    extra: str = ""
    twin: Callable[[Any], Any] | None = None
    #: Measured only where the machine computes bfloat16 natively (elsewhere it is emulated: slower by design).
    native_bfloat16: bool = False


def _tflite(quantize: str) -> Callable[..., Path]:
    def write(model: Any, folder: Path, names: list[str], decoder: CenterNetDecoder, calibration: Any) -> Path:
        return export_tflite(model, folder / f"model_{quantize}.tflite", names, quantize,
                             calibration() if quantize == "int8" else None, decoder)
    return write


def _onnx(model: Any, folder: Path, names: list[str], decoder: CenterNetDecoder, calibration: Any) -> Path:
    from centernet_tf.deploy.export_onnx import export_onnx

    return export_onnx(model, folder / "model.onnx", names, decoder)


@functools.lru_cache(maxsize=1)  # the Keras row and the SavedModel row share one twin: it takes seconds to build
def _bfloat16(model: Any) -> Any:
    from centernet_tf.deploy.bfloat16 import bfloat16_model

    return bfloat16_model(model)


FORMATS = (
    Format("keras", None),
    Format("keras_bfloat16", None, twin=_bfloat16, native_bfloat16=True),
    Format("saved_model", lambda model, folder, names, decoder, _: export_saved_model(
        model, folder / "saved_model", names, decoder)),
    Format("saved_model_bfloat16", lambda model, folder, names, decoder, _: export_saved_model(
        _bfloat16(model), folder / "saved_model_bfloat16", names, decoder), native_bfloat16=True),
    Format("tflite_fp32", _tflite("fp32")),
    Format("tflite_fp16", _tflite("fp16")),
    Format("tflite_int8", _tflite("int8")),
    Format("onnx", _onnx, needs=("tf2onnx", "onnxruntime"), extra="onnx"),
)


def format_names() -> tuple[str, ...]:
    return tuple(f.name for f in FORMATS)


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 1e6, 2)


def interleaved_latency(detectors: dict[str, Any], images: list[np.ndarray], rounds: int) -> dict[str, float]:
    """Median ms per ``detect`` over ``images`` in ``rounds`` passes, each pass running every detector over all
    the images in turn. (Alternating per image instead lets one runtime's spinning worker threads slow the
    next one's call.)"""
    times: dict[str, list[float]] = {name: [] for name in detectors}
    for _ in range(rounds):
        for name, detector in detectors.items():
            detector.detect(images[0])  # trace / allocate / wake the threads
            for image in images:
                started = time.perf_counter()
                detector.detect(image)
                times[name].append(time.perf_counter() - started)
    return {name: round(1000 * float(np.median(t)), 2) for name, t in times.items()}


def run_benchmark(
    model: Any,
    decoder: CenterNetDecoder,
    index: Any,
    folder: Path,
    formats: tuple[str, ...] | None = None,
    calibration_index: Any = None,
    rounds: int = 3,
    timed_images: int = 50,
    threads: int | None = None,
) -> dict[str, Any]:
    """Export ``model`` into ``folder`` in every format of ``formats`` (default: all) whose runtime is installed,
    score each on ``index`` and time it; the rows, in :data:`FORMATS` order."""
    from centernet_tf.data.pipeline import read_image
    from centernet_tf.deploy.bfloat16 import computes_bfloat16

    wanted = formats or format_names()
    unknown = sorted(set(wanted) - set(format_names()))
    if unknown:
        raise ValueError(f"unknown format {', '.join(unknown)}; formats: {', '.join(format_names())}")
    names = list(index.class_names)
    calibration_source = calibration_index or index

    def calibration() -> list[np.ndarray]:
        return representative_images(calibration_source, model_input_size(model), 300)

    rows: dict[str, dict[str, Any]] = {}
    detectors: dict[str, Any] = {}
    for spec in (f for f in FORMATS if f.name in wanted):
        missing = [module for module in spec.needs if importlib.util.find_spec(module) is None]
        if missing:
            rows[spec.name] = {"skipped": f'needs {", ".join(missing)}: pip install "centernet-tf[{spec.extra}]"'}
            continue
        if spec.native_bfloat16 and not computes_bfloat16():
            rows[spec.name] = {"skipped": "no native bfloat16 here (a CPU with AVX512-BF16 or AMX, a GPU 8.0+)"}
            continue
        if spec.write is None:
            detectors[spec.name] = KerasDetector(spec.twin(model) if spec.twin else model, decoder)
            rows[spec.name] = {"file": None, "size_mb": None}
            continue
        started = time.perf_counter()
        path = spec.write(model, folder, names, decoder, calibration)
        detectors[spec.name] = load_detector(path, num_threads=threads)
        rows[spec.name] = {"file": str(path), "size_mb": size_mb(path),
                           "export_seconds": round(time.perf_counter() - started, 1)}
    for name, detector in detectors.items():
        results, _ = detector_results(detector, index)
        metrics = index_metrics(results, index)
        rows[name].update(mAP50=round(metrics["mAP50"], 4), mAP=round(metrics["mAP"], 4))
    images = [read_image(e.image_path, e.orientation).numpy() for e in index.examples[:timed_images]]
    latency = interleaved_latency(detectors, images, rounds)
    _bfloat16.cache_clear()  # a model benchmarked again after more training gets a fresh twin
    keras_row = rows.get("keras", {})
    for name, milliseconds in latency.items():
        rows[name]["ms_per_image"] = milliseconds
        if "ms_per_image" in keras_row:
            rows[name]["speedup_vs_keras"] = round(keras_row["ms_per_image"] / milliseconds, 2)
        if "mAP50" in keras_row:
            rows[name]["flagged"] = abs(rows[name]["mAP50"] - keras_row["mAP50"]) > MAP_TOLERANCE
    return {"rows": rows, "split": index.name, "images": len(index.examples), "timed_images": len(images),
            "rounds": rounds, "threads": threads or os.cpu_count(), "map_tolerance": MAP_TOLERANCE}


def markdown_table(result: dict[str, Any]) -> str:
    """The rows as a Markdown table; a flagged mAP is marked, a skipped format says what to install."""
    lines = ["| format | file size | mAP@0.5 | mAP@[.5:.95] | ms / image | speed-up vs Keras |",
             "|---|---|---|---|---|---|"]
    for name, row in result["rows"].items():
        if "skipped" in row:
            lines.append(f"| {name} | skipped: {row['skipped']} | | | | |")
            continue
        flag = " ⚠ differs from Keras" if row.get("flagged") else ""
        size = "–" if row.get("size_mb") is None else f"{row['size_mb']:.1f} MB"
        lines.append(f"| {name} | {size} | {row['mAP50']:.3f}{flag} | {row['mAP']:.3f} | "
                     f"{row['ms_per_image']:.1f} | {row.get('speedup_vs_keras', 1.0):.2f}× |")
    return "\n".join(lines)
