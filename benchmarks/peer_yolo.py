"""The detector practitioners pick instead, side by side: Ultralytics YOLO and ours on the same photos, for the
same wall-clock budget on this machine, scored by the same pycocotools code on the held-out ``test`` split.

    python -m venv /opt/yolo && /opt/yolo/bin/pip install ultralytics   # its own environment, never in CI
    python benchmarks/peer_yolo.py --budget-minutes 60 --yolo-python /opt/yolo/bin/python

Three runs, one after the other (never at once: they share the CPU):
  * YOLO (``--yolo-model``, default its smallest current model, built from its YAML: no downloaded weights)
    trained from scratch with Ultralytics' ``time`` budget, plots off;
  * ours from scratch (``configs/aquarium.yaml``, random init, no frozen phase) with ``train.time_budget_minutes``;
  * ours from ImageNet weights with the same budget (the recipe users get).
YOLO's test predictions (confidence >= 0.001, its own NMS) are converted to COCO results on our image ids and
scored with :func:`centernet_tf.evaluation.metrics.coco_metrics`, exactly as ours are. YOLO runs in a child process of
its own Python (``--yolo-python``): PyTorch and TensorFlow in one process crashed (segmentation fault) here,
and Ultralytics needs a torchvision built for its PyTorch, which our ``pretrained`` extra's CPU PyTorch is not.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

SCRATCH = ["model.backbone_weights=null", "train.freeze_backbone_epochs=0"]


def yolo_data_yaml(config: Any, work: Path) -> Path:
    """An Ultralytics data file for the config's YOLO-layout root (train / val / test image folders).

    Ultralytics writes a ``labels.cache`` beside the labels it reads, which must not land in the user's data
    folder: it reads a mirror in ``work`` instead (a link per image, a copy of each label file: small)."""
    root = Path(config.data.root).resolve()
    mirror = work / "yolo_data"
    for split in dict.fromkeys([config.data.train_split, config.data.val_split, config.data.test_split]):
        for sub in ("images", "labels"):
            (mirror / split / sub).mkdir(parents=True, exist_ok=True)
        for image in (root / split / "images").iterdir():
            link = mirror / split / "images" / image.name
            if not link.exists():
                link.symlink_to(image)  # a link per file: Ultralytics resolves a linked folder to the original
        for label in (root / split / "labels").glob("*.txt"):
            shutil.copyfile(label, mirror / split / "labels" / label.name)
    names = "".join(f"  {i}: {name}\n" for i, name in enumerate(config.data.class_names))
    path = work / "data.yaml"
    path.write_text(f"path: {mirror.resolve()}\ntrain: {config.data.train_split}/images\n"
                    f"val: {config.data.val_split}/images\ntest: {config.data.test_split}/images\nnames:\n{names}")
    return path


def yolo_child(request_path: str) -> None:
    """In the YOLO environment (no TensorFlow): train for the budget, predict the test images, write results."""
    from ultralytics import YOLO

    request = json.loads(Path(request_path).read_text())
    started = time.perf_counter()
    model = YOLO(request["model"])  # a .yaml: the architecture only, random weights
    model.train(data=request["data"], time=request["hours"], epochs=1000, imgsz=request["imgsz"],
                batch=request["batch"], device="cpu", workers=2, pretrained=False, plots=False, amp=False,
                val=False, seed=request["seed"], project=request["work"], name="yolo", exist_ok=True, verbose=False)
    train_seconds = time.perf_counter() - started
    trained = YOLO(str(Path(request["work"]) / "yolo" / "weights" / "last.pt"))
    results = []
    for image_id, path in request["images"]:
        found = trained.predict(path, imgsz=request["imgsz"], conf=0.001, iou=0.7, max_det=100, device="cpu",
                                verbose=False)[0]
        for (x1, y1, x2, y2), score, cls in zip(found.boxes.xyxy.tolist(), found.boxes.conf.tolist(),
                                               found.boxes.cls.tolist()):
            results.append({"image_id": int(image_id), "category_id": int(cls) + 1,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)})
    Path(request["output"]).write_text(json.dumps({"train_seconds": train_seconds, "results": results}))


def train_yolo(args: argparse.Namespace, config: Any, work: Path, test: Any) -> dict[str, Any]:
    from centernet_tf.evaluation.metrics import coco_ground_truth, coco_metrics

    request = {
        "model": args.yolo_model, "data": str(yolo_data_yaml(config, work)), "hours": args.budget_minutes / 60.0,
        "imgsz": args.imgsz, "batch": config.train.batch_size, "seed": config.train.seed, "work": str(work),
        "images": [[int(e.image_id), e.image_path] for e in test.examples], "output": str(work / "yolo_results.json"),
    }
    (work / "yolo_request.json").write_text(json.dumps(request))
    subprocess.run([args.yolo_python, __file__, "--yolo-child", str(work / "yolo_request.json")], check=True)
    answer = json.loads((work / "yolo_results.json").read_text())
    metrics = coco_metrics(coco_ground_truth(test), answer["results"], list(test.class_names))
    metrics.pop("summary", None)
    return {"model": args.yolo_model, "train_seconds": round(answer["train_seconds"], 1), "test": metrics}


def train_ours(args: argparse.Namespace, overrides: list[str], run_dir: Path, test: Any) -> dict[str, Any]:
    from centernet_tf.config import load_config
    from centernet_tf.evaluation.metrics import evaluate_model
    from centernet_tf.model.centernet import load_centernet
    from centernet_tf.train.training import run_training

    config = load_config(args.config, [f"train.time_budget_minutes={args.budget_minutes}", *overrides])
    started = time.perf_counter()
    valid = run_training(config, run_dir, verbose=2)
    train_seconds = time.perf_counter() - started
    metrics = evaluate_model(load_centernet(run_dir / "model.keras"), test, batch_size=config.eval.batch_size)
    metrics.pop("summary", None)
    return {"overrides": overrides, "train_seconds": round(train_seconds, 1), "train_seconds_in_fit":
            valid["train_seconds"], "time_budget": json.loads((run_dir / "time_budget.json").read_text()),
            "test": metrics}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--yolo-child"]:
        yolo_child(argv[1])
        return 0
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bccd import machine  # also sets up the import path and TensorFlow's log level

    from centernet_tf.config import load_config
    from centernet_tf.data.loaders import load_split

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "aquarium.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--budget-minutes", type=float, default=60.0)
    parser.add_argument("--yolo-model", default="yolo26n.yaml", help="an Ultralytics model YAML (no weights)")
    parser.add_argument("--imgsz", type=int, default=512, help="YOLO's input size (ours: the config's)")
    parser.add_argument("--yolo-python", default=sys.executable, help="the Python of the Ultralytics environment")
    parser.add_argument("--only", choices=["yolo", "ours_scratch", "ours_imagenet"], action="append")
    parser.add_argument("--work-dir", default=str(REPO / "runs" / "peer_yolo"))
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "peer_yolo.json"))
    args = parser.parse_args(argv)
    config = load_config(args.config, args.overrides)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    train = load_split(config.data, "train")
    test = load_split(config.data, "test", class_names=list(train.class_names))
    runs = args.only or ["yolo", "ours_scratch", "ours_imagenet"]
    output = Path(args.output)
    result = json.loads(output.read_text()) if output.is_file() else {}
    result.update(command=" ".join(["python", "benchmarks/peer_yolo.py", *argv]),
                  machine=machine(), budget_minutes=args.budget_minutes)
    for name in runs:
        if name == "yolo":
            result[name] = train_yolo(args, config, work, test)
        else:
            extra = SCRATCH if name == "ours_scratch" else []
            result[name] = train_ours(args, [*extra, *args.overrides], work / name, test)
        output.write_text(json.dumps(result, indent=2) + "\n")  # after each run: a later failure keeps it
        print(f"{name}: test mAP@0.5 {result[name]['test']['mAP50']:.3f}, mAP {result[name]['test']['mAP']:.3f}")
    if "yolo" in result and "ours_scratch" in result:
        result["ours_scratch_over_yolo_mAP50"] = round(
            result["ours_scratch"]["test"]["mAP50"] / max(result["yolo"]["test"]["mAP50"], 1e-9), 3)
        output.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
