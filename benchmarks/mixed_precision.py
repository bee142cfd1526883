"""What mixed precision costs in accuracy: the default shapes training in float32 and in bfloat16 (or float16).

    python benchmarks/mixed_precision.py                  # configs/shapes.yaml, none vs bfloat16

Runs ``train.py`` once per precision with the same config and seed (XLA off for both: it is slower on CPU) and
writes the validation mAP, wall time and final losses of each to ``benchmarks/results/mixed_precision.json``.
The speed per step of each precision is measured apart, in ``train_step_time.py``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "shapes.yaml"))
    parser.add_argument("--precisions", nargs="+", default=["none", "bfloat16"])
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "mixed_precision.json"))
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in args.precisions:
            run_dir = Path(tmp) / precision
            started = time.perf_counter()
            subprocess.run([sys.executable, str(REPO / "train.py"), "--config", args.config, "--run-dir", str(run_dir),
                            "--set", f"train.mixed_precision={precision}", "--set", "train.jit_compile=false"],
                           check=True, cwd=REPO)
            metrics = json.loads((run_dir / "metrics.json").read_text())
            results[precision] = {
                "mAP50": round(metrics["mAP50"], 4), "mAP": round(metrics["mAP"], 4),
                "per_class_AP50": {k: round(v, 4) for k, v in metrics["per_class_AP50"].items()},
                "train_seconds": metrics["train_seconds"], "wall_seconds": round(time.perf_counter() - started, 1),
                "final_losses": metrics["final_losses"],
            }
            print(precision, results[precision], flush=True)
    reference = results[args.precisions[0]]
    for precision in args.precisions[1:]:
        results[precision]["mAP50_points_vs_" + args.precisions[0]] = round(
            100 * (results[precision]["mAP50"] - reference["mAP50"]), 2)
    Path(args.output).write_text(json.dumps({
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "config": Path(args.config).name, "results": results,
    }, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
