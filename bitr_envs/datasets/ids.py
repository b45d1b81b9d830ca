"""Dataset ids, parsed and formatted in one place.

    bitr/<env>/<split>-<pool>-<profile>-v<version>     e.g. bitr/point-robot-sparse/train-iid-lite-v0

`<env>` is the env id in kebab case without its version (`bitr/PointRobotSparse-v0` ->
`point-robot-sparse`); `<split>` the env's task split; `<pool>` the behaviour pool (`iid` trains
and gives in-distribution context, `ood` gives context from unseen behaviours of the right task,
`other` from behaviours that pursue another task); `<profile>` the size.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

DATASET_VERSION = 0
OTHER_TASK_POOL = "other"  # its behaviours are given another task of the split than the env runs
POOLS = ("iid", "ood", OTHER_TASK_POOL)
_ID = re.compile(r"^bitr/(?P<env>[a-z0-9-]+)/(?P<split>[a-z]+)-(?P<pool>[a-z]+)-(?P<profile>[a-z]+)-v(?P<version>\d+)$")
FORMAT_HINT = ("Dataset ids look like bitr/<env>/<split>-<pool>-<profile>-v0, e.g. "
               "bitr/point-robot-sparse/train-iid-lite-v0; `bitr datasets list` shows them all.")


def env_slug(env_id: str) -> str:
    """bitr/PointRobotSparse-v0 -> point-robot-sparse"""
    name = env_id.split("/", 1)[1].rsplit("-v", 1)[0]
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


@dataclass(frozen=True)
class DatasetId:
    env: str  # the env's slug, e.g. point-robot-sparse
    split: str
    pool: str
    profile: str
    version: int = DATASET_VERSION

    @classmethod
    def parse(cls, text: str) -> DatasetId:
        match = _ID.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a BITR dataset id. {FORMAT_HINT}")
        return cls(match["env"], match["split"], match["pool"], match["profile"], int(match["version"]))

    @classmethod
    def of(cls, env_id: str, split: str, pool: str, profile: str) -> DatasetId:
        """The id of the dataset of `env_id` (a registered id such as bitr/CheetahVel-v0)."""
        return cls(env_slug(env_id), split, pool, profile)

    def replace(self, **changes) -> DatasetId:
        """The same id with some parts changed, e.g. `.replace(split="test")`."""
        return dataclasses.replace(self, **changes)

    def __str__(self) -> str:
        return f"bitr/{self.env}/{self.split}-{self.pool}-{self.profile}-v{self.version}"
