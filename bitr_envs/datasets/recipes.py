"""Dataset recipes: the TOML cards in `bitr_envs/datasets/cards/`, installed with the package.

A card describes one family's behaviour policies, its `iid` and `ood` behaviour pools and its
size profiles; every (env id, split, pool, profile) it allows is one dataset, with the id

    bitr/<env>/<split>-<pool>-<profile>-v0      e.g. bitr/point-robot-sparse/train-iid-lite-v0

`<env>` is the env id in kebab case without the version. The `train-iid` datasets are the
training data; the `test-*` and `ood-*` ones give the evaluator its offline context.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from bitr_envs.registry import ENVS, entry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DATASET_VERSION = 0
POOLS = ("iid", "ood")
_ID = re.compile(r"^bitr/(?P<env>[a-z0-9-]+)/(?P<split>[a-z]+)-(?P<pool>[a-z]+)-(?P<profile>[a-z]+)-v(?P<version>\d+)$")


def recipes_dir() -> Path:
    """Where the cards are: $BITR_RECIPES, else the `cards/` folder installed with this package."""
    if "BITR_RECIPES" in os.environ:
        return Path(os.environ["BITR_RECIPES"])
    return Path(str(importlib.resources.files("bitr_envs.datasets") / "cards"))


def env_slug(env_id: str) -> str:
    """bitr/PointRobotSparse-v0 -> point-robot-sparse"""
    name = env_id.split("/", 1)[1].rsplit("-v", 1)[0]
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


@dataclass(frozen=True)
class Recipe:
    """One dataset: a card plus the env, split, pool and profile it picks."""

    dataset_id: str
    env_id: str
    split: str
    pool: str
    profile: str
    card: dict[str, Any]
    card_path: Path

    @property
    def episodes_per_task(self) -> int:
        return int(self.card["profiles"][self.profile]["episodes_per_task"])

    @property
    def shares(self) -> dict[str, float]:
        return dict(self.card["pools"][self.pool])

    @property
    def behaviour_names(self) -> list[str]:
        """Every behaviour of the family; a behaviour's label is its index here."""
        return list(self.card["behaviours"])

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
        """A hash of everything that determines the arrays: same hash, same dataset."""
        payload = {
            "card": self.card,
            "dataset_id": self.dataset_id,
            "env_id": self.env_id,
            "split": self.split,
            "pool": self.pool,
            "profile": self.profile,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _check_card(card: dict, path: Path) -> None:
    def fail(problem: str):
        raise ValueError(f"Recipe card {path}: {problem}")

    for key in ("envs", "seed", "expert", "behaviours", "pools", "profiles"):
        if key not in card:
            fail(f"missing the key {key!r}")
    for env_id in card["envs"]:
        if env_id not in ENVS:
            fail(f"unknown env id {env_id!r}")
    behaviours = card["behaviours"]
    if card["expert"] not in behaviours or "random" not in behaviours:
        fail("needs a 'random' behaviour and names its expert among the behaviours")
    if set(card["pools"]) != set(POOLS):
        fail(f"needs exactly the pools {POOLS}")
    used = {pool: set(shares) for pool, shares in card["pools"].items()}
    for pool, names in used.items():
        if names - set(behaviours):
            fail(f"pool {pool!r} names unknown behaviours {sorted(names - set(behaviours))}")
    if used["iid"] & used["ood"]:
        fail(f"behaviours {sorted(used['iid'] & used['ood'])} are in both pools")


@cache
def _cards(directory: Path) -> dict[str, tuple[dict, Path]]:
    """env id -> (card, path) for every card in `directory`."""
    cards = {}
    for path in sorted(directory.glob("*.toml")):
        with open(path, "rb") as f:
            card = tomllib.load(f)
        _check_card(card, path)
        for env_id in card["envs"]:
            cards[env_id] = (card, path)
    return cards


def card(env_id: str) -> dict[str, Any]:
    """The recipe card of an env id (its behaviours, pools and profiles)."""
    cards = _cards(recipes_dir())
    if env_id not in cards:
        raise ValueError(f"No recipe card in {recipes_dir()} covers {env_id!r}.")
    return cards[env_id][0]


def all_recipes() -> list[Recipe]:
    """Every dataset the cards define, in a stable order."""
    recipes = []
    for env_id, (card, path) in _cards(recipes_dir()).items():
        for split in entry(env_id).env_class.splits():
            for pool in POOLS:
                for profile in card["profiles"]:
                    dataset_id = f"bitr/{env_slug(env_id)}/{split}-{pool}-{profile}-v{DATASET_VERSION}"
                    recipes.append(Recipe(dataset_id, env_id, split, pool, profile, card, path))
    return recipes


def recipe(dataset_id: str) -> Recipe:
    """The recipe of `dataset_id`, or a ValueError saying how such ids are formed."""
    for candidate in all_recipes():
        if candidate.dataset_id == dataset_id:
            return candidate
    match = _ID.match(dataset_id)
    hint = (
        "Dataset ids look like bitr/<env>/<split>-<pool>-<profile>-v0, "
        "e.g. bitr/point-robot-sparse/train-iid-lite-v0; `bitr datasets list` shows them all."
    )
    if match is None:
        raise ValueError(f"{dataset_id!r} is not a BITR dataset id. {hint}")
    raise ValueError(f"No recipe defines {dataset_id!r}. {hint}")
