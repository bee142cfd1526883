"""Progress of long steps: a bar with ETA on a terminal, one line in a log, nothing for short steps."""

from __future__ import annotations

import io

from centernet_tf.progress import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_with_eta_and_a_final_line() -> None:
    stream = _Terminal()
    assert list(progress(range(5), 5, "checking BCCD", stream=stream, min_seconds=0.0)) == [0, 1, 2, 3, 4]
    text = stream.getvalue()
    assert "checking BCCD  1/5 [======" in text and "ETA 0:00" in text
    assert text.rstrip().endswith("checking BCCD  5/5 in 0:00")


def test_a_log_gets_one_line_and_short_steps_print_nothing() -> None:
    log = io.StringIO()
    assert sum(progress(range(3), 3, "evaluating", stream=log, min_seconds=0.0)) == 3
    assert log.getvalue() == "evaluating: 3 in 0:00\n"
    quiet = _Terminal()
    list(progress(range(3), 3, "evaluating", stream=quiet))  # well under the 2 s threshold
    assert quiet.getvalue() == ""
