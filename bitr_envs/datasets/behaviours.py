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

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

if TYPE_CHECKING:
    from bitr_envs.datasets.recipes import RecipeCard

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


# ----- task-conditioned SAC snapshots (datasets/train_sac.py), run in numpy ----------------
LAYERS = ("fc1", "fc2", "fc_mean", "fc_logstd")
ARRAYS = tuple(f"{layer}.{part}" for layer in LAYERS for part in ("weight", "bias")) + (
    "action_scale",
    "action_bias",
    "obs_dim",
)


def _dense(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """x @ weight.T + bias without BLAS: elementwise products summed along a contiguous axis
    (numpy's pairwise sum, whose order is fixed in its code whatever the CPU)."""
    return np.add.reduce(x[..., None, :] * weight, axis=-1) + bias


class MLPPolicy:
    """The SAC actor: relu(fc1) -> relu(fc2) -> fc_mean -> tanh, times the action scale."""

    def __init__(self, arrays: dict[str, np.ndarray], source: str = "arrays"):
        missing = set(ARRAYS) - set(arrays)
        extra = set(arrays) - set(ARRAYS)
        if missing or extra:
            raise ValueError(
                f"{source} is not a train_sac.py actor snapshot: missing arrays {sorted(missing)}, "
                f"unexpected arrays {sorted(extra)} (expected {list(ARRAYS)})."
            )
        a = {k: np.asarray(v) for k, v in arrays.items()}
        if a["fc1.weight"].ndim != 2 or a["action_scale"].ndim != 1:
            raise ValueError(f"{source}: fc1.weight must be 2-D and action_scale 1-D.")
        hidden, in_dim = a["fc1.weight"].shape
        act_dim = a["action_scale"].shape[0]
        expected = {
            "fc1.bias": (hidden,), "fc2.weight": (hidden, hidden), "fc2.bias": (hidden,),
            "fc_mean.weight": (act_dim, hidden), "fc_mean.bias": (act_dim,),
            "fc_logstd.weight": (act_dim, hidden), "fc_logstd.bias": (act_dim,),
            "action_bias": (act_dim,), "obs_dim": (),
        }
        wrong = {k: a[k].shape for k, shape in expected.items() if a[k].shape != shape}
        if wrong:
            raise ValueError(f"{source}: wrong array shapes {wrong}; expected {expected}.")
        if not 0 < int(a["obs_dim"]) < in_dim:
            raise ValueError(f"{source}: obs_dim {int(a['obs_dim'])} must be in 1..{in_dim - 1}.")
        self.obs_dim = int(a.pop("obs_dim"))
        self.task_dim = in_dim - self.obs_dim
        self.act_dim = act_dim
        # float64 copies of the float32 weights: products of two float32 numbers are exact in float64
        self.params = {k: v.astype(np.float32).astype(np.float64) for k, v in a.items()}

    @classmethod
    def load(cls, path: str | Path) -> MLPPolicy:
        with np.load(path, allow_pickle=False) as data:
            return cls(dict(data), source=str(path))

    def mean_action(self, obs, task_features) -> np.ndarray:
        """tanh of the Gaussian mean, in [-1, 1] (before the action scale), rounded to float32.

        The same bits on every CPU: no BLAS (whose kernels, chosen per CPU or by
        OPENBLAS_CORETYPE, sum in different orders, and MuJoCo turns a last-bit difference into
        another episode). Each layer is an exact float64 product and a sum in numpy's fixed
        order; only tanh can differ by one float64 ulp between CPUs, which the final rounding
        to float32 hides except when a value lies within that ulp of a float32 rounding edge.
        """
        obs = np.asarray(obs, np.float32).astype(np.float64)
        task = np.asarray(task_features, np.float32).astype(np.float64)
        if obs.shape[-1:] != (self.obs_dim,) or task.shape[-1:] != (self.task_dim,):
            raise ValueError(
                f"expected obs [..., {self.obs_dim}] and task_features [..., {self.task_dim}], "
                f"got {obs.shape} and {task.shape}"
            )
        task = np.broadcast_to(task, obs.shape[:-1] + (self.task_dim,))
        p = self.params
        h = np.concatenate([obs, task], -1)
        h = np.maximum(_dense(h, p["fc1.weight"], p["fc1.bias"]), 0)
        h = np.maximum(_dense(h, p["fc2.weight"], p["fc2.bias"]), 0)
        return np.tanh(_dense(h, p["fc_mean.weight"], p["fc_mean.bias"])).astype(np.float32)

    def act(self, obs, task_features) -> np.ndarray:
        """The deterministic action in the env's action units (noise is the behaviour's job)."""
        action = self.mean_action(obs, task_features).astype(np.float64)
        return (action * self.params["action_scale"] + self.params["action_bias"]).astype(np.float32)


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
        return MLPPolicy.load(recipes_dir / arg).act
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


def make_behaviours(card: RecipeCard) -> dict[str, Behaviour]:
    """Every behaviour of a card, labelled by its position in the card."""
    return {
        name: Behaviour(name, label, base_policy(spec.policy, card.path.parent), spec.noise, spec.epsilon)
        for label, (name, spec) in enumerate(card.behaviours.items())
    }
