"""MuJoCo locomotion families on Gymnasium's v5 robots. Cheetah-Vel, Cheetah-Dir and Ant-Dir
vary the reward (the task changes what is paid, not the robot); Hopper-Param and Walker-Param
vary the dynamics (the task changes the robot, not the reward). Each class documents its family
in Gymnasium's sections (`help(gym.make(id).unwrapped)`).
"""

from __future__ import annotations

import math
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

from bitr_envs.core import N_OOD, N_TEST, N_TRAIN, MetaTaskMixin, TaskChoice, libm, split_tasks

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
    """
    ## Description
    Gymnasium's HalfCheetah-v5 whose task is a target forward speed: the cheetah must run at
    speed v, which it is not shown. The reward-varying family of meta-RL papers since MAML,
    online and offline. v_x is HalfCheetah-v5's own: the torso's x displacement over one step
    divided by `dt` (0.05 s).

    ## Tasks
    The task parameter: target speed v ~ U[0, 3]; ood U[3, 4].
    Splits: 30 train, 10 test, 10 ood tasks, drawn once with the fixed seed `task_seed`
    (`gym.make(id, split=...)`). In `info` on every reset and step: `task_id` (the index in the
    split) and `target_velocity` (v). The observation never contains the task.

    ## Action Space
    `Box(-1.0, 1.0, (6,), float32)`: HalfCheetah-v5's torques on the back and front thigh, shin
    and foot hinges.

    ## Observation Space
    `Box(-inf, inf, (17,), float64)`: HalfCheetah-v5's, the joint positions without the x of the
    torso (8) and the joint velocities (9).

    ## Rewards
    With the control cost 0.05‖a‖² (`info["reward_ctrl"]` is its negative):
    - `bitr/CheetahVel-v0` (dense): −|v_x − v| − 0.05‖a‖²
    - `bitr/CheetahVelSparse-v0`: 2 − |v_x − v| − 0.05‖a‖² within 0.5 of v, else −0.05‖a‖²

    ## Starting State
    HalfCheetah-v5's: the rest pose plus U(−0.1, 0.1) noise on each joint position and
    0.1·N(0, 1) on each velocity, drawn from the env's RNG (`reset(seed=...)`).

    ## Episode End
    The episode never terminates; it is truncated after 200 steps (the registered
    `max_episode_steps`).

    ## Arguments
    - `split` (str, default `"train"`): `"train"`, `"test"` or `"ood"`: the tasks of the env.
    - `sparse` (bool, default `False`): the sparse reward (set by `bitr/CheetahVelSparse-v0`).
    - `task` (int, `"random"` or None, default None): the first task (None: task 0); `"random"`:
      a new task of the split on every plain `reset()`, for trainers that only call `reset()`.
    - `**kwargs`: to HalfCheetah-v5 (e.g. `render_mode`), but for `ctrl_cost_weight`, which the
      family fixes at 0.05.

    `reset(options={"task": i})` switches to task i of the split, `options={"task": "random"}`
    draws one; a plain `reset()` keeps the task.

    ## Version History
    * v0: the first version (BITR-Bench protocol v0).
    """

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
    """
    ## Description
    Gymnasium's HalfCheetah-v5 whose task is a direction: run forward or run backward, which
    the cheetah is not told. v_x is HalfCheetah-v5's own: the torso's x displacement over one
    step divided by `dt` (0.05 s).

    ## Tasks
    The task parameter: direction d ∈ {−1, +1} (both tasks in both splits).
    Splits: 2 train, 2 test tasks: task 0 is d = −1 (backward), task 1 is d = +1 (forward), in
    both splits, so this is the one family whose splits are not disjoint; it has no ood split.
    In `info` on every reset and step: `task_id` and `direction` (d). The observation never
    contains the task.

    ## Action Space
    `Box(-1.0, 1.0, (6,), float32)`: HalfCheetah-v5's torques on the back and front thigh, shin
    and foot hinges.

    ## Observation Space
    `Box(-inf, inf, (17,), float64)`: HalfCheetah-v5's, the joint positions without the x of the
    torso (8) and the joint velocities (9).

    ## Rewards
    - `bitr/CheetahDir-v0`: d·v_x − 0.05‖a‖² (`info["reward_forward"]` is d·v_x,
      `info["reward_ctrl"]` the negative control cost)

    ## Starting State
    HalfCheetah-v5's: the rest pose plus U(−0.1, 0.1) noise on each joint position and
    0.1·N(0, 1) on each velocity, drawn from the env's RNG (`reset(seed=...)`).

    ## Episode End
    The episode never terminates; it is truncated after 200 steps (the registered
    `max_episode_steps`).

    ## Arguments
    - `split` (str, default `"train"`): `"train"` or `"test"` (the same two tasks).
    - `task` (int, `"random"` or None, default None): the first task (None: task 0); `"random"`:
      a new task of the split on every plain `reset()`, for trainers that only call `reset()`.
    - `**kwargs`: to HalfCheetah-v5 (e.g. `render_mode`), but for `ctrl_cost_weight`, which the
      family fixes at 0.05.

    `reset(options={"task": i})` switches to task i, `options={"task": "random"}` draws one; a
    plain `reset()` keeps the task.

    ## Version History
    * v0: the first version (BITR-Bench protocol v0).
    """

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
def _direction(angle: float) -> np.ndarray:
    """The unit vector of Ant-Dir's direction, the same bits on every CPU (`libm`)."""
    return np.array([math.cos(angle), math.sin(angle)])


