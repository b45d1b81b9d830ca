"""Dataset recipes: the TOML cards in `bitr_envs/datasets/cards/`, installed with the package.

A card describes one family's behaviour policies, its three behaviour pools and its size
profiles; every (env id, split, pool, profile) it allows is one dataset (`ids.DatasetId`):

- `iid`: the training pool. The `train-iid` datasets are the training data; `test-iid` and
  `ood-iid` give in-distribution context.
- `ood`: behaviours never in the training data that pursue the right task (a held-out
  checkpoint, heavy noise, another route): the unseen-behaviour context.
- `other`: behaviours of the family given *another* task of the split than the one the env
  runs (`pursue = "another-task"`): the out-of-distribution context of the field, where the
  states and actions of a context point at the wrong task and only the rewards and dynamics
  point at the right one. A card is checked when it is read (`RecipeCard.load`): a mistake in one is
an error naming the file and the key, never a wrong dataset.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.resources
import itertools
import json
import os
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Optional

from bitr_envs.datasets.ids import FORMAT_HINT, OTHER_TASK_POOL, POOLS, DatasetId, env_slug
from bitr_envs.registry import ENVS, entry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


PURSUITS = ("own-task", "another-task")


def recipes_dir() -> Path:
    """Where the cards are: $BITR_RECIPES, else the `cards/` folder installed with this package."""
    if "BITR_RECIPES" in os.environ:
        return Path(os.environ["BITR_RECIPES"])
    return Path(str(importlib.resources.files("bitr_envs.datasets") / "cards"))


@dataclass(frozen=True)
class BehaviourSpec:
    """A base policy (`behaviours.base_policy` names the kinds) plus exploration noise."""

    policy: str
    noise: float = 0.0  # Gaussian std, as a fraction of the action range's half-width
    epsilon: float = 0.0  # probability of a uniform random action at each step
    pursue: str = "own-task"  # or "another-task": the policy is given another task of the split

    @property
    def pursues_another_task(self) -> bool:
        return self.pursue == "another-task"


@dataclass(frozen=True)
class RecipeCard:
    envs: tuple[str, ...]
    seed: int
    expert: str  # the behaviour that scores 100 on the normalised scale (random scores 0)
    reference_episodes: int  # per task and reference behaviour, for the normalised score
    behaviours: dict[str, BehaviourSpec]  # in label order: a behaviour's label is its index
    pools: dict[str, dict[str, float]]  # pool -> behaviour -> share of each task's episodes
    profiles: dict[str, int]  # profile -> episodes per task
    path: Path
    raw: dict[str, Any]  # the TOML as read: what the recipe fingerprint hashes

    @classmethod
    def load(cls, path: Path) -> RecipeCard:
        with open(path, "rb") as f:
            raw = tomllib.load(f)

        def fail(problem: str):
            raise ValueError(f"Recipe card {path}: {problem}")

        known = {"envs", "seed", "expert", "reference_episodes", "behaviours", "pools", "profiles"}
        missing = sorted(known - {"reference_episodes"} - set(raw))
        if missing:
            fail(f"missing the key(s) {missing}")
        if set(raw) - known:
            fail(f"unknown key(s) {sorted(set(raw) - known)}; a card has {sorted(known)}")
        unknown_envs = [e for e in raw["envs"] if e not in ENVS]
        if unknown_envs:
            fail(f"unknown env id(s) {unknown_envs}")
        try:
            behaviours = {name: BehaviourSpec(**spec) for name, spec in raw["behaviours"].items()}
            wrong = {name: spec.pursue for name, spec in behaviours.items() if spec.pursue not in PURSUITS}
            if wrong:
                fail(f"behaviours {wrong}: pursue is one of {list(PURSUITS)}")
            profiles = {name: int(spec["episodes_per_task"]) for name, spec in raw["profiles"].items()}
        except (TypeError, KeyError) as err:
            fail(f"a behaviour takes policy, noise and epsilon; a profile takes episodes_per_task ({err})")
        if raw["expert"] not in behaviours or "random" not in behaviours:
            fail("needs a 'random' behaviour and names its expert among the behaviours")
        pools = {pool: dict(shares) for pool, shares in raw["pools"].items()}
        if set(pools) != set(POOLS):
            fail(f"needs exactly the pools {POOLS}")
        for pool, shares in pools.items():
            if set(shares) - set(behaviours):
                fail(f"pool {pool!r} names unknown behaviours {sorted(set(shares) - set(behaviours))}")
            misplaced = sorted(b for b in shares if behaviours[b].pursues_another_task != (pool == OTHER_TASK_POOL))
            if misplaced:
                fail(f"pool {pool!r}: behaviours {misplaced} are misplaced: the {OTHER_TASK_POOL!r} pool holds "
                     "exactly the behaviours with pursue = \"another-task\"")
        for a, b in itertools.combinations(POOLS, 2):
            if set(pools[a]) & set(pools[b]):
                fail(f"behaviours {sorted(set(pools[a]) & set(pools[b]))} are in both pools {a!r} and {b!r}")
        labels = [spec.pursues_another_task for spec in behaviours.values()]
        if labels != sorted(labels):
            fail("the behaviours with pursue = \"another-task\" come after all the others (a behaviour's label "
                 "is its position, and the other pools' datasets do not list them)")
        return cls(tuple(raw["envs"]), int(raw["seed"]), raw["expert"], int(raw.get("reference_episodes", 4)),
                   behaviours, pools, profiles, path, raw)


@dataclass(frozen=True)
class Recipe:
    """One dataset: a card plus the env, split, pool and profile it picks."""

    dataset_id: str
    env_id: str
    split: str
    pool: str
    profile: str
    card: RecipeCard
    task_draw: Optional[int] = None  # a sealed evaluation's secret draw of the split's tasks (None: public)

    @property
    def episodes_per_task(self) -> int:
        return self.card.profiles[self.profile]

    @property
    def num_tasks(self) -> int:
        """The tasks of the recipe's split."""
        return entry(self.env_id).num_tasks(self.split)

    @property
    def horizon(self) -> int:
        """The env's episode length (episodes may end sooner)."""
        return entry(self.env_id).horizon

    @property
    def shares(self) -> dict[str, float]:
        return self.card.pools[self.pool]

    @property
    def behaviour_names(self) -> list[str]:
        """The behaviours of the family this dataset's labels index: every one for the other-task
        pool, else those that pursue their own task (the others come last in a card, so a
        behaviour has the same label in every dataset of its family)."""
        return [name for name, spec in self.card.behaviours.items()
                if self.pool == OTHER_TASK_POOL or not spec.pursues_another_task]

    def episode_counts(self) -> dict[str, int]:
        """Episodes per task for each behaviour of the pool (largest-remainder rounding)."""
        total = self.episodes_per_task
        weights = self.shares
        norm = sum(weights.values())
        exact = {name: total * w / norm for name, w in weights.items()}
        counts = {name: int(x) for name, x in exact.items()}
        by_remainder = sorted(exact, key=lambda n: exact[n] - counts[n], reverse=True)
        for name in by_remainder[: total - sum(counts.values())]:
            counts[name] += 1
        return counts

    def fingerprint(self) -> str:
        """A hash of everything that determines the arrays: same hash, same dataset. The card's
        other-task pool and its behaviours cannot change the other pools' datasets, and they
        are left out of those datasets' hash: adding them kept every earlier dataset's bytes."""
        card = self.card.raw
        if self.pool != OTHER_TASK_POOL:
            others = {name for name, spec in self.card.behaviours.items() if spec.pursues_another_task}
            card = {**card, "behaviours": {k: v for k, v in card["behaviours"].items() if k not in others},
                    "pools": {k: v for k, v in card["pools"].items() if k != OTHER_TASK_POOL}}
        payload = {
            "card": card,
            "dataset_id": self.dataset_id,
            "env_id": self.env_id,
            "split": self.split,
            "pool": self.pool,
            "profile": self.profile,
        }
        if self.task_draw is not None:  # a sealed dataset: other tasks, other arrays
            payload["task_draw"] = self.task_draw
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@cache
def _cards(directory: Path) -> dict[str, RecipeCard]:
    """env id -> card, for every card in `directory`."""
    cards = {}
    for path in sorted(directory.glob("*.toml")):
        card = RecipeCard.load(path)
        for env_id in card.envs:
            cards[env_id] = card
    return cards


