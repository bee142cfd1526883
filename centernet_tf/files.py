"""Writing files a user may depend on: never half-written, never on top of their inputs.

Every result file (models, metrics, backups' companions, exports) is written beside its final name and renamed
over it only once complete (``os.replace`` is atomic on one file system), so a kill or a full disk leaves the
previous file or none, never a truncated one. Outputs that would land on an input are refused before anything
is written.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same folder and suffixes, so writers that check them accept it)
    that replaces ``path`` when the block ends without an error, and is removed when it does not.

    An ``OSError`` (full disk, read-only folder) is raised again naming ``path``, as one clear line.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Every suffix kept (".frozen.partial-7.weights.h5"): Keras checks the whole ending, not only the last one.
    base, dot, rest = path.name.partition(".")
    partial = path.with_name(f".{base}.partial-{os.getpid()}{dot}{rest}")
    try:
        yield partial
        os.replace(partial, path)
    except OSError as error:
        raise OSError(error.errno, f"could not write {path}: {error.strerror or error}") from error
    finally:
        if partial.is_dir():
            import shutil

            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` through :func:`atomic_path`."""
    path = Path(path)
    with atomic_path(path) as partial:
        with open(partial, "wb") as file:
            file.write(data.encode("utf-8") if isinstance(data, str) else data)
            file.flush()
            os.fsync(file.fileno())
    return path


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file or folder (through links, relative parts and case-insensitive disks)."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def refuse_overwriting(outputs: Iterable[str | Path], inputs: Iterable[str | Path], option: str) -> None:
    """``ValueError`` naming the first of ``outputs`` that is one of ``inputs`` or a folder holding one (checked
    before anything is written, so a refused command leaves every file as it was)."""
    inputs = [Path(p) for p in inputs]
    for output in outputs:
        for source in inputs:
            if same_file(output, source) or Path(output).resolve() in Path(source).resolve().parents:
                raise ValueError(
                    f"{option} {output} would overwrite the input {source}: choose another {option}"
                )


def save_keras(model: object, path: str | Path) -> Path:
    """``model.save(path)`` through :func:`atomic_path`: a kill or a full disk mid-save keeps the previous file."""
    with atomic_path(path) as partial:
        model.save(partial)  # type: ignore[attr-defined]
    return Path(path)
