"""Meta-World ML1 families (Reach, Push) with the task contract of `bitr_envs.core`.

Tasks are Meta-World's own ML1 goals (`metaworld.ML1(name, seed=task_seed)`): train = ML1 train
goals 0-29, test = ML1 train goals 30-39, ood = ML1 test goals 0-9. Meta-World draws its train
and test goals from the same box, so `ood` here means "goals from Meta-World's held-out set",
not "outside the training range". A task fixes the object's start and the goal, so episodes
are deterministic given the actions. The goal is hidden: the last 3 of the 39 observation dims
are zero. Dense reward: Meta-World's v3 reward (0-10 per step); sparse: `info["success"]` (0/1).
Episodes last 500 steps and never terminate.
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
    def __init__(self, split: str = "train", sparse: bool = False, task: TaskChoice = None):
        EzPickle.__init__(self, split=split, sparse=sparse, task=task)
        MetaWorldML1Env.__init__(self, sparse=sparse)
        self._init_tasks(split, task)

    @classmethod
    def draw_tasks(cls, rng):
        # Meta-World draws its goals from the global np.random seeded with our seed (it
        # restores the global state afterwards); `rng` is not needed.
        ml1 = metaworld.ML1(cls.env_name, seed=cls.task_seed)

        def params(task):
            rand_vec = pickle.loads(task.data)["rand_vec"]  # Meta-World's own task record
            return {"object_init": rand_vec[:3].copy(), "goal": rand_vec[3:].copy()}

        in_distribution = [params(t) for t in ml1.train_tasks[: N_TRAIN + N_TEST]]
        return split_tasks(in_distribution, [params(t) for t in ml1.test_tasks[:N_OOD]])

    def _apply_task(self, params):
        rand_vec = np.concatenate([params["object_init"], params["goal"]])
        data = {"rand_vec": rand_vec, "env_cls": type(self._mw), "partially_observable": True}
        self._mw.set_task(metaworld.Task(env_name=self.env_name, data=pickle.dumps(data)))


class ReachEnv(MetaWorldTaskEnv):
    env_name = "reach-v3"
    task_seed = 7


class PushEnv(MetaWorldTaskEnv):
    env_name = "push-v3"
    task_seed = 8
