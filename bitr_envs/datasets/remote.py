"""Publishing and downloading datasets: a `file://` mirror, or Minari's own remotes.

A remote is `file://<folder>` (a local folder or mounted share laid out like a Minari root: no
account, no server) or one of Minari's (`hf://<org>`, extra `hf`; `gcp://<bucket>`), named with
`--remote` or, as Minari does, with $MINARI_REMOTE. A `file://` mirror is copied here directly;
the others go through Minari's public `download_dataset` / `upload_dataset`.

A download lands in a scratch folder, is verified (recorded and pinned checksums, a full read),
and only then moves into the local Minari root; a published dataset is verified first.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Optional

from bitr_envs.datasets.loader import DatasetError, verify
from bitr_envs.datasets.storage import dataset_path, datasets_root, environment, install, minari_root_at

NAMESPACE_FILE = "namespace_metadata.json"
SCHEMES = ("file", "hf", "gcp")


def _remote(remote: Optional[str]) -> tuple[str, str]:
    """(scheme, location) of the remote named by `remote` or $MINARI_REMOTE."""
    remote = remote or os.environ.get("MINARI_REMOTE")
    if not remote:
        raise DatasetError(
            "No remote given: pass --remote file:///path/to/mirror (a local folder or share) or "
            "hf://<organisation> (needs `pip install 'bitr-bench[hf]'`), or set MINARI_REMOTE."
        )
    scheme, sep, location = remote.partition("://")
    if not sep or scheme not in SCHEMES or not location:
        raise DatasetError(f"Unknown remote {remote!r}: use file://<folder> or hf://<organisation>.")
    return scheme, location


def _copy_tree(source: Path, target: Path) -> None:
    """Copy a folder so that `target` appears complete or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".bitr-copy-", dir=target.parent))
    try:
        shutil.copytree(source, scratch / "tree")
        if target.exists():
            shutil.rmtree(target)
        os.replace(scratch / "tree", target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _copy_namespaces(dataset_id: str, source_root: Path, target_root: Path) -> None:
    """The namespace metadata files on the way to `dataset_id`, where the target lacks them."""
    parts = dataset_id.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        source = source_root.joinpath(*parts[:depth], NAMESPACE_FILE)
        target = target_root.joinpath(*parts[:depth], NAMESPACE_FILE)
        if source.exists() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def publish(dataset_id: str, remote: Optional[str] = None, token: Optional[str] = None) -> None:
    """Upload a verified local dataset; refuses to overwrite one that the remote has."""
    problems = verify(dataset_id)
    if problems:
        raise DatasetError(f"Not publishing {dataset_id}: " + " ".join(problems))
    scheme, location = _remote(remote)
    name = f"{scheme}://{location}"
    immutable = (f"{name} already has {dataset_id}; datasets are immutable: bump the recipe's version to "
                 "publish a changed dataset.")
    if scheme == "file":
        mirror = Path(location)
        if (mirror / dataset_id).exists():
            raise DatasetError(immutable)
        _copy_namespaces(dataset_id, datasets_root(), mirror)
        _copy_tree(dataset_path(dataset_id), mirror / dataset_id)
        return
    import minari

    with environment("MINARI_REMOTE", name):
        if dataset_id in minari.list_remote_datasets(prefix=dataset_id):
            raise DatasetError(immutable)
        minari.upload_dataset(dataset_id, token)


def download(dataset_id: str, remote: Optional[str] = None, force: bool = False) -> Path:
    """Download, verify, then move into the local Minari root; returns the dataset's folder."""
    if dataset_path(dataset_id).exists() and not force:
        raise DatasetError(
            f"{dataset_id} is already at {dataset_path(dataset_id)}; pass --force to download it again."
        )
    scheme, location = _remote(remote)
    name = f"{scheme}://{location}"
    scratch = Path(tempfile.mkdtemp(prefix=".bitr-download-", dir=datasets_root()))
    try:
        with minari_root_at(scratch):
            if scheme == "file":
                source = Path(location) / dataset_id
                if not (source / "data" / "metadata.json").exists():
                    raise DatasetError(f"Cannot download {dataset_id} from {name}: the mirror has no such dataset.")
                _copy_namespaces(dataset_id, Path(location), scratch)
                _copy_tree(source, scratch / dataset_id)
            else:
                _download_with_minari(dataset_id, name)
            problems = verify(dataset_id)
            if problems:
                raise DatasetError(f"Downloaded {dataset_id} from {name}, but: " + " ".join(problems))
        return install(scratch, dataset_id)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _download_with_minari(dataset_id: str, name: str) -> None:
    import minari

    with environment("MINARI_REMOTE", name), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Minari's "recommend a newer version" chatter
        try:
            minari.download_dataset(dataset_id)
        except ValueError as err:
            raise DatasetError(f"Cannot download {dataset_id} from {name}: {err}") from err
        except Exception as err:  # network, authentication and missing-package errors, each worded its own way
            reason = (str(err).strip().splitlines() or [""])[0][:200]
            raise DatasetError(
                f"Cannot reach {name} to download {dataset_id} ({type(err).__name__}: {reason}). Check the "
                f"network connection and that the remote exists (hf:// needs `pip install 'bitr-bench[hf]'`); "
                f"or build the dataset here with `bitr datasets build {dataset_id}`."
            ) from None
