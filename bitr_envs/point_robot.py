"""Point-Robot: a point on the plane must reach a goal on the unit half-circle
(`PointRobotEnv` documents the family in Gymnasium's sections).

`PointRobotVectorEnv` steps many of these at once in numpy (the `vector_entry_point` of the
registered ids), with the same dynamics, rewards and task contract as the single env.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import EzPickle
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from bitr_envs.core import N_OOD, N_TEST, N_TRAIN, MetaTaskMixin, TaskChoice, split_tasks

MAX_ACTION = 0.1
GOAL_RADIUS = 0.2


def _goal(angle: float) -> np.ndarray:
    """The goal on the unit circle at `angle`, the same bits on every CPU (`core.libm`)."""
    return np.array([math.cos(angle), math.sin(angle)])


def point_robot_reward(position: np.ndarray, goal: np.ndarray, sparse: bool) -> np.ndarray:
    """The reward at `position` (any leading batch shape) for `goal`."""
    distance = np.linalg.norm(position - goal, axis=-1)
    if sparse:
        return (distance <= GOAL_RADIUS).astype(np.float64)
    return -distance


class PointRobotDynamics(gym.Env):
    """The point and its reward for one goal, with no notion of tasks or splits."""

    metadata = {"render_modes": []}

    def __init__(self, sparse: bool = False):
        self.sparse = sparse
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float64)
        self.action_space = spaces.Box(-MAX_ACTION, MAX_ACTION, shape=(2,), dtype=np.float64)
        self.goal = _goal(0.0)
        self._position = np.zeros(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._position = np.zeros(2)
        return self._position.copy(), {}

    def step(self, action):
        self._position = self._position + np.clip(action, -MAX_ACTION, MAX_ACTION)
        reward = float(point_robot_reward(self._position, self.goal, self.sparse))
        return self._position.copy(), reward, False, False, {}


class PointRobotEnv(MetaTaskMixin, EzPickle, PointRobotDynamics):
    """
    ## Description
    A point on the plane starts at the origin and moves by its action each step; it must reach a
    goal it is not shown, somewhere on the unit circle. With the sparse reward it is paid only
    within 0.2 of the goal, so it has to search for it: the 2D navigation probe of meta-RL
    (PEARL's sparse point robot), and of most offline meta-RL papers.

    ## Tasks
    The task parameter: goal (cos t, sin t), t ~ U[0, π]; ood t ~ U[π, 2π].
    Splits: 30 train, 10 test, 10 ood tasks, drawn once with the fixed seed `task_seed`
    (`gym.make(id, split=...)`; the ood goals lie on the lower half-circle). In `info` on every
    reset and step: `task_id` (the index in the split), `goal` (the 2 coordinates) and
    `goal_angle` (t). The observation never contains the task.

    ## Action Space
    `Box(-0.1, 0.1, (2,), float64)`: the displacement (dx, dy); a larger action is clipped to
    [−0.1, 0.1]².

    ## Observation Space
    `Box(-inf, inf, (2,), float64)`: the point's position (x, y).

    ## Rewards
    With p the position after the step and g the goal:
    - `bitr/PointRobot-v0` (dense): −‖p − g‖
    - `bitr/PointRobotSparse-v0`: 1 if ‖p − g‖ ≤ 0.2 else 0

    ## Starting State
    The origin (0, 0), on every reset: no noise.

    ## Episode End
    The episode never terminates; it is truncated after 20 steps (the registered
    `max_episode_steps`).

    ## Arguments
    - `split` (str, default `"train"`): `"train"`, `"test"` or `"ood"`: the tasks of the env.
    - `sparse` (bool, default `False`): the sparse reward (set by `bitr/PointRobotSparse-v0`).
    - `task` (int, `"random"` or None, default None): the first task (None: task 0); `"random"`:
      a new task of the split on every plain `reset()`, for trainers that only call `reset()`.

    `reset(options={"task": i})` switches to task i of the split, `options={"task": "random"}`
    draws one; a plain `reset()` keeps the task. `gym.make_vec(id, num_envs=N)` gives
    `PointRobotVectorEnv`: N points stepped together in numpy.

    ## Version History
    * v0: the first version (BITR-Bench protocol v0).
    """

    task_seed = 1

    def __init__(self, split: str = "train", sparse: bool = False, task: TaskChoice = None):
        EzPickle.__init__(self, split=split, sparse=sparse, task=task)
        PointRobotDynamics.__init__(self, sparse=sparse)
        self._init_tasks(split, task)

    @classmethod
    def draw_tasks(cls, rng):
        angles = rng.uniform(0.0, np.pi, size=N_TRAIN + N_TEST)
        ood_angles = rng.uniform(np.pi, 2 * np.pi, size=N_OOD)
        return split_tasks(
            [{"goal": _goal(t), "goal_angle": float(t)} for t in angles],
            [{"goal": _goal(t), "goal_angle": float(t)} for t in ood_angles],
        )

    def _apply_task(self, params):
        self.goal = params["goal"]


class PointRobotVectorEnv(VectorEnv):
    """`num_envs` Point-Robots stepped together in numpy, with next-step autoreset.

    `reset(options={"task": i})` puts every sub-env on task i; `"random"` draws one task per
    sub-env; a sequence of `num_envs` indices sets each sub-env's task.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self, num_envs: int, split: str = "train", sparse: bool = False, max_episode_steps: int = 20
    ):
        self.num_envs = num_envs
        self.split = split
        self.sparse = sparse
        self.max_episode_steps = max_episode_steps
        self.tasks = PointRobotEnv.split_tasks(split)
        self._goals = np.stack([t["goal"] for t in self.tasks])
        self._angles = np.array([t["goal_angle"] for t in self.tasks])
        single = PointRobotDynamics(sparse)
        self.single_observation_space = single.observation_space
        self.single_action_space = single.action_space
        self.observation_space = batch_space(single.observation_space, num_envs)
        self.action_space = batch_space(single.action_space, num_envs)
        self.task_ids = np.zeros(num_envs, dtype=np.int64)
        self._positions = np.zeros((num_envs, 2))
        self._steps = np.zeros(num_envs, dtype=np.int64)
        self._needs_reset = np.zeros(num_envs, dtype=bool)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if options and "task" in options:
            self.task_ids = self._task_ids_from(options["task"])
        self._positions[:] = 0.0
        self._steps[:] = 0
        self._needs_reset[:] = False
        return self._positions.copy(), self._info()

    def step(self, actions):
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != self.action_space.shape:
            raise ValueError(
                f"PointRobotVectorEnv.step: actions have shape {actions.shape}, expected "
                f"{self.action_space.shape} (num_envs x 2)."
            )
        if not np.isfinite(actions).all():
            raise ValueError("PointRobotVectorEnv.step: the actions contain NaN or inf.")
        resetting = self._needs_reset
        self._positions += np.clip(actions, -MAX_ACTION, MAX_ACTION)
        self._steps += 1
        self._positions[resetting] = 0.0
        self._steps[resetting] = 0
        rewards = point_robot_reward(self._positions, self._goals[self.task_ids], self.sparse)
        rewards[resetting] = 0.0
        terminations = np.zeros(self.num_envs, dtype=bool)
        truncations = self._steps >= self.max_episode_steps
        self._needs_reset = truncations.copy()
        return self._positions.copy(), rewards, terminations, truncations, self._info()

    def _task_ids_from(self, task) -> np.ndarray:
        n_tasks = len(self.tasks)
        if isinstance(task, str):
            if task != "random":
                raise ValueError(f"reset(options={{'task': {task!r}}}): use an index or 'random'.")
            return self.np_random.integers(n_tasks, size=self.num_envs)
        ids = np.asarray(task)
        if (
            not np.issubdtype(ids.dtype, np.integer)
            or ids.shape not in ((), (self.num_envs,))
            or (ids < 0).any()
            or (ids >= n_tasks).any()
        ):
            raise ValueError(
                f"reset(options={{'task': {task!r}}}): give one task index or {self.num_envs} "
                f"(one per sub-env), integers in 0..{n_tasks - 1} (the {self.split!r} split)."
            )
        return np.broadcast_to(ids, (self.num_envs,)).astype(np.int64)

    def _info(self) -> dict[str, np.ndarray]:
        return {
            "task_id": self.task_ids.copy(),
            "goal": self._goals[self.task_ids],
            "goal_angle": self._angles[self.task_ids],
        }
