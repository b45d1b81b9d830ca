"""What the board needs of each checked result file, kept on this machine so that a file is
checked in full once, not on every `bitr leaderboard render`.

A file's record (`board_record`: the result without its episodes, with each unit's scored
returns) is stored under the sha256 of the file's bytes, in a folder named after the checking
code (`checker_key`: the sources of bitr_eval and bitr_envs and the versions of the libraries
the checks run on). A file edited after filing has other bytes, misses the cache and is checked
in full again; new checking code starts an empty folder. The cache lives in the user's cache
folder (`$BITR_CACHE_DIR`, else `$XDG_CACHE_HOME/bitr-bench`, else `~/.cache/bitr-bench`),
never in the repository, so no change to the repository can plant a verified record. It keeps
only what the checks proved of the bytes; the checks that depend on this machine (pins, local
datasets, the suites' current definitions) run again on every read (`bitr_eval.checks.recheck`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import bitr_envs
import bitr_eval
from bitr_envs.files import atomic_write

STALE_DAYS = 14  # a folder of other checking code not written to for this long is deleted


def board_record(result: dict) -> dict:
    """What the board reads of a checked result: everything but the units' episodes, and per
    unit the returns of its scored episodes (in list order: the raw returns the pages show)."""
    units = [{**{k: v for k, v in unit.items() if k != "episodes"},
              "scored_returns": [e["return"] for e in unit["episodes"] if e["phase"] == "score"]}
             for unit in result["units"]]
    return {**result, "units": units}


@functools.cache
def checker_key() -> str:
    """A digest of the code that checks a result: every module of bitr_eval and bitr_envs, and
    the versions of numpy, scipy and jsonschema."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    for package in (bitr_eval, bitr_envs):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(path.relative_to(root.parent).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for library in ("numpy", "scipy", "jsonschema"):
        digest.update(f"{library} {version(library)}\0".encode())
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    base = os.environ.get("BITR_CACHE_DIR")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bitr-bench"


def _folder() -> Path:
    return cache_root() / "checked" / checker_key()


def cached_record(sha256: str) -> dict | None:
    """The record of the file whose bytes have this sha256, if this checking code accepted it."""
    try:
        return json.loads((_folder() / f"{sha256}.json").read_bytes())
    except (OSError, ValueError):  # never checked here, or a damaged entry: check again
        return None


def remember(sha256: str, record: dict) -> None:
    """Keep the record of an accepted file; a cache that cannot be written is no error."""
    folder = _folder()
    try:
        new = not folder.exists()
        atomic_write(folder / f"{sha256}.json", lambda f: f.write(json.dumps(record).encode()))
    except OSError:
        return
    if new:
        _remove_stale(folder.parent, keep=folder)


def _remove_stale(parent: Path, keep: Path) -> None:
    """Delete the folders of other checking code that nothing has written to for STALE_DAYS."""
    limit = time.time() - STALE_DAYS * 86400
    for other in parent.iterdir():
        if other != keep and other.is_dir() and other.stat().st_mtime < limit:
            shutil.rmtree(other, ignore_errors=True)
