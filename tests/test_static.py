"""Static check of every Python file: a name that is used but never defined is a crash waiting for its line
(a benchmark once called ``load_centernet`` without importing it); pyflakes finds it without running anything."""

from __future__ import annotations

from pathlib import Path

import pytest

pyflakes_api = pytest.importorskip("pyflakes.api", reason="pyflakes is in the dev extra")
from pyflakes import messages  # noqa: E402
from pyflakes.reporter import Reporter  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: What makes a file fail: names that do not exist where they are used. Unused imports are style, not bugs.
ERRORS = (messages.UndefinedName, messages.UndefinedLocal, messages.UndefinedExport)


class _Collect(Reporter):
    def __init__(self) -> None:
        self.found: list[str] = []

    def flake(self, message) -> None:  # noqa: ANN001
        if isinstance(message, ERRORS):
            self.found.append(str(message))

    def syntaxError(self, filename, msg, lineno, offset, text) -> None:  # noqa: ANN001, N802
        self.found.append(f"{filename}:{lineno}: syntax error: {msg}")

    def unexpectedError(self, filename, msg) -> None:  # noqa: ANN001, N802
        self.found.append(f"{filename}: {msg}")


def _python_files() -> list[Path]:
    folders = ("centernet_tf", "benchmarks", "tests")
    return sorted(REPO.glob("*.py")) + sorted(p for f in folders for p in (REPO / f).rglob("*.py"))


def test_no_python_file_uses_an_undefined_name() -> None:
    files = _python_files()
    assert len(files) > 30
    reporter = _Collect()
    for path in files:
        pyflakes_api.checkPath(str(path), reporter)
    assert reporter.found == []


def test_the_check_catches_an_undefined_name(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def main():\n    return load_centernet('x')\n")
    reporter = _Collect()
    pyflakes_api.checkPath(str(bad), reporter)
    assert len(reporter.found) == 1 and "undefined name 'load_centernet'" in reporter.found[0]


def test_the_readme_calls_only_what_the_package_exports() -> None:
    """The README's notebook example uses the package's top level (``ct.<name>``): each name must exist there."""
    import re

    import centernet_tf

    readme = (REPO / "README.md").read_text()
    used = set(re.findall(r"\bct\.([A-Za-z_]\w*)", readme))
    assert {"build_centernet", "load_voc", "build_train_dataset", "evaluate_model", "export_tflite",
            "load_detector"} <= used
    missing = sorted(name for name in used if not hasattr(centernet_tf, name))
    assert not missing, f"README uses ct.{missing} which centernet_tf does not export"
    assert set(centernet_tf.__all__) <= set(dir(centernet_tf))
