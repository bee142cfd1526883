"""notebooks/quickstart.ipynb runs end to end (tiny settings), so the Colab quick start cannot rot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason='the notebook test needs pip install -e ".[dev]"')
nbclient = pytest.importorskip("nbclient", reason='the notebook test needs pip install -e ".[dev]"')

REPO = Path(__file__).resolve().parents[1]


def test_the_quickstart_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CENTERNET_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("CENTERNET_TF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    notebook = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(out.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for out in cell.get("outputs", []))
    assert "mAP@0.5" in outputs and "VOC07" in outputs and "TFLite:" in outputs
    assert (tmp_path / "shapes.tflite").is_file() and (tmp_path / "logs").is_dir()
    assert any(out.get("output_type") == "display_data" for cell in notebook.cells
               for out in cell.get("outputs", []))  # the picture with the detections
