"""Board entries on disk: checking result files and filing them as entries, and reading the
filed entries back.

    bitr leaderboard add RUN1.json RUN2.json RUN3.json --name "FOCAL (lite)"

An entry lives in `results/<suite>/<slug of its name>/` (a sealed entry's folder ends with its
key's first eight hex digits: one name can be filed once per key): `entry.json` (its name and run files)
and `run-1.json`, `run-2.json`, ... (the result files as submitted, one per training run of
the same agent: same spec and arguments, different checkpoints), and `verification.json` when
a maintainer re-played some of its units (`bitr_eval.replay`). A file is filed only if it
passes `bitr_eval.checks`, and read back only if it still does: in full once, then from the
record `bitr_eval.check_cache` keeps of its bytes (what changed on this machine is checked on
every read).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from tqdm import tqdm

from bitr_envs.files import write_json_atomic
from bitr_eval.check_cache import board_record, cached_record, remember
from bitr_eval.checks import check, check_dataset_hashes, check_pinned_suite, check_runs, check_sealed_data, recheck
from bitr_eval.results import OldSchemaError, ResultError, file_bytes, load_result, read_result, sealing_key

RESULTS = "results"  # the filed entries, one folder per suite
ENTRY_FILE = "entry.json"
VERIFICATION_FILE = "verification.json"  # a maintainer's re-play of the entry (bitr_eval.replay)


def slug(name: str) -> str:
    """A folder name for an entry name: lower-case letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "submission"


def progress(total: int, description: str, unit: str) -> tqdm:
    """A progress bar on the terminal, shown once the work has taken two seconds."""
    return tqdm(total=total, desc=description, unit=unit, delay=2, leave=False, disable=None)


def load_checked(path: Path) -> dict:
    """The result file at `path`, read and checked in full; a refusal names the file."""
    return _check_bytes(file_bytes(path), path)


def _check_bytes(data: bytes, path: Path) -> dict:
    result = read_result(data, path)
    try:
        check(result)
    except ResultError as err:
        raise ResultError(f"{path}: {err}") from None
    return result


def load_record(path: Path) -> dict:
    """The board record (`bitr_eval.check_cache.board_record`) of the result file at `path`:
    kept from an earlier check of the same bytes (and checked again for what may have changed
    on this machine), else from a check in full, then kept."""
    data = file_bytes(path)
    sha256 = hashlib.sha256(data).hexdigest()
    record = cached_record(sha256)
    if record is None:
        record = board_record(_check_bytes(data, path))
        remember(sha256, record)
        return record
    try:
        recheck(record)
    except ResultError as err:
        raise ResultError(f"{path}: {err}") from None
    return record


def filed(directory: str | Path) -> tuple[list[dict], list[str]]:
    """Every filed entry that still passes the checks ({"name", "path", "suite", "runs",
    "verification"}; its runs are board records), and a warning for each skipped file or entry
    (an old schema says how to make the file again)."""
    entries, warnings = [], []
    root = Path(directory, RESULTS)
    suite_dirs = sorted(p for p in root.glob("*") if p.is_dir())
    folders = {suite_dir: sorted(p for p in suite_dir.glob("*") if p.is_dir()) for suite_dir in suite_dirs}
    with progress(sum(map(len, folders.values())), f"reading {root}", "entry") as bar:
        for suite_dir in suite_dirs:
            for path in sorted(suite_dir.glob("*.json")):  # loose files: the layout before entries
                try:
                    load_result(path)
                    warnings.append(f"skipped {path}: a result file outside an entry folder; file it with "
                                    f"`bitr leaderboard add {path} --name NAME`")
                except OldSchemaError as err:
                    warnings.append(f"skipped {err}, then `bitr leaderboard add NEW.json`")
                except ResultError as err:
                    warnings.append(f"skipped {path}: {err}")
            for folder in folders[suite_dir]:
                try:
                    entries.append(load_entry(folder))
                except OldSchemaError as err:
                    warnings.append(f"skipped entry {folder}: {err}, then `bitr leaderboard add` the new files")
                except ResultError as err:
                    warnings.append(f"skipped entry {folder}: {err}")
                bar.update()
    return entries, warnings


