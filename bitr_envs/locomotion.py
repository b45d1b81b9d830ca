"""MuJoCo locomotion families on Gymnasium's v5 robots.

Reward-varying families (the task changes the reward, not the robot):
- Cheetah-Vel: run at target speed v ~ U[0, 3] (ood: U[3, 4]).
  Dense: -|v_x - v| - 0.05‖a‖². Sparse: 2 - |v_x - v| - 0.05‖a‖² within 0.5 of v, else -0.05‖a‖².
- Cheetah-Dir: run forward or backward, d in {-1, +1}: d·v_x - 0.05‖a‖².
- Ant-Dir: run in direction t ~ U[0, 2 pi]: the xy velocity projected on (cos t, sin t), plus
  Ant-v5's healthy bonus and control cost, with Ant-v5's termination. No contact cost, and
  contact forces are left out of the observation (27 dims, as in the peers' Ant-Dir).

Dynamics-varying families (the task changes the robot, not the reward):
- Hopper-Param, Walker-Param: each element of body_mass, body_inertia and geom_friction is
  scaled by 1.5^u and each element of dof_damping by 1.3^u, u ~ U[-3, 3] (ood: |u| ~ U[3, 4]).
  Dense: the v5 reward and termination. Sparse: with d = |v_x - 1.5|, 0.8 - d if d <= 0.5 else 0,
  minus 1e-3‖a‖² (the v5 control cost), with the v5 termination.

v_x is the v5 envs' own velocity: the torso's x displacement over one step divided by dt.
"""

from __future__ import annotations

import os
from typing import ClassVar

import gymnasium.envs.mujoco
import mujoco
import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv
from gymnasium.utils import EzPickle

from bitr_envs.core import N_OOD, N_TEST, N_TRAIN, MetaTaskMixin, TaskChoice, split_tasks

N_TASKS = N_TRAIN + N_TEST
CHEETAH_CTRL_COST = 0.05


# ----- Cheetah-Vel ----------------------------------------------------------------------------
def cheetah_vel_reward(x_velocity: float, target_velocity: float, ctrl_cost: float, sparse: bool):
    """Cheetah-Vel's reward from the forward speed and the (positive) control cost."""
    error = abs(x_velocity - target_velocity)
    if sparse:
        return (2.0 - error if error <= 0.5 else 0.0) - ctrl_cost
    return -error - ctrl_cost


class CheetahVelEnv(MetaTaskMixin, HalfCheetahEnv):
    task_seed = 2

    def __init__(self, split: str = "train", sparse: bool = False, task: TaskChoice = None, **kwargs):
        HalfCheetahEnv.__init__(self, ctrl_cost_weight=CHEETAH_CTRL_COST, **kwargs)
        EzPickle.__init__(self, split=split, sparse=sparse, task=task, **kwargs)
        self.sparse = sparse
        self._init_tasks(split, task)

    @classmethod
    def draw_tasks(cls, rng):
        return split_tasks(
            [{"target_velocity": float(v)} for v in rng.uniform(0.0, 3.0, N_TASKS)],
            [{"target_velocity": float(v)} for v in rng.uniform(3.0, 4.0, N_OOD)],
        )

    def _apply_task(self, params):
        self.target_velocity = params["target_velocity"]

    def _get_rew(self, x_velocity, action):
        ctrl_cost = self.control_cost(action)
        reward = cheetah_vel_reward(x_velocity, self.target_velocity, ctrl_cost, self.sparse)
        return reward, {"reward_ctrl": -ctrl_cost}


# ----- Cheetah-Dir ----------------------------------------------------------------------------
class CheetahDirEnv(MetaTaskMixin, HalfCheetahEnv):
    task_seed = 3

    def __init__(self, split: str = "train", task: TaskChoice = None, **kwargs):
        HalfCheetahEnv.__init__(self, ctrl_cost_weight=CHEETAH_CTRL_COST, **kwargs)
        EzPickle.__init__(self, split=split, task=task, **kwargs)
        self._init_tasks(split, task)

    @classmethod
    def draw_tasks(cls, rng):
        # Two tasks only: both splits hold both directions, and there is no ood split.
        directions = [{"direction": -1.0}, {"direction": 1.0}]
        return {"train": directions, "test": directions}

    def _apply_task(self, params):
        self.direction = params["direction"]

    def _get_rew(self, x_velocity, action):
        ctrl_cost = self.control_cost(action)
        forward = self.direction * x_velocity
        return forward - ctrl_cost, {"reward_forward": forward, "reward_ctrl": -ctrl_cost}


