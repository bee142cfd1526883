"""A run folder belongs to one training at a time, and a backup resumes only the experiment that wrote it.

Two runs writing one folder interleave ``results.csv`` and overwrite each other's models; a backup of another
experiment (other classes, learning rate, backbone) would silently continue from the wrong weights. Both are
refused with one line that says what to do.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from centernet_tf.config import Config

#: Config keys that may change between a run and its resume: where the data and outputs are, how the data is
#: checked, how evaluation decodes. Everything else decides the weights a backup holds.
RESUME_MAY_DIFFER = (
    "name", "output_dir", "eval.", "train.resume",
    "data.root", "data.train_annotations", "data.train_images", "data.val_annotations", "data.val_images",
    "data.test_annotations", "data.test_images", "data.shapes_dir", "data.dataset_yaml", "data.tfds_data_dir",
    "data.tfds_cache_dir", "data.tfds_download", "data.image_check", "data.check_workers", "data.test_split",
)
LOCK_FILE = ".lock"
logger = logging.getLogger(__name__)


def _written_by_a_run(config_file: Path) -> bool:
    """Whether ``config.yaml`` is a run's full dump (nearly every setting listed), not a user's own short config."""
    try:
        values = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    if not isinstance(values, dict):
        return False
    defaults = _flat(Config().to_dict())
    return len(set(_flat(values)) & set(defaults)) >= 0.9 * len(defaults)


def check_run_folder(run_dir: Path) -> None:
    """``ValueError`` when ``run_dir`` holds files but is not a run folder: the run would write ``config.yaml``,
    ``labels.txt``, ``model.keras``... among them, over any of the same name. A run folder holds the lock file, or
    a ``config.yaml`` a run wrote (every setting listed); hidden files (``.DS_Store``) do not count."""
    if not run_dir.is_dir() or (run_dir / LOCK_FILE).exists():
        return
    if (run_dir / "config.yaml").is_file() and _written_by_a_run(run_dir / "config.yaml"):
        return
    others = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("."))
    if others:
        raise ValueError(
            f"{run_dir} is not empty and is not a run folder ({', '.join(others[:3])}"
            f"{', ...' if len(others) > 3 else ''}): a run writes config.yaml, labels.txt, model.keras and more "
            "there, over files of the same name; choose a new or empty --run-dir"
        )


class RunFolderLock:
    """An exclusive ``flock`` on ``<run_dir>/.lock`` for as long as the training runs; the system drops it when
    the process ends, however it ends (a killed run never leaves the folder locked)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._file: Any = None

    def __enter__(self) -> RunFolderLock:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; the folder is used unguarded
            return self
        self._file = open(self.path, "a+")
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip() or "another process"
            self._file.close()
            raise ValueError(
                f"run folder {self.path.parent} is in use by another training ({holder}): wait for it to end, "
                "or choose another --run-dir"
            ) from None
        except OSError as error:  # a file system without locks (some network and bucket mounts)
            logger.warning("Could not lock %s (%s): the run folder is used without a lock", self.path, error)
            return self
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"pid {os.getpid()}")
        self._file.flush()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the lock


def backups(run_dir: Path) -> list[Path]:
    """What a killed run left to resume from: backup folders and finished phases' weights."""
    return sorted([*run_dir.glob("backup*"), *run_dir.glob("*.weights.h5")])


def _flat(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _may_differ(key: str) -> bool:
    return any(key.startswith(k) if k.endswith(".") else key == k for k in RESUME_MAY_DIFFER)


def check_resume_config(run_dir: Path, config: dict[str, Any]) -> None:
    """``ValueError`` when ``run_dir`` holds a backup written with a config that differs from ``config`` in a
    key that decides the weights (anything not in :data:`RESUME_MAY_DIFFER`)."""
    saved_path = run_dir / "config.yaml"
    found = backups(run_dir)
    if not found or not saved_path.is_file():
        return
    try:
        loaded = yaml.safe_load(saved_path.read_text()) or {}
    except yaml.YAMLError:
        loaded = {}
    # A key the saved config lacks (written by an older version) had its default then.
    saved = {**_flat(Config().to_dict()), **_flat(loaded if isinstance(loaded, dict) else {})}
    now = _flat(config)
    changed = sorted(key for key in set(saved) | set(now) if saved.get(key) != now.get(key) and not _may_differ(key))
    if changed:
        shown = ", ".join(f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in changed[:4])
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        raise ValueError(
            f"{run_dir} holds a backup of another experiment ({shown}{more}): resuming would continue from its "
            f"weights. Use another --run-dir, or delete {', '.join(p.name for p in found)} to start this one afresh"
        )


def remove_backups(run_dir: Path) -> None:
    """Drop the backups once the final model and metrics are written (never before: a kill in between must
    still find something to resume from)."""
    for path in backups(run_dir):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def remove_partials(run_dir: Path) -> None:
    """Half-written files (``files.atomic_path``) of a run that was killed; called with the folder locked, so
    no live writer owns them."""
    for path in run_dir.glob(".*.partial-*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def forget_finished_run(run_dir: Path) -> None:
    """A run started afresh in a finished run's folder (no backup to resume) must not inherit its records: the best
    value to beat, the learning curve, the epochs its time budget chose."""
    if backups(run_dir):
        return
    for name in ("best_model.json", "eval_curve.json", "time_budget.json"):
        (run_dir / name).unlink(missing_ok=True)