class AntDirEnv(MetaTaskMixin, AntEnv):
    """
    ## Description
    Gymnasium's Ant-v5 whose task is a direction on the plane: run in direction t, which the ant
    is not told. Contact forces are left out of the observation and there is no contact cost, as
    in the Ant-Dir of the offline meta-RL papers (27 observation dims, not Ant-v5's 105).

    ## Tasks
    The task parameter: direction t ~ U[0, 2π].
    Splits: 30 train, 10 test tasks, drawn once with the fixed seed `task_seed`; no ood split
    (the directions cover the circle). In `info` on every reset and step: `task_id` and
    `direction_angle` (t). The observation never contains the task.

    ## Action Space
    `Box(-1.0, 1.0, (8,), float32)`: Ant-v5's torques on the hip and ankle hinges of the four
    legs.

    ## Observation Space
    `Box(-inf, inf, (27,), float64)`: Ant-v5's without contact forces, the joint positions
    without the x and y of the torso (13) and the joint velocities (14).

    ## Rewards
    - `bitr/AntDir-v0`: (v_x, v_y)·(cos t, sin t) + Ant-v5 healthy bonus − control cost, that
      is the torso's xy velocity projected on the direction (`info["reward_forward"]`), + 1 while
      healthy, − 0.5‖a‖²

    ## Starting State
    Ant-v5's: the rest pose plus U(−0.1, 0.1) noise on each joint position and 0.1·N(0, 1) on
    each velocity, drawn from the env's RNG (`reset(seed=...)`).

    ## Episode End
    The episode terminates when the ant is unhealthy (Ant-v5's test: the torso's height outside
    [0.2, 1.0], or a state that is not finite); it is truncated after 200 steps (the registered
    `max_episode_steps`).

    ## Arguments
    - `split` (str, default `"train"`): `"train"` or `"test"`: the tasks of the env.
    - `task` (int, `"random"` or None, default None): the first task (None: task 0); `"random"`:
      a new task of the split on every plain `reset()`, for trainers that only call `reset()`.
    - `**kwargs`: to Ant-v5 (e.g. `render_mode`), but for `contact_cost_weight` and
      `include_cfrc_ext_in_observation`, which the family fixes.

    `reset(options={"task": i})` switches to task i of the split, `options={"task": "random"}`
    draws one; a plain `reset()` keeps the task.

    ## Version History
    * v0: the first version (BITR-Bench protocol v0).
    """

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
        return _direction(params["direction_angle"])

    def _apply_task(self, params):
        self._direction = _direction(params["direction_angle"])

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
    # Measured on the lite reference runs: the expert returns no more than the random policy on
    # 3 of Walker-Param-Sparse's 10 test tasks and on some ood task of every variant (a body
    # too heavy or too slippery for it), so a per-task scale would divide by zero or flip sign.
    pooled_references = True
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
            return {f"{name}_scale": libm(lambda u, base=cls.PARAMETERS[name]: math.pow(base, u), exponents[name])
                    for name in shapes}

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
        return libm(math.log, super().task_features(params))

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