def load_entry(folder: Path, episodes: bool = False) -> dict:
    """The entry filed in `folder` ({"name", "path", "suite", "runs", "verification"}), every
    run checked: its board record, or with `episodes` the whole result, checked in full (for
    playing its units again)."""
    try:
        meta = json.loads((folder / ENTRY_FILE).read_text())
        name, files = meta["name"], meta["runs"]
        if not (isinstance(name, str) and name and isinstance(files, list) and files
                and all(isinstance(f, str) and re.fullmatch(r"run-\d+\.json", f) for f in files)):
            raise ValueError("needs a name and a list of run-<k>.json files")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ResultError(f"{folder / ENTRY_FILE} is not a valid entry file ({err})") from None
    runs = [(load_checked if episodes else load_record)(folder / f) for f in files]
    check_runs(runs)
    suite_name = runs[0]["suite"]["name"]
    if suite_name != folder.parent.name:
        raise ResultError(f"an entry of the {suite_name} suite filed under {folder.parent.name}")
    verification = folder / VERIFICATION_FILE
    return {"name": name, "path": folder, "suite": suite_name, "runs": runs,
            "verification": json.loads(verification.read_text()) if verification.exists() else None}


def add(paths, directory: str | Path = "leaderboard", name: str | None = None, replace: bool = False,
        seal=None) -> Path:
    """Check the result files `paths` (the training runs of one agent) against the board and file
    copies of them as one entry named `name` (default: the runs' common submission name); return
    the entry's folder. Sealed results are checked against the datasets of `seal`, their key."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise ResultError("no result file given")
    runs = []
    with progress(len(paths), "checking", "file") as bar:
        for path in paths:
            runs.append(load_checked(Path(path)))
            bar.update()
    check_pinned_suite(runs[0])
    if len({bool(r.get("sealed")) for r in runs}) > 1:
        raise ResultError("an entry's runs are all sealed or all public: file them as two entries")
    for path, run in zip(paths, runs):
        if run.get("sealed"):
            try:
                check_sealed_data(run, seal)
            except ResultError as err:
                raise ResultError(f"{path}: {err}") from None
    check_runs(runs)
    if name is None:
        names = {r["submission"]["name"] for r in runs}
        if len(names) != 1:
            raise ResultError(f"the runs have different submission names ({', '.join(sorted(names))}): "
                              f"name the entry with --name")
        name = names.pop()
    if not name.strip() or len(name) > 100:
        raise ResultError("an entry name has 1 to 100 characters")
    suite_name = runs[0]["suite"]["name"]
    key = sealing_key(runs[0])
    target = Path(directory, RESULTS, suite_name, slug(name) + (f"-{key[:8]}" if key else ""))
    entries, _ = filed(directory)
    for other in entries:
        same_name = other["suite"] == suite_name and other["name"] == name and sealing_key(other["runs"][0]) == key
        if other["path"] == target and not same_name:
            raise ResultError(f"{target} already holds {other['name']!r}: choose a name that differs in its "
                              f"letters or digits")
        if same_name and not replace:
            raise ResultError(f"{name!r} is already on the {suite_name} board{' under this key' if key else ''} "
                              f"({other['path']}); --replace replaces it")
    check_dataset_hashes([r for e in entries if e["path"] != target for r in e["runs"]] + runs)
    if target.exists():
        for old in target.glob("*.json"):
            old.unlink()
    files = [f"run-{k}.json" for k in range(1, len(runs) + 1)]
    for file, run in zip(files, runs):
        write_json_atomic(target / file, run)
        remember(hashlib.sha256((target / file).read_bytes()).hexdigest(), board_record(run))  # checked above
    write_json_atomic(target / ENTRY_FILE, {"name": name, "runs": files})
    return target
