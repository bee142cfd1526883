"""Imported first by the latency benchmarks: TensorFlow's C++ start-up log quiet, the repository importable, and
TensorFlow pinned to :data:`THREADS` intra-op threads (one inter-op) before any op runs, so that Keras, TFLite
and PyTorch are timed on the same cores."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import tensorflow as tf  # noqa: E402

THREADS = 2
tf.config.threading.set_intra_op_parallelism_threads(THREADS)
tf.config.threading.set_inter_op_parallelism_threads(1)
