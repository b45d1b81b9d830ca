"""Evaluation suites: which (env, split, protocol) units are run, and how many of everything.

Everything that decides a score is fixed here, not by the submitter: the tasks (every task of
the split), the seeds, the context size, the episodes. A suite's hash goes into every result,
so results of different definitions never meet on the leaderboard.

Protocols (PROTOCOL.md):
- `offline-iid`: the agent gets context transitions of the task collected by the `iid`
  behaviour pool (`<split>-iid-<profile>` dataset), then plays `episodes` scored episodes.
- `offline-ood`: the same with context from the held-out `ood` pool (`<split>-ood-<profile>`).
- `online`: no context; the agent plays `explore_episodes` episodes and sees every transition
  (`observe`), then `episodes` scored episodes. Reported: the first episode's return and the
  scored episodes' return (post-adaptation).

Normalised score per task: 100 * (return - random) / (expert - random), with the reference
returns recorded in the datasets of the split.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from bitr_envs.datasets.recipes import env_slug

PROTOCOLS = ("offline-iid", "offline-ood", "online")


@dataclass(frozen=True)
class Unit:
    env_id: str
    split: str
    protocol: str
    profile: str  # size profile of the context datasets
    context_episodes: int  # whole episodes of context, drawn from the task's data
    episodes: int  # scored episodes per task and seed
    explore_episodes: int  # online only: episodes before the scored ones

    @property
    def unit_id(self) -> str:
        return f"{env_slug(self.env_id)}/{self.split}/{self.protocol}"

    @property
    def context_dataset(self) -> str | None:
        if self.protocol == "online":
            return None
        pool = self.protocol.split("-")[1]
        return f"bitr/{env_slug(self.env_id)}/{self.split}-{pool}-{self.profile}-v0"

    @property
    def reference_dataset(self) -> str:
        """The dataset whose reference returns normalise this unit's scores."""
        return f"bitr/{env_slug(self.env_id)}/{self.split}-iid-{self.profile}-v0"


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    seeds: tuple[int, ...]
    units: tuple[Unit, ...]
    episode_time_limit_s: float = 120.0  # an agent slower than this on one episode has hung
    # how episode start states are drawn (worker.start_seed); part of the fingerprint, so that
    # results of another scheme are never compared with these. 2: shared across protocols.
    seeding: int = 2
    # limits of the agent's sandboxed process per unit (bitr_eval.sandbox): address space, and
    # CPU seconds for loading plus per episode played. They bound an agent, they do not score
    # it: not part of the fingerprint.
    agent_memory_bytes: int = 4 * 2**30
    agent_cpu_seconds: float = 300.0
    agent_cpu_seconds_per_episode: float = 60.0

    def fingerprint(self) -> str:
        limits = ("agent_memory_bytes", "agent_cpu_seconds", "agent_cpu_seconds_per_episode")
        payload = json.dumps({k: v for k, v in asdict(self).items() if k not in limits}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    @property
    def datasets(self) -> list[str]:
        """Every dataset the suite reads (contexts and references), for `bitr datasets build`."""
        ids = []
        for unit in self.units:
            for dataset_id in (unit.context_dataset, unit.reference_dataset):
                if dataset_id and dataset_id not in ids:
                    ids.append(dataset_id)
        return ids


def _units(env_ids, split, profile, context_episodes, episodes, explore_episodes):
    return tuple(
        Unit(env_id, split, protocol, profile, context_episodes[env_id], episodes, explore_episodes)
        for env_id in env_ids
        for protocol in PROTOCOLS
    )


LITE_ENVS = ("bitr/PointRobotSparse-v0", "bitr/CheetahVel-v0", "bitr/CheetahVelSparse-v0", "bitr/ReachSparse-v0")
FULL_ENVS = (
    "bitr/PointRobot-v0", "bitr/PointRobotSparse-v0", "bitr/CheetahVel-v0", "bitr/CheetahVelSparse-v0",
    "bitr/CheetahDir-v0", "bitr/AntDir-v0", "bitr/HopperParam-v0", "bitr/HopperParamSparse-v0",
    "bitr/WalkerParam-v0", "bitr/WalkerParamSparse-v0", "bitr/Reach-v0", "bitr/ReachSparse-v0",
    "bitr/Push-v0", "bitr/PushSparse-v0",
)
# Point-Robot episodes are 20 steps: 5 of them give 100 context transitions; one episode of the
# 200- and 500-step families gives 200 and 500.
CONTEXT_EPISODES = {env_id: (5 if "PointRobot" in env_id else 1) for env_id in FULL_ENVS}

SUITES = {
    "tiny": Suite(
        name="tiny",
        description="For tests: Point-Robot-Sparse on tiny datasets, 1 seed.",
        seeds=(0,),
        units=_units(["bitr/PointRobotSparse-v0"], "test", "tiny", CONTEXT_EPISODES, 1, 1),
    ),
    "quick": Suite(
        name="quick",
        description="The README's main job: Point-Robot-Sparse on lite datasets, test tasks, 3 seeds.",
        seeds=(0, 1, 2),
        units=_units(["bitr/PointRobotSparse-v0"], "test", "lite", CONTEXT_EPISODES, 2, 2),
    ),
    "lite": Suite(
        name="lite",
        description="CPU suite: Point-Robot-Sparse, Cheetah-Vel (dense and sparse), Reach-Sparse; "
        "lite datasets; test tasks; 3 seeds.",
        seeds=(0, 1, 2),
        units=_units(LITE_ENVS, "test", "lite", CONTEXT_EPISODES, 2, 2),
    ),
    "full": Suite(
        name="full",
        description="Every family, test tasks and (where defined) ood tasks; full datasets; 5 seeds.",
        seeds=(0, 1, 2, 3, 4),
        units=_units(FULL_ENVS, "test", "full", CONTEXT_EPISODES, 3, 3)
        + _units([e for e in FULL_ENVS if e not in ("bitr/CheetahDir-v0", "bitr/AntDir-v0")], "ood", "full",
                 CONTEXT_EPISODES, 3, 3),
    ),
}


def suite(name: str) -> Suite:
    if name not in SUITES:
        raise ValueError(f"Unknown suite {name!r}: use one of {list(SUITES)}.")
    return SUITES[name]