def card(env_id: str) -> RecipeCard:
    """The recipe card of an env id (its behaviours, pools and profiles)."""
    cards = _cards(recipes_dir())
    if env_id not in cards:
        raise ValueError(f"No recipe card in {recipes_dir()} covers {env_id!r}.")
    return cards[env_id]


def _recipes_of(env_id: str, family: RecipeCard) -> list[Recipe]:
    return [
        Recipe(str(DatasetId.of(env_id, split, pool, profile)), env_id, split, pool, profile, family)
        for split in entry(env_id).env_class.splits()
        for pool in POOLS
        for profile in family.profiles
    ]


def all_recipes(envs: str = "*") -> list[Recipe]:
    """Every dataset the cards define, in a stable order; `envs`, a shell pattern of env slugs
    (`point-robot-sparse`, `cheetah-*`), keeps only those families: listing a family draws its
    tasks, and Meta-World's take seconds."""
    return [r for env_id, family in _cards(recipes_dir()).items() if fnmatch.fnmatchcase(env_slug(env_id), envs)
            for r in _recipes_of(env_id, family)]


def recipe(dataset_id: str) -> Recipe:
    """The recipe of `dataset_id`, or a ValueError saying how such ids are formed."""
    env = DatasetId.parse(dataset_id).env  # a malformed id: say how ids are formed
    for candidate in all_recipes(envs=env):
        if candidate.dataset_id == dataset_id:
            return candidate
    raise ValueError(f"No recipe defines {dataset_id!r}. {FORMAT_HINT}")
