"""Detect objects: ``python predict.py --model runs/bccd/model.keras --input image.jpg|images/|video.mp4``.

The model is a ``.keras`` file, a SavedModel directory or a ``.tflite`` file (class names from inside it, or
the ``<name>.labels.txt`` / ``labels.txt`` beside it). Writes each picture (or the video) with labelled boxes into ``--output`` plus
``detections.json``: boxes as ``[x1, y1, x2, y2]`` pixels of the original image, scores and class names.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import numpy as np  # noqa: E402

from centernet_tf.cli import add_debug_flag, run_cli, setup_logging  # noqa: E402
from centernet_tf.files import atomic_write, refuse_overwriting, same_file  # noqa: E402
from centernet_tf.progress import progress  # noqa: E402

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
logger = logging.getLogger("predict")


def read_rgb(path: Path) -> np.ndarray:
    """Decode with TensorFlow, exactly as training and evaluation do (JPEG decoders differ by a few levels),
    upright: a phone photo's EXIF orientation is applied, as the labelling tools showed it. A file that is not
    an image TensorFlow decodes is a ``ValueError`` saying what it is."""
    from PIL import Image, UnidentifiedImageError

    from centernet_tf.data.image_files import DECODABLE_FORMATS
    from centernet_tf.data.pipeline import read_image_file

    try:
        with Image.open(path) as image:
            image_format = image.format
    except UnidentifiedImageError:
        raise ValueError(f"{path.name} is not an image file") from None
    if image_format not in DECODABLE_FORMATS:
        raise ValueError(f"{path.name} is a {image_format} image, which TensorFlow does not decode: convert it to "
                         "JPEG or PNG")
    return read_image_file(str(path)).numpy()


def picture_name(path: Path, stems: list[str]) -> str:
    """The output picture's stem: a.jpg and a.png both become pictures, a_jpg.jpg and a_png.jpg, when their
    stems collide."""
    return path.stem if stems.count(path.stem) == 1 else f"{path.stem}_{path.suffix.lstrip('.').lower()}"


def planned_outputs(paths: list[Path], output: Path, heatmap: bool, video: bool) -> list[Path]:
    """Every file this run will write into ``output``, known before it writes one."""
    if video:
        return [output / f"{paths[0].stem}.mp4", output / "detections.json"]
    stems = [path.stem for path in paths]
    names = [picture_name(path, stems) for path in paths]
    return [output / f"{name}{suffix}" for name in names for suffix in (".jpg", *(("_heatmap.jpg",) if heatmap else ()))] \
        + [output / "detections.json"]


def predict_images(detector: Any, paths: list[Path], output: Path, class_names: list[str] | None,
                   threshold: float, heatmap: bool = False) -> dict[str, Any]:
    import tensorflow as tf
    from PIL import Image

    from centernet_tf.deploy.visualize import draw_detections

    results: dict[str, Any] = {}
    skipped: list[str] = []
    reasons: list[str] = []
    stems = [path.stem for path in paths]
    for path in progress(paths, len(paths), "predicting"):
        try:
            image = read_rgb(path)
        except (OSError, ValueError, tf.errors.OpError) as error:  # unreadable or not an image: count, go on
            reason = str(error) if isinstance(error, ValueError) else f"{path.name} could not be decoded"
            logger.warning("Skipping %s: %s", path, reason)
            skipped.append(str(path))
            reasons.append(reason)
            continue
        detections = detector.detect(image).above(threshold)
        name = picture_name(path, stems)
        Image.fromarray(draw_detections(image, detections, class_names)).save(output / f"{name}.jpg", quality=92)
        if heatmap:
            Image.fromarray(detector.heatmap_overlay(image)).save(output / f"{name}_heatmap.jpg", quality=92)
        results[path.name] = detections.to_list(class_names)
        logger.info("%s: %d detections", path.name, len(detections.scores))
    if skipped and len(skipped) == len(paths):
        raise ValueError(reasons[0] if len(paths) == 1 else f"none of the {len(paths)} files could be read: {reasons[0]}")
    if skipped:
        logger.warning("Skipped %d unreadable files of %d", len(skipped), len(paths))
    return {"images": results, "skipped": skipped}


def predict_video(detector: Any, path: Path, output: Path, class_names: list[str] | None,
                  threshold: float) -> dict[str, Any]:
    try:
        import cv2
    except ImportError:
        raise SystemExit("predict.py: videos need OpenCV: pip install opencv-python-headless") from None
    from centernet_tf.deploy.visualize import draw_detections

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SystemExit(f"predict.py: cannot open video {path}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    writer = None
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        detections = detector.detect(rgb).above(threshold)
        drawn = cv2.cvtColor(draw_detections(rgb, detections, class_names), cv2.COLOR_RGB2BGR)
        if writer is None:
            writer = cv2.VideoWriter(str(output / f"{path.stem}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                     (drawn.shape[1], drawn.shape[0]))
        writer.write(drawn)
        frames.append(detections.to_list(class_names))
    capture.release()
    if writer is not None:
        writer.release()
    logger.info("%s: %d frames", path.name, len(frames))
    return {"video": path.name, "fps": fps, "frames": frames}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True,
                        help=".keras file (loaded in Keras' safe mode), SavedModel directory, .tflite or .onnx file; a "
                             "SavedModel runs the graph it contains, so use only SavedModels from a trusted source")
    parser.add_argument("--input", required=True, help="an image, a directory of images or a video file")
    parser.add_argument("--output", default="predictions",
                        help="directory for pictures and detections.json; never the input photos' folder, and "
                             "never a file an input would be replaced by (refused before anything is written)")
    parser.add_argument("--score-threshold", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for TFLite")
    parser.add_argument("--heatmap", action="store_true",
                        help="also write <name>_heatmap.jpg: the predicted centre heatmap over the network input "
                             "(.keras models; exported files return boxes only)")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    setup_logging()

    from centernet_tf.data.image_files import IMAGE_SUFFIXES
    from centernet_tf.deploy.inference import load_detector

    source = Path(args.input)
    if not source.exists():
        parser.error(f"--input {source}: no such file or directory")
    output = Path(args.output)
    video = source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES
    if source.is_dir():
        paths = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            parser.error(f"--input {source}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    else:
        paths = [source]
    # The user's photos (and the model) are never written over: refused before anything is written.
    if output.exists() and same_file(output, source if source.is_dir() else source.parent):
        raise ValueError(f"--output {output} is the folder of the input photos: the annotated copies would be "
                         "mixed with (or replace) them; choose another --output")
    planned = planned_outputs(paths, output, args.heatmap, video)
    refuse_overwriting(planned, [*paths, args.model], "--output")
    if output.exists() and not output.is_dir():
        raise ValueError(f"--output {output} is a file, not a folder")
    taken = [p for p in planned if p.exists()]
    if taken and not (output / "detections.json").is_file():  # not an earlier predict.py output: someone's files
        raise ValueError(f"--output {output} already holds {taken[0].name}, which is not from predict.py: choose "
                         "a new or empty --output")
    output.mkdir(parents=True, exist_ok=True)
    detector = load_detector(args.model, num_threads=args.threads)
    class_names = detector.class_names
    if args.heatmap and not hasattr(detector, "heatmap_overlay"):
        raise ValueError("--heatmap needs a .keras model: a SavedModel, TFLite or ONNX file returns boxes only")

    if video:
        result = predict_video(detector, source, output, class_names, args.score_threshold)
    else:
        result = predict_images(detector, paths, output, class_names, args.score_threshold, args.heatmap)
    result = {"model": str(args.model), "class_names": class_names, "score_threshold": args.score_threshold,
              **result}
    atomic_write(output / "detections.json", json.dumps(result, indent=2) + "\n")
    print(f"wrote {output / 'detections.json'}")
    return 0


def run() -> int:
    """The console entry point: ``main`` with one-line errors."""
    return run_cli(main)


if __name__ == "__main__":
    raise SystemExit(run())