# Hopper- and Walker-Param share their documentation (Gymnasium's sections) but for these fields.
_PARAM_DOC = """
    ## Description
    Gymnasium's {base} whose task is the robot itself: its masses, inertias, frictions and
    joint dampings are rescaled, so the same actions move each task's {robot} differently (the
    dynamics-varying family of the rand_param_envs papers). v_x is {base}'s own: the torso's x
    displacement over one step divided by `dt` (0.008 s).

    ## Tasks
    The task parameter: mass, inertia, friction × 1.5^u, damping × 1.3^u, u ~ U[−3, 3] per element; ood |u| ~ U[3, 4].
    That is, every element of the model's `body_mass`, `body_inertia` and `geom_friction` is
    multiplied by 1.5^u and every element of `dof_damping` by 1.3^u, with u drawn for each
    element; ood tasks draw |u| ~ U[3, 4] with a random sign. MuJoCo's derived constants are
    recomputed (`mj_setConst`), and switching back to a task restores its model exactly.
    Splits: 30 train, 10 test, 10 ood tasks, drawn once with the fixed seed `task_seed`. In
    `info` on every reset and step: `task_id` and the multipliers `body_mass_scale`,
    `body_inertia_scale`, `dof_damping_scale` and `geom_friction_scale` (arrays;
    `task_features` gives their logarithms). The observation never contains the task.

    ## Action Space
{actions}

    ## Observation Space
{observations}

    ## Rewards
    - `bitr/{name}-v0` (dense): {base}'s, v_x + 1 while healthy − 1e-3‖a‖²
    - `bitr/{name}Sparse-v0`: d = |v_x − 1.5|: 0.8 − d if d ≤ 0.5 else 0, − 1e-3‖a‖²
      (paid only near 1.5 m/s; no healthy bonus)

    ## Starting State
    {base}'s: the rest pose plus U(−0.005, 0.005) noise on each joint position and velocity,
    drawn from the env's RNG (`reset(seed=...)`).

    ## Episode End
{episode_end}

    ## Arguments
    - `split` (str, default `"train"`): `"train"`, `"test"` or `"ood"`: the tasks of the env.
    - `sparse` (bool, default `False`): the sparse reward (set by `bitr/{name}Sparse-v0`).
    - `task` (int, `"random"` or None, default None): the first task (None: task 0); `"random"`:
      a new task of the split on every plain `reset()`, for trainers that only call `reset()`.
    - `**kwargs`: to {base} (e.g. `render_mode`).

    `reset(options={{"task": i}})` switches to task i of the split, `options={{"task": "random"}}`
    draws one; a plain `reset()` keeps the task.

    ## Version History
    * v0: the first version (BITR-Bench protocol v0).
"""
_HOPPER_DOC = dict(
    base='Hopper-v5',
    robot='hopper',
    name='HopperParam',
    actions="    `Box(-1.0, 1.0, (3,), float32)`: Hopper-v5's torques on the thigh, leg and foot hinges.",
    observations="""    `Box(-inf, inf, (11,), float64)`: Hopper-v5's, the joint positions without the x of the torso
    (5) and the joint velocities (6).""",
    episode_end="""    The episode terminates when the hopper is unhealthy (Hopper-v5's test, under both rewards:
    its height below 0.7, its torso angle outside [−0.2, 0.2], or a state element outside
    [−100, 100]); it is truncated after 200 steps (the registered `max_episode_steps`).""",
)
_WALKER_DOC = dict(
    base='Walker2d-v5',
    robot='walker',
    name='WalkerParam',
    actions="""    `Box(-1.0, 1.0, (6,), float32)`: Walker2d-v5's torques on the thigh, leg and foot hinges of
    the right and the left leg.""",
    observations="""    `Box(-inf, inf, (17,), float64)`: Walker2d-v5's, the joint positions without the x of the
    torso (8) and the joint velocities (9).""",
    episode_end="""    The episode terminates when the walker is unhealthy (Walker2d-v5's test, under both
    rewards: its height outside [0.8, 2.0] or its torso angle outside [−1, 1]); it is truncated
    after 200 steps (the registered `max_episode_steps`).""",
)


class HopperParamEnv(RandomParamMixin, HopperEnv):
    __doc__ = _PARAM_DOC.format(**_HOPPER_DOC)

    task_seed = 5
    xml_file = "hopper.xml"

    def __init__(self, split: str = "train", sparse: bool = False, task: TaskChoice = None, **kwargs):
        HopperEnv.__init__(self, **kwargs)
        EzPickle.__init__(self, split=split, sparse=sparse, task=task, **kwargs)
        self._init_param_tasks(split, sparse, task)


class WalkerParamEnv(RandomParamMixin, Walker2dEnv):
    __doc__ = _PARAM_DOC.format(**_WALKER_DOC)

    task_seed = 6
    xml_file = "walker2d_v5.xml"

    def __init__(self, split: str = "train", sparse: bool = False, task: TaskChoice = None, **kwargs):
        Walker2dEnv.__init__(self, **kwargs)
        EzPickle.__init__(self, split=split, sparse=sparse, task=task, **kwargs)
        self._init_param_tasks(split, sparse, task)
