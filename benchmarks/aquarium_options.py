"""Training options one at a time on the aquarium photos: same seed, same short time budget, ``valid`` mAP.

    python benchmarks/aquarium_options.py                      # every option, ~17 min each
    python benchmarks/aquarium_options.py --only base mosaic50 --budget-minutes 15

Each option is ``configs/aquarium.yaml`` with its ``--set`` overrides (``OPTIONS``), trained by ``train.py`` in
its own process for ``--budget-minutes`` (the schedule stretched to the epochs that fit, as users train) and
scored by ``evaluate.py`` on ``valid`` (pycocotools). An option whose folder under ``--root`` already holds
its model is not trained again, so an interrupted run resumes. The JSON lists per option: valid
mAP@0.5 and mAP@[.5:.95], the epochs that fitted, the measured seconds per step and the wall time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bccd import machine  # noqa: E402

#: Option name -> the config overrides that make it (``base``: the config as shipped, only the budget set).
OPTIONS: dict[str, list[str]] = {
    "base": [],
    "in384": ["model.input_size=[384,384]"],
    "scale46": ["data.scale_range=[0.4,1.6]"],
    "giou": ["loss.box=giou_ttf", "loss.wh_weight=5"],
    "lite1": ["model.backbone=efficientnet_lite1"],
    "mosaic50": ["data.mosaic=0.5"],
}


def _shown(part: str) -> str:
    """A command-line word as the JSON shows it: paths inside the repository relative to it."""
    return part[len(str(REPO)) + 1:] if part.startswith(str(REPO) + "/") else part


def run_option(name: str, folder: Path, args: argparse.Namespace) -> dict:
    """Train (unless ``folder`` holds its model) and evaluate (unless it holds ``val.json``) one option; its row."""
    sets = [f"train.time_budget_minutes={args.budget_minutes}", "eval.every_n_epochs=100", *OPTIONS[name]]
    sets += [f"data.root={Path(args.data_root).resolve()}"] if args.data_root else []
    overrides = [a for s in sets for a in ("--set", s)]
    command = [sys.executable, "train.py", "--config", str(Path(args.config).resolve()), *overrides,
               "--run-dir", str(folder / "run")]
    if not (folder / "run" / "model.keras").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with open(folder / "train.log", "w") as log:
            subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, check=True)
        (folder / "train_seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
    if not (folder / "val.json").is_file():
        subprocess.run([sys.executable, "evaluate.py", "--model", str(folder / "run" / "model.keras"),
                        "--split", "val", "--output", str(folder / "val.json")], cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL)
    metrics = json.loads((folder / "val.json").read_text())
    budget = json.loads((folder / "run" / "time_budget.json").read_text())
    seconds = folder / "train_seconds.txt"
    return {
        "overrides": OPTIONS[name],
        "budget_minutes": budget["budget_minutes"],
        "valid_mAP50": round(metrics["mAP50"], 4),
        "valid_mAP": round(metrics["mAP"], 4),
        "epochs": budget["epochs_done"],
        # The planner's timing of the first steps (after tracing); the epochs' wall time also holds tracing.
        "seconds_per_step": budget["step_seconds"],
        "epoch_seconds": round(budget["elapsed_seconds"] / budget["epochs_done"], 1),
        "train_wall_seconds": float(seconds.read_text()) if seconds.is_file() else None,
        "command": " ".join(["python", *(_shown(part) for part in command[1:])]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "aquarium.yaml"))
    parser.add_argument("--data-root", help="the aquarium folder, if not the config's ../shared/data/aquarium")
    parser.add_argument("--budget-minutes", type=float, default=15.0)
    parser.add_argument("--only", nargs="+", choices=sorted(OPTIONS), help="default: every option")
    parser.add_argument("--root", default=str(REPO / "runs" / "aquarium_options"))
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "aquarium_options.json"))
    args = parser.parse_args(argv)

    rows = {}
    for name in args.only or list(OPTIONS):
        rows[name] = run_option(name, Path(args.root).resolve() / name, args)
        row = rows[name]
        print(f"{name:10s} valid mAP@0.5 {row['valid_mAP50']:.3f}  mAP {row['valid_mAP']:.3f}  "
              f"{row['epochs']} epochs  {row['seconds_per_step']:.2f} s/step", flush=True)
    result = {"split": "valid", "machine": machine(), "options": rows}
    output = Path(args.output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
