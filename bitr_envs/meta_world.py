"""Meta-World ML1 families (Reach, Push) with the task contract of `bitr_envs.core`; each class
documents its family in Gymnasium's sections (`help(gym.make(id).unwrapped)`).
"""

from __future__ import annotations

import pickle
from typing import ClassVar

import gymnasium as gym
import metaworld
import numpy as np
from gymnasium.utils import EzPickle
from metaworld.env_dict import ALL_V3_ENVIRONMENTS

from bitr_envs.core import N_OOD, N_TEST, N_TRAIN, MetaTaskMixin, TaskChoice, split_tasks


class MetaWorldML1Env(gym.Env):
    """One Meta-World v3 env behind the plain Gymnasium API, with an optional sparse reward.

    Wrapping rather than subclassing keeps Meta-World's legacy `seed()` method off our env.
    """

    metadata = {"render_modes": []}
    env_name: ClassVar[str]

    def __init__(self, sparse: bool = False):
        self.sparse = sparse
        self._mw = ALL_V3_ENVIRONMENTS[self.env_name]()
        self.observation_space = self._mw.observation_space
        self.action_space = self._mw.action_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._mw.reset()

    def step(self, action):
        obs, reward, terminated, truncated, info = self._mw.step(action)
        if self.sparse:
            reward = float(info["success"])
        return obs, float(reward), terminated, truncated, info

    def close(self):
        self._mw.close()


class MetaWorldTaskEnv(MetaTaskMixin, EzPickle, MetaWorldML1Env):
    """A Meta-World v3 env whose tasks are its ML1 goals (`ReachEnv`, `PushEnv`)."""

    def __init__(self, split: str = "train", sparse: bool = False, task: TaskChoice = None):
        EzPickle.__init__(self, split=split, sparse=sparse, task=task)
        MetaWorldML1Env.__init__(self, sparse=sparse)
        self._init_tasks(split, task)

    @classmethod
    def draw_tasks(cls, rng):
        # Meta-World draws its goals from the global np.random seeded with a seed of ours (it
        # restores the global state afterwards): the seed `rng` was made from (`task_seed` for
        # the public splits, the secret draw for sealed ones).
        ml1 = metaworld.ML1(cls.env_name, seed=int(rng.bit_generator.seed_seq.entropy))

        def params(task):
            rand_vec = pickle.loads(task.data)["rand_vec"]  # Meta-World's own task record
            return {"object_init": rand_vec[:3].copy(), "goal": rand_vec[3:].copy()}

        in_distribution = [params(t) for t in ml1.train_tasks[: N_TRAIN + N_TEST]]
        return split_tasks(in_distribution, [params(t) for t in ml1.test_tasks[:N_OOD]])

    def _apply_task(self, params):
        rand_vec = np.concatenate([params["object_init"], params["goal"]])
        data = {"rand_vec": rand_vec, "env_cls": type(self._mw), "partially_observable": True}
        self._mw.set_task(metaworld.Task(env_name=self.env_name, data=pickle.dumps(data)))


# The two families' documentation, in Gymnasium's sections: they differ in their first lines only.
_DOC = """
    ## Description
    {description}
    The goal is hidden (the last 3 of the 39 observation dims are zero), so it must be found
    from the reward. Meta-World's own `{env_name}`, behind the plain Gymnasium API.

    ## Tasks
    The task parameter: goal: Meta-World ML1 train goals; ood: ML1 test goals.
    That is Meta-World's own ML1 tasks, `metaworld.ML1("{env_name}", seed={task_seed})`: train is
    ML1's train goals 0-29, test its train goals 30-39, ood its test goals 0-9. Meta-World draws
    both sets from the same box, so ood here means "goals from Meta-World's held-out set", not
    "outside the training range". A task also fixes the object's start, which is observed.
    Splits: 30 train, 10 test, 10 ood tasks. In `info` on every reset and step: `task_id`,
    `object_init` (the object's start, 3 coordinates) and `goal` (3). The observation never
    contains the goal.

    ## Action Space
    `Box(-1.0, 1.0, (4,), float32)`: Meta-World's, the end effector's displacement (x, y, z) and
    the gripper's effort.

    ## Observation Space
    `Box(..., (39,), float64)`: Meta-World's, the hand's position (3), the gripper's opening (1),
    the object's position and quaternion (7) and 7 zeros (no second object), the same 18 of the
    step before, then the goal's 3 dims, zeroed.

    ## Rewards
    - `bitr/{name}-v0` (dense): Meta-World v3 reward (0-10 per step)
    - `bitr/{name}Sparse-v0`: success (0/1) each step, Meta-World's `info["success"]`

    ## Starting State
    The hand at Meta-World's start and the object at the task's `object_init`: a task's episodes
    differ only by their actions (`reset(seed=...)` seeds the env's own draws, such as
    `task="random"`).

    ## Episode End
    The episode never terminates (reaching the goal included); it is truncated after 500 steps
    (the registered `max_episode_steps`; Meta-World's own limit).

    ## Arguments
    - `split` (str, default `"train"`): `"train"`, `"test"` or `"ood"`: the tasks of the env.
    - `sparse` (bool, default `False`): the sparse reward (set by `bitr/{name}Sparse-v0`).
    - `task` (int, `"random"` or None, default None): the first task (None: task 0); `"random"`:
      a new task of the split on every plain `reset()`, for trainers that only call `reset()`.

    `reset(options={{"task": i}})` switches to task i of the split, `options={{"task": "random"}}`
    draws one; a plain `reset()` keeps the task. No rendering.

    ## Version History
    * v0: the first version (BITR-Bench protocol v0).
    """


class ReachEnv(MetaWorldTaskEnv):
    env_name = "reach-v3"
    task_seed = 7
    __doc__ = _DOC.format(name="Reach", env_name=env_name, task_seed=task_seed, description=(
        "A Sawyer arm must move its hand to a goal position in the air, which it is not shown."))


class PushEnv(MetaWorldTaskEnv):
    env_name = "push-v3"
    task_seed = 8
    __doc__ = _DOC.format(name="Push", env_name=env_name, task_seed=task_seed, description=(
        "A Sawyer arm must push a puck on the table to a goal position, which it is not shown."))