# ----- Ant-Dir --------------------------------------------------------------------------------
class AntDirEnv(MetaTaskMixin, AntEnv):
    task_seed = 4

    def __init__(self, split: str = "train", task: TaskChoice = None, **kwargs):
        AntEnv.__init__(
            self, contact_cost_weight=0.0, include_cfrc_ext_in_observation=False, **kwargs
        )
        EzPickle.__init__(self, split=split, task=task, **kwargs)
        self._init_tasks(split, task)

    @classmethod
    def draw_tasks(cls, rng):
        angles = rng.uniform(0.0, 2 * np.pi, N_TASKS)
        return split_tasks([{"direction_angle": float(t)} for t in angles])

    @classmethod
    def task_features(cls, params):
        return np.array([np.cos(params["direction_angle"]), np.sin(params["direction_angle"])])

    def _apply_task(self, params):
        self._direction = np.array([np.cos(params["direction_angle"]), np.sin(params["direction_angle"])])

    def step(self, action):
        # Ant-v5 hands only v_x to its reward function; the projection needs v_y too, which
        # Ant-v5 reports in info, so the forward term is replaced here.
        obs, reward, terminated, truncated, info = super().step(action)
        forward = self._direction[0] * info["x_velocity"] + self._direction[1] * info["y_velocity"]
        reward = reward - info["reward_forward"] + forward
        info["reward_forward"] = forward
        return obs, reward, terminated, truncated, info


# ----- Hopper-Param and Walker-Param ----------------------------------------------------------
SPARSE_TARGET_VELOCITY = 1.5


def param_sparse_reward(x_velocity: float, ctrl_cost: float) -> float:
    """The sparse Hopper/Walker-Param reward: run near 1.5 m/s."""
    distance = abs(x_velocity - SPARSE_TARGET_VELOCITY)
    return (0.8 - distance if distance <= 0.5 else 0.0) - ctrl_cost


class RandomParamMixin(MetaTaskMixin):
    """Tasks that rescale the robot's physical parameters, as in rand_param_envs.

    Each task stores the multipliers of each array; switching task writes default * multiplier
    into the model (from a pristine copy of the defaults, so switching back is exact) and
    recomputes MuJoCo's derived constants with `mj_setConst`.
    """

    xml_file: ClassVar[str]
    PARAMETERS = {  # model array -> base of the scale, base^u
        "body_mass": 1.5,
        "body_inertia": 1.5,
        "dof_damping": 1.3,
        "geom_friction": 1.5,
    }

    @classmethod
    def draw_tasks(cls, rng):
        model = mujoco.MjModel.from_xml_path(
            os.path.join(os.path.dirname(gymnasium.envs.mujoco.__file__), "assets", cls.xml_file)
        )
        shapes = {name: getattr(model, name).shape for name in cls.PARAMETERS}

        def task(exponents):
            return {f"{name}_scale": cls.PARAMETERS[name] ** exponents[name] for name in shapes}

        in_distribution = [
            task({n: rng.uniform(-3.0, 3.0, s) for n, s in shapes.items()}) for _ in range(N_TASKS)
        ]
        ood = [
            task({n: rng.choice([-1.0, 1.0], s) * rng.uniform(3.0, 4.0, s) for n, s in shapes.items()})
            for _ in range(N_OOD)
        ]
        return split_tasks(in_distribution, ood)

    @classmethod
    def task_features(cls, params):
        # log-scales: symmetric around the default robot, and what the task was drawn in.
        return np.log(super().task_features(params))

    def _init_param_tasks(self, split: str, sparse: bool, task: TaskChoice) -> None:
        self.sparse = sparse
        self._default_parameters = {n: getattr(self.model, n).copy() for n in self.PARAMETERS}
        self._init_tasks(split, task)

    def _apply_task(self, params):
        for name, default in self._default_parameters.items():
            getattr(self.model, name)[:] = default * params[f"{name}_scale"]
        mujoco.mj_setConst(self.model, self.data)

    def _get_rew(self, x_velocity, action):
        if not self.sparse:
            return super()._get_rew(x_velocity, action)
        ctrl_cost = self.control_cost(action)
        return param_sparse_reward(x_velocity, ctrl_cost), {"reward_ctrl": -ctrl_cost}


class HopperParamEnv(RandomParamMixin, HopperEnv):
    task_seed = 5
    xml_file = "hopper.xml"

    def __init__(self, split: str = "train", sparse: bool = False, task: TaskChoice = None, **kwargs):
        HopperEnv.__init__(self, **kwargs)
        EzPickle.__init__(self, split=split, sparse=sparse, task=task, **kwargs)
        self._init_param_tasks(split, sparse, task)


class WalkerParamEnv(RandomParamMixin, Walker2dEnv):
    task_seed = 6
    xml_file = "walker2d_v5.xml"

    def __init__(self, split: str = "train", sparse: bool = False, task: TaskChoice = None, **kwargs):
        Walker2dEnv.__init__(self, **kwargs)
        EzPickle.__init__(self, split=split, sparse=sparse, task=task, **kwargs)
        self._init_param_tasks(split, sparse, task)
