"""Where datasets live on disk and how their bytes are written and checked, in one place.

- The local Minari root (`$MINARI_DATASETS_PATH`, else `~/.minari/datasets`) and a dataset's
  folder in it.
- Installing a build: a dataset folder appears whole or not at all (`install`).
- Checksums: `data_sha256` is the hash of the episode file; `content_sha256` covers that hash
  and every BITR field of the metadata (reference returns, behaviours, recipe hash), so an edit
  of either is caught. The benchmark's datasets have both pinned in `cards/pins.json`: a mirror
  or a local edit that changes a byte is refused, whoever built it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

FORMAT_VERSION = 3  # of the bitr_* metadata and infos layout (2: content checksum, 3: per-task episode index)
DATA_FILE = "main_data.hdf5"
METADATA_FILE = "metadata.json"


def datasets_root() -> Path:
    """Minari's local root ($MINARI_DATASETS_PATH, else ~/.minari/datasets)."""
    from minari.storage import get_dataset_path

    return get_dataset_path()


def dataset_path(dataset_id: str) -> Path:
    return datasets_root() / dataset_id


def data_file(dataset_id: str) -> Path:
    return dataset_path(dataset_id) / "data" / DATA_FILE


def metadata_file(dataset_id: str) -> Path:
    return dataset_path(dataset_id) / "data" / METADATA_FILE


def exists(dataset_id: str, root: Optional[Path] = None) -> bool:
    return ((root or datasets_root()) / dataset_id / "data" / METADATA_FILE).exists()


LOCKS_DIR = ".bitr-locks"


@contextmanager
def build_lock(dataset_id: str, on_wait: Optional[Callable[[str], None]] = None) -> Iterator[bool]:
    """Hold the build lock of `dataset_id` (an flock, so it goes with its process, even killed);
    yields whether another build held it first. `on_wait(message)` is told when it must wait.
    Where no lock can be taken (a file system without flock, a lock file another user owns)
    it warns and yields False: the build runs unlocked, as builds did before there were locks.
    The lock files stay (a few bytes each): removing one while a build waits on it would let a
    third build in."""
    import fcntl  # POSIX only: imported here so the rest of the package loads on any OS

    path = datasets_root() / LOCKS_DIR / (dataset_id.replace("/", "--") + ".lock")
    f = failure = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+")
        waited = _take(f, dataset_id, on_wait)
    except OSError as err:
        failure = err
        if f is not None:
            f.close()
    if failure is not None:  # warned and yielded outside the except: the build's errors are not chained to it
        warnings.warn(f"cannot lock {path} ({failure.strerror or failure}): concurrent builds of {dataset_id} "
                      "are not kept apart on this file system", stacklevel=3)
        yield False
        return
    with f:
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield waited
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _take(f, dataset_id: str, on_wait: Optional[Callable[[str], None]]) -> bool:
    """Take the flock of the open lock file `f`, waiting while another build holds it; returns
    whether it waited. OSError: this file system cannot lock."""
    import fcntl

    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:  # held by another build
        f.seek(0)
        holder = f.read().strip() or "unknown"
        if on_wait is not None:
            on_wait(f"another build of {dataset_id} is running (pid {holder} on the machine that started it); "
                    "waiting for it to finish")
        fcntl.flock(f, fcntl.LOCK_EX)
        return True


@contextmanager
def environment(name: str, value: str) -> Iterator[None]:
    """Set the environment variable `name` for the duration (Minari reads its settings there)."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


def minari_root_at(path: Path):
    """Point Minari's local root at `path` for the duration."""
    return environment("MINARI_DATASETS_PATH", str(path))


def install(scratch: Path, dataset_id: str) -> Path:
    """Move a finished dataset from a scratch Minari root into the real one (same filesystem,
    so the dataset appears whole or not at all), with any namespace metadata it needs."""
    root = datasets_root()
    for namespace_file in scratch.glob("**/namespace_metadata.json"):
        target = root / namespace_file.relative_to(scratch)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(namespace_file, target)
    final = root / dataset_id
    if final.exists():
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(scratch / dataset_id, final)
    return final


# ----- checksums ------------------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_sha256(metadata: dict) -> str:
    """The hash of a dataset's BITR metadata (which records its data file's hash) and of its
    reference scores: what a score computed from the dataset depends on."""
    covered = {k: v for k, v in metadata.items() if k.startswith("bitr_") and k != "bitr_content_sha256"}
    covered["ref_min_score"] = metadata.get("ref_min_score")
    covered["ref_max_score"] = metadata.get("ref_max_score")
    return hashlib.sha256(json.dumps(covered, sort_keys=True).encode()).hexdigest()


def file_hashes(dataset_id: str) -> dict[str, str]:
    """The checksums of a local dataset, computed from its files now (not read from them)."""
    with open(metadata_file(dataset_id)) as f:
        metadata = json.load(f)
    return {"data_sha256": file_sha256(data_file(dataset_id)), "content_sha256": content_sha256(metadata)}


PINS_FILE = "pins.json"


def pins() -> dict[str, dict[str, str]]:
    """dataset id -> the checksums the benchmark expects (`pins.json` beside the recipe cards;
    written by `bitr datasets pin`)."""
    from bitr_envs.datasets.recipes import recipes_dir

    path = recipes_dir() / PINS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def pinned(dataset_id: str) -> Optional[dict[str, str]]:
    """The pinned checksums of `dataset_id`, or None for a dataset the benchmark does not pin."""
    return pins().get(dataset_id)
