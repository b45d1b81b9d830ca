"""Evaluation suites: which (env, split, protocol) units are run, and how many of everything.

Everything that decides a score is fixed here, not by the submitter: the tasks (every task of
the split), the seeds, the context size, the episodes. A suite's hash goes into every result,
so results of different definitions never meet on the leaderboard.

Protocols (docs/evaluation.md), each on the tasks of a unit's split (`test`: unseen tasks of
the training distribution; `ood`: tasks outside it):
- `offline-iid`: the agent gets context transitions of the task collected by the training
  pool (`<split>-iid-<profile>` dataset), then plays `episodes` scored episodes.
- `offline-other-task`: the same with context from behaviours that pursue another task of the
  split while acting in this one (`<split>-other-<profile>`): the field's out-of-distribution
  context, and the board's context shift.
- `offline-unseen`: context from behaviours never in the training data that pursue the right
  task (`<split>-ood-<profile>`): a milder shift.
- `online`: no context; the agent plays `explore_episodes` episodes and sees every transition
  (`observe`), then `episodes` scored episodes. Reported: the first episode's return and the
  scored episodes' return (post-adaptation).
- `<offline protocol>:<behaviour>` (the `-behaviours` suites): the same as the plain offline
  protocol, with context drawn from one behaviour policy of its pool at a time
  (`context_rows`), for a per-behaviour breakdown.

The suites without a version suffix are protocol v0 (test tasks only; `offline-ood` was the
unseen-behaviour context, today's `offline-unseen`): the board's filed runs were scored on them,
and they go when those runs are scored again on the `-v1` suites.

Normalised score per task: 100 * (return - random) / (expert - random), with the reference
returns recorded in the datasets of the split.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from bitr_envs.datasets.ids import DatasetId, env_slug
from bitr_envs.registry import ENVS

PROTOCOLS = ("offline-iid", "offline-other-task", "offline-unseen", "online")  # variants name one of them
CONTEXT_POOLS = {"offline-iid": "iid", "offline-other-task": "other", "offline-unseen": "ood", "online": None}
V0_PROTOCOLS = ("offline-iid", "offline-ood", "online")  # the v0 suites'; offline-ood is offline-unseen


@dataclass(frozen=True)
class Protocol:
    """A protocol name read once: `offline-ood:expert` -> base offline-ood, pool ood, behaviour expert."""

    name: str
    base: str  # one of PROTOCOLS
    pool: Optional[str]  # behaviour pool of the context dataset (`CONTEXT_POOLS`); None: no context
    behaviour: Optional[str] = None  # context from this behaviour of the pool only

    @property
    def takes_context(self) -> bool:
        return self.pool is not None

    @classmethod
    def parse(cls, name: str) -> Protocol:
        base, _, behaviour = name.partition(":")
        pools = {**CONTEXT_POOLS, "offline-ood": "ood"}
        if base not in pools or (behaviour and base == "online") or (":" in name and not behaviour):
            raise ValueError(f"Unknown protocol {name!r}: use one of {list(PROTOCOLS)}, or "
                             f"<offline protocol>:<behaviour>.")
        return cls(name, base, pools[base], behaviour or None)


def dataset_id(env_id: str, split: str, pool: str, profile: str) -> str:
    """The id of a BITR dataset; the one place the evaluator builds one."""
    return str(DatasetId.of(env_id, split, pool, profile))


@dataclass(frozen=True)
class Unit:
    env_id: str
    split: str
    protocol: str  # a Protocol's name (`kind` reads it)
    profile: str  # size profile of the context datasets
    context_episodes: int  # whole episodes of context, drawn from the task's data
    episodes: int  # scored episodes per task and seed
    explore_episodes: int  # online only: episodes before the scored ones

    @property
    def unit_id(self) -> str:
        return f"{env_slug(self.env_id)}/{self.split}/{self.protocol}"

    @property
    def kind(self) -> Protocol:
        return Protocol.parse(self.protocol)

    @property
    def context_dataset(self) -> str | None:
        pool = self.kind.pool
        return None if pool is None else dataset_id(self.env_id, self.split, pool, self.profile)

    @property
    def reference_dataset(self) -> str:
        """The dataset whose reference returns normalise this unit's scores."""
        return dataset_id(self.env_id, self.split, "iid", self.profile)


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
    # limits of the agent's sandboxed process per unit (bitr_eval.sandbox): address space, CPU
    # seconds for loading plus per episode played, and processes (threads included). They bound
    # an agent, they do not score it: not part of the fingerprint.
    agent_memory_bytes: int = 4 * 2**30
    agent_cpu_seconds: float = 300.0
    agent_cpu_seconds_per_episode: float = 60.0
    agent_processes: int = 64

    def fingerprint(self) -> str:
        limits = ("agent_memory_bytes", "agent_cpu_seconds", "agent_cpu_seconds_per_episode", "agent_processes")
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

    @property
    def protocols(self) -> list[str]:
        """The protocol names of the suite's units, in definition order."""
        return list(dict.fromkeys(u.protocol for u in self.units))


