"""Export a trained model: ``python export.py --model runs/bccd/model.keras --format tflite --quantize int8``.

SavedModel: ``serving_default`` takes a uint8 image ``[1, H, W, 3]`` of any size and returns the Object
Detection API outputs (normalised ``ymin, xmin, ymax, xmax`` boxes, scores, 1-based classes, count).
TFLite: the model config's fixed input size, normalisation and decoding inside; ``fp32``, ``fp16`` or
``int8`` (full integer, calibrated on training images of the run's config). ONNX (``pip install
"centernet-tf[onnx]"``): the TFLite contract (float32 letterboxed input) for ONNX Runtime, opset 17. Label
files are written beside; TFLite and ONNX files also carry the class names inside.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from centernet_tf.cli import add_debug_flag, run_cli, setup_logging  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a .keras file written by train.py")
    parser.add_argument("--format", required=True, choices=["saved_model", "tflite", "onnx"])
    parser.add_argument("--quantize", default="fp32", choices=["fp32", "fp16", "int8"], help="TFLite only")
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"],
                        help="SavedModel only: bfloat16 weights and arithmetic (decoding in float32), for CPUs "
                        "with native bfloat16 (AVX512-BF16, AMX); benchmark.py says whether it pays on yours")
    parser.add_argument("--output", help="SavedModel directory, .tflite or .onnx file (default: beside the model)")
    parser.add_argument("--config", help="the run's config (default: config.yaml beside the model); sets the "
                        "decoder and, for int8, the training images used for calibration")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--calibration-images", type=int, default=300, help="int8: training images to calibrate on")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    setup_logging()
    log = logging.getLogger("export")

    import centernet_tf  # noqa: F401  (registers the custom layers)
    from centernet_tf.config import load_config
    from centernet_tf.data.loaders import load_split
    from centernet_tf.files import refuse_overwriting
    from centernet_tf.deploy.export import export_saved_model, export_tflite, model_input_size, representative_images
    from centernet_tf.labels import class_names_for
    from centernet_tf.model.centernet import load_centernet
    from centernet_tf.commands import decoder_for_command

    model_path = Path(args.model)
    if args.format != "tflite" and args.quantize != "fp32":
        parser.error("--quantize applies to --format tflite only")
    if args.format != "saved_model" and args.precision != "float32":
        parser.error("--precision applies to --format saved_model only (TFLite: --quantize fp16)")
    if not model_path.is_file():
        parser.error(f"--model {model_path}: no such file")
    config_path = Path(args.config) if args.config else model_path.parent / "config.yaml"
    config = load_config(config_path if config_path.is_file() else None, args.overrides)
    if not config_path.is_file():
        log.warning("No config at %s: default decoder settings%s", config_path,
                    "" if args.quantize != "int8" else " and no training data to calibrate int8 on")
    model = load_centernet(model_path)
    class_names = model.class_names or class_names_for(model_path) or config.data.class_names
    if not class_names:
        class_names = [f"class_{i}" for i in range(model.num_classes)]
        log.warning("No class names in or beside %s: naming classes %s", model_path, ", ".join(class_names))
    decoder = decoder_for_command(model, config, args.overrides)

    if args.format == "saved_model":
        suffix = "_bfloat16" if args.precision == "bfloat16" else ""
        output = Path(args.output) if args.output else model_path.with_name(f"{model_path.stem}_saved_model{suffix}")
        refuse_overwriting([output], [model_path, config_path], "--output")
        if args.precision == "bfloat16":
            from centernet_tf.deploy.bfloat16 import bfloat16_model, computes_bfloat16

            if not computes_bfloat16():
                log.warning("This machine has no native bfloat16: the bfloat16 SavedModel will run slower here")
            model = bfloat16_model(model)
        export_saved_model(model, output, class_names, decoder)
    elif args.format == "onnx":
        from centernet_tf.deploy.export_onnx import export_onnx

        output = Path(args.output or model_path.with_name(f"{model_path.stem}.onnx"))
        refuse_overwriting([output], [model_path, config_path], "--output")
        if output.is_dir() or (output.exists() and output.suffix.lower() != ".onnx"):
            raise ValueError(f"--output {output} exists and is not an .onnx file: choose another --output")
        export_onnx(model, output, class_names, decoder)
    else:
        output = Path(args.output or model_path.with_name(f"{model_path.stem}_{args.quantize}.tflite"))
        refuse_overwriting([output], [model_path, config_path], "--output")
        if output.is_dir() or (output.exists() and output.suffix.lower() != ".tflite"):
            raise ValueError(f"--output {output} exists and is not a .tflite file: choose another --output")
        images = None
        if args.quantize == "int8":
            if not config_path.is_file():
                print("export.py: int8 needs the run's config.yaml (or --config) to find training images",
                      file=sys.stderr)
                return 2
            index = load_split(config.data, "train")
            images = representative_images(index, model_input_size(model), args.calibration_images)
            log.info("Calibrating int8 on %d training images", len(images))
        export_tflite(model, output, class_names, args.quantize, images, decoder)
    print(f"wrote {output}")
    return 0


def run() -> int:
    """The console entry point: ``main`` with one-line errors."""
    return run_cli(main)


if __name__ == "__main__":
    raise SystemExit(run())
