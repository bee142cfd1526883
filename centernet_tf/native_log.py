"""Keep TensorFlow's C++ log lines off a command's console: they start before any Python setting can reach them.

TensorFlow 2.17+ logs through absl from C++: ``I0000 00:00:... port.cc:153] oneDNN custom operations are on``,
``E0000 ... failed call to cuInit`` on every machine without a GPU, and absl's own preamble, whatever
``TF_CPP_MIN_LOG_LEVEL`` says. A command that a newcomer runs should print what they need, so the commands read
their process's standard error through a pipe and pass on every line but those. Nothing of ours is lost: what
TensorFlow drops (an image it cannot decode) is counted and reported by our own loggers. ``--debug`` or
``CENTERNET_TF_NATIVE_LOG=1`` shows everything. Imports nothing of TensorFlow (it must run before it).
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

#: absl's line prefix (severity letter, MMDD, time, thread id, file:line]), the preamble it prints once, and
#: TFLite's own INFO lines ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU."; its warnings pass) and
#: the settings line its int8 quantiser prints on every conversion.
NATIVE_LINE = re.compile(
    rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w.+-]+:\d+\] |WARNING: All log messages before absl::InitializeLog\(\) "
    rb"|INFO: Created TensorFlow Lite |fully_quantize: \d+, inference_type: )"
)


_SEGMENT = re.compile(rb"[^\r\n]*[\r\n]")
#: The filter of this process, once a command started it.
ACTIVE: NativeLogFilter | None = None


def is_native_log_line(line: bytes) -> bool:
    return NATIVE_LINE.match(line) is not None


def stderr_is_terminal() -> bool:
    """Whether the user's standard error is a terminal (``sys.stderr`` is the filter's pipe while one runs)."""
    return ACTIVE.terminal if ACTIVE is not None else sys.stderr.isatty()


class NativeLogFilter:
    """Standard error (file descriptor 2) through a pipe; a thread writes on every line that is not TensorFlow's
    C++ log to the real standard error. :meth:`stop` (also at exit) puts descriptor 2 back and drains the pipe."""

    def __init__(self) -> None:
        self._saved = -1
        self._thread: threading.Thread | None = None
        self._broken = False
        #: Whether standard error was a terminal before it became the pipe (for progress bars).
        self.terminal = False

    def start(self) -> None:
        sys.stderr.flush()
        self.terminal = os.isatty(2)
        self._saved = os.dup(2)
        reader, writer = os.pipe()
        os.dup2(writer, 2)
        os.close(writer)
        self._thread = threading.Thread(target=self._pump, args=(reader,), name="native-log-filter", daemon=True)
        self._thread.start()
        atexit.register(self.stop)

    def _pump(self, reader: int) -> None:
        """Forward each line (ended by a newline, or a carriage return: progress bars redraw with it) that is
        not a native log line. Should the real standard error close (``| head``), keep draining the pipe, so a
        writer never blocks on a full pipe."""
        with os.fdopen(reader, "rb", buffering=0) as pipe:
            pending = b""
            while chunk := pipe.read(65536):
                pending += chunk
                end = max(pending.rfind(b"\n"), pending.rfind(b"\r")) + 1
                for segment in _SEGMENT.findall(pending[:end]):
                    self._forward(segment)
                pending = pending[end:]
            if pending:
                self._forward(pending)

    def _forward(self, segment: bytes) -> None:
        if self._broken or is_native_log_line(segment):
            return
        try:
            os.write(self._saved, segment)
        except OSError:
            self._broken = True

    def stop(self) -> None:
        if self._thread is None:
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self._saved, 2)  # the pipe's last writer in this process is gone: the thread drains and ends
        self._thread.join(timeout=5)
        self._thread = None


def debug_requested(argv: list[str] | None = None) -> bool:
    """``--debug`` on the command line or ``CENTERNET_DEBUG=1``: tracebacks and every log line."""
    return "--debug" in (sys.argv if argv is None else argv) or os.environ.get("CENTERNET_DEBUG") == "1"


def full_log_requested(argv: list[str] | None = None) -> bool:
    """Every log line of TensorFlow's: asked by :func:`debug_requested` or ``CENTERNET_TF_NATIVE_LOG=1``."""
    return debug_requested(argv) or os.environ.get("CENTERNET_TF_NATIVE_LOG") == "1"


def quiet_native_log(argv: list[str] | None = None) -> NativeLogFilter | None:
    """Start the filter for a command, unless :func:`full_log_requested`."""
    if full_log_requested(argv):
        return None
    global ACTIVE
    ACTIVE = NativeLogFilter()
    ACTIVE.start()
    return ACTIVE