def context_rows(task_data, behaviour: Optional[int], n_episodes: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices of `n_episodes` whole episodes of one task's data, drawn uniformly without
    replacement among the episodes of behaviour label `behaviour` (None: among all of them).
    With `behaviour=None` the draw is the plain offline protocols' one (the same rng calls)."""
    ends = np.flatnonzero(task_data.terminals | task_data.timeouts) + 1
    starts = np.r_[0, ends[:-1]]
    eligible = np.arange(len(ends))
    if behaviour is not None:
        eligible = eligible[np.asarray(task_data.behaviours)[starts] == behaviour]
        if len(eligible) == 0:
            raise ValueError(f"the task's data has no episode of behaviour label {behaviour}")
    chosen = eligible[np.sort(rng.choice(len(eligible), size=min(n_episodes, len(eligible)), replace=False))]
    return np.concatenate([np.arange(starts[i], ends[i]) for i in chosen])


def unit_context(unit: Unit, data, task: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The context a unit gives the agent for `task` of its context dataset `data` (an
    OfflineData): whole episodes, from the unit's behaviour only when its protocol names one,
    without the behaviour labels and pursued tasks (the agent must not know who collected its
    context, nor what that behaviour was after)."""
    behaviour = unit.kind.behaviour
    label = None if behaviour is None else data.behaviour_names.index(behaviour)
    transitions = data.tasks[task].take(context_rows(data.tasks[task], label, unit.context_episodes, rng))
    return {key: transitions[key] for key in CONTEXT_KEYS}


# what an agent's context holds: transitions, nothing about who collected them
CONTEXT_KEYS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")


# The envs, from the registry -----------------------------------------------------------------

LITE_ENVS = ("bitr/PointRobotSparse-v0", "bitr/CheetahVel-v0", "bitr/CheetahVelSparse-v0", "bitr/ReachSparse-v0")
LITE_CORE_ENVS = LITE_ENVS[:2]  # where every method and BITR's ablations are compared first
# the method paper's and the peers' other settings, each on the board once calibrated (docs/agent.md)
LITE_MORE_ENVS = ("bitr/AntDir-v0", "bitr/CheetahDir-v0", "bitr/HopperParam-v0", "bitr/HopperParamSparse-v0",
                  "bitr/WalkerParam-v0", "bitr/WalkerParamSparse-v0")
FULL_ENVS = tuple(ENVS)  # every registered id


def context_episodes(env_id: str) -> int:
    """Whole context episodes: about 100 transitions, at least one episode (Point-Robot: 5 x 20
    steps; the 200- and 500-step families: one episode)."""
    return max(1, 100 // ENVS[env_id].horizon)


def has_split(env_id: str, split: str) -> bool:
    return split in ENVS[env_id].env_class.splits()


def _units(env_ids, split, profile, episodes, explore_episodes, protocols=V0_PROTOCOLS):
    return tuple(
        Unit(env_id, split, protocol, profile, context_episodes(env_id), episodes, explore_episodes)
        for env_id in env_ids
        for protocol in protocols
    )


def _splits_units(env_ids, profile, episodes, explore_episodes, protocols=lambda env_id: PROTOCOLS):
    """A v1 suite's units: per family its test tasks, then its ood tasks where it defines them."""
    return tuple(
        Unit(env_id, split, protocol, profile, context_episodes(env_id), episodes, explore_episodes)
        for env_id in env_ids
        for split in ("test", "ood") if has_split(env_id, split)
        for protocol in protocols(env_id)
    )


def _behaviour_protocols(env_id: str, protocols) -> list[str]:
    """<protocol>:<b> for every behaviour of each offline protocol's pool, in the protocols' order."""
    from bitr_envs.datasets.recipes import card

    pools = card(env_id).pools
    return [f"{p}:{b}" for p in protocols if Protocol.parse(p).takes_context for b in pools[Protocol.parse(p).pool]]


def _behaviours(name: str, of: str, env_ids) -> Suite:
    units = tuple(unit for env_id in env_ids
                  for unit in _units([env_id], "test", "lite", 2, 2,
                                     _behaviour_protocols(env_id, ("offline-iid", "offline-ood"))))
    return Suite(name=name,
                 description=f"The {of} suite's offline protocols, with context from one behaviour policy at "
                 "a time: the per-behaviour breakdown of offline-iid and offline-ood.",
                 seeds=(0, 1, 2), units=units)


def _behaviours_v1(name: str, of: str, env_ids) -> Suite:
    offline = [p for p in PROTOCOLS if CONTEXT_POOLS[p]]
    return Suite(name=name,
                 description=f"The {of} suite's offline protocols on test and ood tasks, with context from one "
                 "behaviour policy at a time: the context-shift curve, from the training pool's behaviours to "
                 "those that pursue another task.",
                 seeds=(0, 1, 2), units=_splits_units(env_ids, "lite", 2, 2,
                                                      lambda env_id: _behaviour_protocols(env_id, offline)))


class _Suites(Mapping):
    """name -> Suite, each built when first asked for: the names are known without importing every
    env family (the full suite asks each family which splits it defines)."""

    def __init__(self, makers: dict[str, Callable[[], Suite]]):
        self._makers, self._built = makers, {}

    def __getitem__(self, name: str) -> Suite:
        if name not in self._built:
            self._built[name] = self._makers[name]()
        return self._built[name]

    def __iter__(self):
        return iter(self._makers)

    def __len__(self) -> int:
        return len(self._makers)


SUITES: Mapping[str, Suite] = _Suites({
    "tiny": lambda: Suite(
        name="tiny",
        description="For tests: Point-Robot-Sparse on tiny datasets, 1 seed.",
        seeds=(0,),
        units=_units(["bitr/PointRobotSparse-v0"], "test", "tiny", 1, 1),
    ),
    "quick": lambda: Suite(
        name="quick",
        description="The README's main job: Point-Robot-Sparse on lite datasets, test tasks, 3 seeds.",
        seeds=(0, 1, 2),
        units=_units(["bitr/PointRobotSparse-v0"], "test", "lite", 2, 2),
    ),
    "lite": lambda: Suite(
        name="lite",
        description="CPU suite: Point-Robot-Sparse, Cheetah-Vel (dense and sparse), Reach-Sparse; "
        "lite datasets; test tasks; 3 seeds.",
        seeds=(0, 1, 2),
        units=_units(LITE_ENVS, "test", "lite", 2, 2),
    ),
    "lite-behaviours": lambda: _behaviours("lite-behaviours", "lite", LITE_ENVS),
    "lite-core": lambda: Suite(
        name="lite-core",
        description="The lite suite's first two families, Point-Robot-Sparse and Cheetah-Vel (the same "
        "units): where every method and BITR's ablations are compared first.",
        seeds=(0, 1, 2),
        units=_units(LITE_CORE_ENVS, "test", "lite", 2, 2),
    ),
    "lite-core-behaviours": lambda: _behaviours("lite-core-behaviours", "lite-core", LITE_CORE_ENVS),
    "tiny-v1": lambda: Suite(
        name="tiny-v1",
        description="For tests: Point-Robot-Sparse on tiny datasets, test and ood tasks, every protocol, 1 seed.",
        seeds=(0,),
        units=_splits_units(["bitr/PointRobotSparse-v0"], "tiny", 1, 1),
    ),
    "quick-v1": lambda: Suite(
        name="quick-v1",
        description="The README's main job: Point-Robot-Sparse on lite datasets, test and ood tasks, every "
        "protocol, 3 seeds.",
        seeds=(0, 1, 2),
        units=_splits_units(["bitr/PointRobotSparse-v0"], "lite", 2, 2),
    ),
    "lite-v1": lambda: Suite(
        name="lite-v1",
        description="CPU suite: Point-Robot-Sparse, Cheetah-Vel (dense and sparse), Reach-Sparse; lite datasets; "
        "test and ood tasks; context from the training pool, from behaviours that pursue another task and "
        "from unseen behaviours, and online; 3 seeds.",
        seeds=(0, 1, 2),
        units=_splits_units(LITE_ENVS, "lite", 2, 2),
    ),
    "lite-v1-behaviours": lambda: _behaviours_v1("lite-v1-behaviours", "lite-v1", LITE_ENVS),
    "lite-core-v1": lambda: Suite(
        name="lite-core-v1",
        description="The lite-v1 suite's first two families, Point-Robot-Sparse and Cheetah-Vel (the same units): "
        "where every method and BITR's ablations are compared first.",
        seeds=(0, 1, 2),
        units=_splits_units(LITE_CORE_ENVS, "lite", 2, 2),
    ),
    "lite-core-v1-behaviours": lambda: _behaviours_v1("lite-core-v1-behaviours", "lite-core-v1", LITE_CORE_ENVS),
    "lite-more-v1": lambda: Suite(
        name="lite-more-v1",
        description="The lite-v1 suite's companion: Ant-Dir, Cheetah-Dir, Hopper-Param and Walker-Param (dense and "
        "sparse); lite datasets; test and ood tasks where defined; every protocol; 3 seeds.",
        seeds=(0, 1, 2),
        units=_splits_units(LITE_MORE_ENVS, "lite", 2, 2),
    ),
    "lite-more-v1-calibration": lambda: Suite(
        name="lite-more-v1-calibration",
        description="The offline-iid units of lite-more-v1 (test and ood tasks): where a family is calibrated, by "
        "the task-given ceiling and the context-free floor, which ignore their context and so score the same "
        "under every offline protocol.",
        seeds=(0, 1, 2),
        units=_splits_units(LITE_MORE_ENVS, "lite", 2, 2, lambda env_id: ["offline-iid"]),
    ),
    "full-v1": lambda: Suite(
        name="full-v1",
        description="Every family, test tasks and (where defined) ood tasks, every protocol; full datasets; 5 seeds.",
        seeds=(0, 1, 2, 3, 4),
        units=_splits_units(FULL_ENVS, "full", 3, 3),
    ),
})


def suite(name: str) -> Suite:
    if name not in SUITES:
        raise ValueError(f"Unknown suite {name!r}: use one of {list(SUITES)}.")
    return SUITES[name]
