"""Building layers under a Keras dtype policy without leaking it: Keras keeps the policy in one global."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Layers built inside compute with policy ``name``; the previous global policy is restored after, also when
    building fails (a leaked ``mixed_bfloat16`` would silently change every model built later in the process)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
