"""Progress of the long steps (checking a dataset, generating shapes, evaluating, calibrating int8, predicting
on a folder): a bar with ETA on a terminal, one summary line in a log. Plain Python, so the TensorFlow-free
data modules can use it too."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, TypeVar

from centernet_tf.native_log import stderr_is_terminal

T = TypeVar("T")

#: Steps shorter than this print nothing: the bar is for waits a user would wonder about.
MIN_SECONDS = 2.0


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds + 0.5), 60)
    return f"{minutes}:{seconds:02d}" if minutes < 60 else f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


def progress(
    items: Iterable[T], total: int | None, title: str, stream: IO[str] | None = None, min_seconds: float = MIN_SECONDS
) -> Iterator[T]:
    """Yield ``items``; once the step has taken ``min_seconds``, show ``title  37/120 [=====>    ] 31% ETA 0:42``
    (redrawn in place on a terminal; elsewhere a single ``title: 120 in 1:05`` line at the end)."""
    stream = stream or sys.stderr
    terminal = hasattr(stream, "isatty") and stream.isatty() or (stream is sys.stderr and stderr_is_terminal())
    started = time.perf_counter()
    last = float("-inf")  # the first step past min_seconds draws at once, later ones every 0.2 s
    shown = False
    done = 0
    for done, item in enumerate(items, start=1):
        yield item
        now = time.perf_counter()
        if terminal and now - started >= min_seconds and now - last >= 0.2:
            last, shown = now, True
            if total:
                share = min(done / total, 1.0)
                bar = "=" * int(share * 30)
                eta = (now - started) / done * (total - done)
                stream.write(f"\r{title}  {done}/{total} [{bar:<30}] {share:4.0%} ETA {_clock(eta)} ")
            else:
                stream.write(f"\r{title}  {done} in {_clock(now - started)} ")
            stream.flush()
    elapsed = time.perf_counter() - started
    if shown:
        stream.write(f"\r{title}  {done}/{total or done} in {_clock(elapsed)}{' ' * 40}\n")
    elif not terminal and elapsed >= min_seconds:
        stream.write(f"{title}: {done} in {_clock(elapsed)}\n")
    stream.flush()
