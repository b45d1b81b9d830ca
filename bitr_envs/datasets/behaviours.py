"""Behaviour policies: what collects the offline data, each with a label.

A behaviour is a base policy plus exploration noise, both named in a recipe card:

    expert = { policy = "point-robot:goal-seeker", noise = 0.1 }
    medium = { policy = "snapshot:policies/cheetah-vel/step_100000.npz", noise = 0.2 }

Base policies see the observation and the task's features (`EnvClass.task_features`): they are
oracles that know the task, which is what makes them good behaviour policies. Noise is applied
with one RNG per episode, so an episode's actions do not depend on what else is collected with
it in the same batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

# (observations (n, d), task features (n, k)) -> actions (n, a) in the env's action units
BasePolicy = Callable[[np.ndarray, np.ndarray], np.ndarray]


# ----- scripted policies ----------------------------------------------------------------------
def point_robot_goal_seeker(obs, features):
    """Straight to the goal (features[:, :2]) at full speed, then stay."""
    return np.clip(features[:, :2] - obs, -0.1, 0.1)


def point_robot_detour(obs, features):
    """To the goal by way of a point off to the side: another route to the same goal."""
    goal = features[:, :2]
    waypoint = 0.5 * goal + 0.5 * np.stack([-goal[:, 1], goal[:, 0]], axis=1)
    before_waypoint = np.linalg.norm(obs - waypoint, axis=1, keepdims=True) > 0.1
    seen_waypoint = np.linalg.norm(obs, axis=1, keepdims=True) > 0.45
    target = np.where(before_waypoint & ~seen_waypoint, waypoint, goal)
    return np.clip(target - obs, -0.1, 0.1)


def point_robot_overshoot(obs, features):
    """Aims at 1.5 x the goal: passes through the goal region and leaves it."""
    return np.clip(1.5 * features[:, :2] - obs, -0.1, 0.1)


class MetaWorldScripted:
    """Meta-World's own scripted expert, given the goal that the observation hides."""

    def __init__(self, env_name: str):
        from metaworld.policies import ENV_POLICY_MAP

        self._policy = ENV_POLICY_MAP[env_name]()

    def __call__(self, obs, features):
        visible = obs.copy()
        visible[:, -3:] = features[:, :3]  # features: goal (3), object_init (3), sorted by key
        return np.stack([self._policy.get_action(o) for o in visible])


def snapshot_policy(path: Path) -> BasePolicy:
    from bitr_envs.behaviour import MLPPolicy

    policy = MLPPolicy.load(path)
    return lambda obs, features: policy.act(obs, features)


def base_policy(name: str, recipes_dir: Path) -> Optional[BasePolicy]:
    """The base policy a card names; None for 'random' (uniform actions)."""
    if name == "random":
        return None
    kind, _, arg = name.partition(":")
    if kind == "point-robot":
        scripted = {
            "goal-seeker": point_robot_goal_seeker,
            "detour": point_robot_detour,
            "overshoot": point_robot_overshoot,
        }
        if arg in scripted:
            return scripted[arg]
    elif kind == "metaworld":
        return MetaWorldScripted(arg)
    elif kind == "snapshot":
        return snapshot_policy(recipes_dir / arg)
    raise ValueError(
        f"Unknown behaviour policy {name!r}: use 'random', 'point-robot:goal-seeker|detour|"
        "overshoot', 'metaworld:<env-name>' or 'snapshot:<path to .npz>'."
    )


# ----- behaviours -----------------------------------------------------------------------------
@dataclass
class EpisodeNoise:
    """All the randomness of one episode's actions, drawn at its start from its own RNG."""

    uniform: np.ndarray  # (horizon, act_dim): uniform actions, for random and epsilon steps
    gaussian: np.ndarray  # (horizon, act_dim): standard normal noise
    explore: np.ndarray  # (horizon,): whether the step takes the uniform action

    @classmethod
    def draw(cls, rng: np.random.Generator, horizon: int, low, high, epsilon: float):
        return cls(
            uniform=rng.uniform(low, high, (horizon, len(low))),
            gaussian=rng.standard_normal((horizon, len(low))),
            explore=rng.random(horizon) < epsilon,
        )


@dataclass
class Behaviour:
    name: str
    label: int
    policy: Optional[BasePolicy]
    noise: float = 0.0
    epsilon: float = 0.0

    def act(self, obs, features, uniform, gaussian, explore, low, high) -> np.ndarray:
        """Actions for a batch, given each row's noise for this step (rows of EpisodeNoise)."""
        if self.policy is None:
            return uniform
        actions = np.asarray(self.policy(obs, features), dtype=np.float64)
        if self.noise:
            actions = actions + self.noise * (high - low) / 2 * gaussian
        if self.epsilon:
            actions = np.where(explore[:, None], uniform, actions)
        return np.clip(actions, low, high)


def make_behaviours(card: dict, recipes_dir: Path) -> dict[str, Behaviour]:
    """Every behaviour of a card, labelled by its position in the card."""
    behaviours = {}
    for label, (name, spec) in enumerate(card["behaviours"].items()):
        behaviours[name] = Behaviour(
            name=name,
            label=label,
            policy=base_policy(spec["policy"], recipes_dir),
            noise=float(spec.get("noise", 0.0)),
            epsilon=float(spec.get("epsilon", 0.0)),
        )
    return behaviours
