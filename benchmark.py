"""Benchmark every deployment format: ``python benchmark.py --model runs/NAME/model.keras [--split test]``.

The same program as the installed ``centernet-benchmark`` command (:mod:`centernet_tf.commands.benchmark`).
"""

import os

os.environ["CENTERNET_TF_COMMAND"] = "1"  # quiet TensorFlow's C++ log (centernet_tf.native_log)

from centernet_tf.commands.benchmark import run  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run())
