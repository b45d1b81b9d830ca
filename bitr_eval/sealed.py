"""Sealed evaluation: test tasks, their context data and the start states drawn from a secret key.

On the public splits a submission can know the test tasks in advance (they are a fixed list in
the package) and can rebuild the context datasets (deterministic builds from shipped recipe
cards), so it could recognise a task instead of inferring it. Under a key (`bitr evaluate
--sealed KEYFILE`, the key a maintainer's secret file):

- each family's tasks of a split are a fresh draw from the same distributions as the public
  split (`MetaTaskMixin.sealed_tasks`), one draw per family and key;
- the context and reference datasets are built for those tasks by the same recipe cards, into
  a Minari root of the key's own in the user's cache folder, which the sandboxed agent cannot
  see (sealed runs need bubblewrap);
- every episode's start state comes from a seed salted with the key.

The result records the key's SHA-256, never the key nor anything drawn from it; a re-play with
the same key reproduces the result. Cheetah-Dir has two tasks only (forward and backward), so
sealing changes its start states and context episodes, not its tasks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from bitr_eval.check_cache import cache_root

MIN_KEY_BYTES = 16
MAKE_KEY = "make one with `head -c 32 /dev/urandom > sealed.key` and keep it secret"


@dataclass(frozen=True)
class Seal:
    """What a key decides. `secret` never leaves the evaluator's process tree."""

    secret: bytes

    @property
    def key_sha256(self) -> str:
        """What a result records: names the key, reveals nothing drawn from it."""
        return hashlib.sha256(self.secret).hexdigest()

    def _number(self, purpose: str) -> int:
        digest = hmac.new(self.secret, purpose.encode(), hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "big") >> 1  # a non-negative int64, as NumPy seeds take

    def task_draw(self, env_id: str) -> int:
        """The seed of `env_id`'s secret task draw."""
        return self._number(f"tasks/{env_id}")

    @property
    def start_salt(self) -> int:
        """Mixed into every episode's start seed."""
        return self._number("start-states")

    @property
    def root(self) -> Path:
        """The Minari root of this key's datasets, kept between runs."""
        return cache_root() / "sealed" / self.key_sha256[:16]

    def unit_sealing(self, env_id: str) -> dict:
        """What a unit's worker needs: the env's task draw and the start-state salt."""
        return {"task_draw": self.task_draw(env_id), "start_salt": self.start_salt}


def read_key(path: str | Path) -> Seal:
    """The seal of a key file, or a ValueError saying what is wrong and how to make one."""
    path = Path(path)
    try:
        secret = path.read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read the sealing key {path}: {err.strerror or err}; {MAKE_KEY}") from None
    if len(secret) < MIN_KEY_BYTES:
        raise ValueError(f"the sealing key {path} holds {len(secret)} bytes, fewer than {MIN_KEY_BYTES}: a short "
                         f"key can be guessed; {MAKE_KEY}")
    return Seal(secret)


def prepare(seal: Seal, dataset_ids: dict[str, str], jobs: int = 1, echo=print) -> None:
    """Build the sealed versions of `dataset_ids` (id -> env id) that the key's root lacks: the
    same recipes on the key's tasks. A build is a few minutes per family at the lite profile;
    later runs with the key reuse it."""
    from bitr_envs.datasets import shards
    from bitr_envs.datasets.loader import read_metadata
    from bitr_envs.datasets.recipes import recipe
    from bitr_envs.datasets.storage import exists, minari_root_at

    with minari_root_at(seal.root):
        missing = [d for d in dataset_ids if not exists(d)]
        for i, dataset_id in enumerate(missing, 1):
            echo(f"sealed data {i}/{len(missing)}: building {dataset_id} on the key's tasks")
            shards.build(dataset_id, jobs=jobs, force=False, task_draw=seal.task_draw(dataset_ids[dataset_id]))
        for dataset_id, env_id in dataset_ids.items():  # each one this key's: the root is shared by name only
            wanted = dataclasses.replace(recipe(dataset_id), task_draw=seal.task_draw(env_id)).fingerprint()
            if read_metadata(dataset_id).get("bitr_recipe_sha256") != wanted:
                raise ValueError(f"{seal.root}: {dataset_id} was not built on this key's tasks; remove it and "
                                 "run again to rebuild it")
