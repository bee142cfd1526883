"""A training run and its parts: the run and its phases (``training``), the training data, learning-rate
schedules, callbacks (evaluation, divergence, weight average, time budget), distribution, precision, the run
folder and its resume."""
