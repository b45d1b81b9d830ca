"""Files written whole or not at all: a kill leaves a file's old content or its new one, never
half of either. Every package of the project writes through these (datasets, results,
checkpoints, the board)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def _umask() -> int:
    """This process's umask, read without setting it (os.umask would, under every thread)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration):
        return 0o022


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call `write(file)` on a scratch file beside `path`, then move it over `path`. The file
    gets the mode `open` would give it, not the scratch file's 0600: a checkpoint must be
    readable by the sandboxed agent, which runs as another user under a root evaluator."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_json_atomic(path: str | Path, data) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(data, indent=1, allow_nan=False).encode()))
