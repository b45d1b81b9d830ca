"""Publishing and downloading datasets through Minari's remote machinery.

Minari knows `hf://<org>` (Hugging Face, extra `hf`) and `gcp://<bucket>` remotes. We add
`file://<folder>`: a local folder or mounted share that mirrors datasets, with no account and no
server. Name a remote with `--remote`, or with $MINARI_REMOTE as Minari does.

Downloads land in a scratch folder, are verified against the checksum recorded at build time,
and only then move into the local Minari root.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Optional

from minari.storage.remotes import _registry as minari_remotes
from minari.storage.remotes.cloud_storage import CloudStorage

from bitr_envs.datasets.storage import dataset_path, datasets_root, install, minari_root_at
from bitr_envs.datasets.loader import DatasetError, verify

NAMESPACE_FILE = "namespace_metadata.json"


class LocalDirectoryStorage(CloudStorage):
    """A Minari remote that is a folder laid out like a Minari root."""

    def __init__(self, name: str, token: Optional[str] = None) -> None:
        self.root = Path("/" + name.lstrip("/"))

    def _copy_tree(self, source: Path, target: Path) -> None:
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

    def upload_dataset(self, dataset_id: str) -> None:
        self._copy_tree(dataset_path(dataset_id), self.root / dataset_id)

    def upload_namespace(self, namespace: str) -> None:
        target = self.root / namespace / NAMESPACE_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(datasets_root() / namespace / NAMESPACE_FILE, target)

    def list_datasets(self, prefix: Optional[str] = None) -> Iterable[str]:
        for metadata in sorted(self.root.glob("**/data/metadata.json")):
            dataset_id = str(metadata.parent.parent.relative_to(self.root))
            if prefix is None or dataset_id.startswith(prefix):
                yield dataset_id

    def get_dataset_metadata(self, dataset_id: str) -> dict:
        with open(self.root / dataset_id / "data" / "metadata.json") as f:
            return json.load(f)

    def download_dataset(self, dataset_id: str, path: Path) -> None:
        self._copy_tree(self.root / dataset_id, Path(path) / dataset_id)

    def list_namespaces(self) -> Iterable[str]:
        for metadata in sorted(self.root.glob(f"**/{NAMESPACE_FILE}")):
            yield str(metadata.parent.relative_to(self.root))

    def download_namespace_metadata(self, namespace: str, path: Path) -> None:
        target = Path(path) / namespace / NAMESPACE_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.root / namespace / NAMESPACE_FILE, target)


minari_remotes.setdefault("file", lambda: LocalDirectoryStorage)


@contextmanager
def _remote(remote: Optional[str]) -> Iterator[str]:
    remote = remote or os.environ.get("MINARI_REMOTE")
    if not remote:
        raise DatasetError(
            "No remote given: pass --remote file:///path/to/mirror (a local folder or share) or "
            "hf://<organisation> (needs `pip install 'bitr-bench[hf]'`), or set MINARI_REMOTE."
        )
    scheme = remote.split("://", 1)[0]
    if "://" not in remote or scheme not in minari_remotes:
        raise DatasetError(f"Unknown remote {remote!r}: use file://<folder> or hf://<organisation>.")
    old = os.environ.get("MINARI_REMOTE")
    os.environ["MINARI_REMOTE"] = remote
    try:
        yield remote
    finally:
        if old is None:
            del os.environ["MINARI_REMOTE"]
        else:
            os.environ["MINARI_REMOTE"] = old


def publish(dataset_id: str, remote: Optional[str] = None, token: Optional[str] = None) -> None:
    """Upload a verified local dataset; refuses to overwrite one that the remote has."""
    import minari

    problems = verify(dataset_id)
    if problems:
        raise DatasetError(f"Not publishing {dataset_id}: " + " ".join(problems))
    with _remote(remote) as name:
        if dataset_id in minari.list_remote_datasets(prefix=dataset_id):
            raise DatasetError(
                f"{name} already has {dataset_id}; datasets are immutable: bump the recipe's "
                "version to publish a changed dataset."
            )
        minari.upload_dataset(dataset_id, token)


def download(dataset_id: str, remote: Optional[str] = None, force: bool = False) -> Path:
    """Download, verify, then move into the local Minari root; returns the dataset's folder."""
    import minari

    if dataset_path(dataset_id).exists() and not force:
        raise DatasetError(
            f"{dataset_id} is already at {dataset_path(dataset_id)}; pass --force to download it again."
        )
    scratch = Path(tempfile.mkdtemp(prefix=".bitr-download-", dir=datasets_root()))
    try:
        with _remote(remote) as name, minari_root_at(scratch), warnings.catch_warnings():
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
            problems = verify(dataset_id)
            if problems:
                raise DatasetError(f"Downloaded {dataset_id} from {name}, but: " + " ".join(problems))
        return install(scratch, dataset_id)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
