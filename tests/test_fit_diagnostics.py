"""The shape figures of ``benchmarks/fit_diagnostics.py``: log aspect / size and the cross-validated probe."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "fit_diagnostics.py"


@pytest.fixture(scope="module")
def diagnostics():
    spec = importlib.util.spec_from_file_location("fit_diagnostics", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_log_shape_by_hand(diagnostics) -> None:
    shape = diagnostics.log_shape(np.array([4.0, 3.0]), np.array([1.0, 3.0]))
    np.testing.assert_allclose(shape, [[np.log(4.0), np.log(2.0)], [0.0, np.log(3.0)]], rtol=1e-6)
    # a collapsed size (0) is clipped, not a -inf or NaN
    assert np.isfinite(diagnostics.log_shape(np.array([0.0]), np.array([2.0]))).all()


def test_probe_finds_a_linear_signal_and_not_noise(diagnostics) -> None:
    rng = np.random.RandomState(1)
    features = rng.normal(size=(200, 16))
    carried = features @ rng.normal(size=16) + 0.1 * rng.normal(size=200)
    assert diagnostics.cross_validated_ridge(features, carried) > 0.95
    # a target the features do not carry: the held-out folds show it (an in-sample fit would reach ~0.3 here)
    assert abs(diagnostics.cross_validated_ridge(features, rng.normal(size=200))) < 0.2


def test_correlation_of_a_constant_is_zero(diagnostics) -> None:
    # one predicted aspect for every box (the collapse the figure is for) must read 0, not NaN
    assert diagnostics.correlation(np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.5, 0.5])) == 0.0
    assert diagnostics.correlation(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0])) == pytest.approx(1.0)
