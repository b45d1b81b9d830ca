"""The task contract shared by every meta-task family.

A family is a Gymnasium env class that mixes in `MetaTaskMixin` and says how to draw its tasks
(`draw_tasks`) and how to put one into the simulator (`_apply_task`). The mixin gives every
family the same behaviour:

- `gym.make(id, split="train" | "test" | "ood")` picks the split; the split's tasks are
  `env.unwrapped.tasks` (a tuple of read-only parameter dicts), fixed by a seed.
- `reset(options={"task": i})` switches to task i of the split, `options={"task": "random"}`
  draws one with the env's RNG, and a plain `reset()` keeps the current task.
- `gym.make(id, task="random")` draws a task of the split on every plain `reset()` (seeded by
  `reset(seed=...)`): for tools that only ever call `reset()` (Stable-Baselines3, d3rlpy,
  torchrl), which would otherwise train and evaluate on task 0 alone. `task=i` starts on task i.
- `info["task_id"]` and the task's parameters are in `info` on every reset and step; the
  observation never contains the task.
- A wrongly shaped or non-finite action raises a `ValueError` that says what was wrong.
"""

from __future__ import annotations

import functools
import math
import threading
import types
from collections.abc import Mapping
from typing import Any, ClassVar, Union

import gymnasium as gym
import numpy as np

SPLITS = ("train", "test", "ood")
TaskChoice = Union[int, str, None]  # gym.make(..., task=): None (task 0, kept), an index, or "random"
N_TRAIN, N_TEST, N_OOD = 30, 10, 10


def split_tasks(in_distribution: list, ood: list | None = None) -> dict[str, list]:
    """Cut the family's 40 in-distribution tasks into train (0-29) and test (30-39)."""
    if len(in_distribution) != N_TRAIN + N_TEST:
        raise AssertionError(f"expected {N_TRAIN + N_TEST} tasks, got {len(in_distribution)}")
    splits = {"train": in_distribution[:N_TRAIN], "test": in_distribution[N_TRAIN:]}
    if ood is not None:
        splits["ood"] = ood
    return splits


def _freeze(params: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only view of one task's parameters (arrays made read-only too)."""
    frozen = {}
    for key, value in params.items():
        if isinstance(value, np.ndarray):
            value = value.copy()
            value.flags.writeable = False
        frozen[key] = value
    return types.MappingProxyType(frozen)


class MetaTaskMixin:
    """Mix into a `gymnasium.Env` subclass (before it in the bases) to give it the task contract.

    Subclasses set `task_seed`, implement `draw_tasks(rng)` and `_apply_task(params)`, and call
    `self._init_tasks(split)` at the end of `__init__`.
    """

    task_seed: ClassVar[int]
    # How a score is normalised: per task (0 = that task's random return, 100 = its expert's),
    # or pooled over the split (the split's mean random and mean expert return), for families
    # whose expert fails some tasks outright, where a task's own scale is near zero or negative.
    pooled_references: ClassVar[bool] = False

    # ----- the family's part ---------------------------------------------------------------
    @classmethod
    def draw_tasks(cls, rng: np.random.Generator) -> dict[str, list[dict[str, Any]]]:
        """Every split's task parameters, drawn from `rng` (seeded with `task_seed`)."""
        raise NotImplementedError

    def _apply_task(self, params: Mapping[str, Any]) -> None:
        """Put the task into the simulator; called on task switch, before the reset."""
        raise NotImplementedError

    @classmethod
    def task_features(cls, params: Mapping[str, Any]) -> np.ndarray:
        """The task as one flat float vector, for task-conditioned (oracle) policies."""
        return np.concatenate([np.ravel(params[k]) for k in sorted(params)]).astype(np.float64)

    # ----- the shared part -----------------------------------------------------------------
    @classmethod
    def splits(cls) -> tuple[str, ...]:
        """The splits this family defines, in the order train, test, ood."""
        return tuple(s for s in SPLITS if s in cls.task_table())

    @classmethod
    def task_table(cls) -> dict[str, tuple[Mapping[str, Any], ...]]:
        """Every split's tasks; identical on every machine (drawn once with `task_seed`)."""
        with _TASK_TABLE_LOCK:
            return _task_table(cls)

    @classmethod
    def split_tasks(cls, split: str) -> tuple[Mapping[str, Any], ...]:
        """The tasks of one split, or a ValueError naming the splits that exist."""
        table = cls.task_table()
        if split not in table:
            if split in SPLITS:
                raise ValueError(
                    f"{cls.__name__} has no {split!r} split: this family's task parameter "
                    f"has no out-of-distribution range. Use one of {list(table)}."
                )
            raise ValueError(f"Unknown split {split!r}: use one of {list(table)}.")
        return table[split]

    @classmethod
    def sealed_tasks(cls, split: str, draw: int) -> tuple[Mapping[str, Any], ...]:
        """The tasks of `split` in a secret draw: the same distributions and counts as the public
        split, drawn from `draw` instead of `task_seed` (sealed evaluation: tasks that no
        submission can know in advance)."""
        cls.split_tasks(split)  # an unknown split: the same error
        with _TASK_TABLE_LOCK:
            return _drawn_table(cls, draw)[split]

    def redraw_tasks(self, draw: int) -> None:
        """Play the secret draw's tasks of this env's split from now on (task 0 first)."""
        self.tasks = self.sealed_tasks(self.split, draw)
        self._set_task(0)

    def _init_tasks(self, split: str, task: TaskChoice = None) -> None:
        self.split = split
        self.tasks = self.split_tasks(split)
        self.draws_tasks = task == "random"
        self.task_id = 0
        first = 0 if task is None or self.draws_tasks else self._task_index(task, f"gym.make(..., task={task!r})")
        self._set_task(first)
        action_space = self.action_space
        self._action_shape = action_space.shape
        self._action_dtype = np.float32 if action_space.dtype == np.float32 else np.float64

    @property
    def task(self) -> Mapping[str, Any]:
        """The parameters of the current task."""
        return self.tasks[self.task_id]

    def _set_task(self, task_id: int) -> None:
        self.task_id = task_id
        self._apply_task(self.tasks[task_id])
        params = self.tasks[task_id].items()
        self._task_scalars = {"task_id": task_id, **{k: v for k, v in params if np.isscalar(v)}}
        self._task_arrays = {k: v for k, v in params if not np.isscalar(v)}

    def _add_task_info(self, info: dict) -> dict:
        """Put the task into `info` (fresh array copies: users may keep or modify infos)."""
        info.update(self._task_scalars)
        for key, value in self._task_arrays.items():
            info[key] = value.copy()
        return info

    def _task_from_options(self, options: dict[str, Any] | None) -> int | None:
        """The task index that `reset(options=...)` asks for, or None to keep the current one."""
        if not options or "task" not in options:
            return None
        if isinstance(options["task"], str) and options["task"] == "random":
            return int(self.np_random.integers(len(self.tasks)))
        return self._task_index(options["task"], f"reset(options={{'task': {options['task']!r}}})")

    def _task_index(self, task, where: str) -> int:
        """`task` as a valid index of the split, or a ValueError naming `where` it came from."""
        if isinstance(task, (bool, np.bool_)) or not isinstance(task, (int, np.integer)):
            raise ValueError(
                f"{where}: the task must be an integer index 0..{len(self.tasks) - 1} or 'random'."
            )
        if not 0 <= task < len(self.tasks):
            raise ValueError(
                f"Task {task} is out of range: the {self.split!r} split of "
                f"{type(self).__name__} has tasks 0..{len(self.tasks) - 1}."
            )
        return int(task)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        # Seed first so that a "random" task draw is reproducible, then switch the task, then
        # let the family reset (with the RNG already seeded).
        gym.Env.reset(self, seed=seed)
        task_id = self._task_from_options(options)
        if task_id is None and self.draws_tasks:
            task_id = int(self.np_random.integers(len(self.tasks)))
        if task_id is not None and task_id != self.task_id:
            self._set_task(task_id)
        obs, info = super().reset(options=options)
        return obs, self._add_task_info(info)

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(self._check_action(action))
        return obs, float(reward), terminated, truncated, self._add_task_info(info)

    def _check_action(self, action) -> np.ndarray:
        if type(action) is not np.ndarray or action.dtype != self._action_dtype:
            try:
                action = np.asarray(action, dtype=self._action_dtype)
            except (TypeError, ValueError) as err:
                raise ValueError(
                    f"{type(self).__name__}.step: the action must be a numeric array of shape "
                    f"{self._action_shape}, got {action!r}."
                ) from err
        if action.shape != self._action_shape:
            raise ValueError(
                f"{type(self).__name__}.step: the action has shape {action.shape}, expected "
                f"{self._action_shape} (see env.action_space)."
            )
        # A finite sum of squares proves every element finite, at a third of the cost of
        # np.isfinite(...).all(); only when it is not (NaN, inf, or overflow) check exactly.
        if not math.isfinite(action @ action) and not np.isfinite(action).all():
            raise ValueError(
                f"{type(self).__name__}.step: the action contains NaN or inf: {action}. "
                "Check the policy's output."
            )
        return action

    # Pickling keeps the split (EzPickle rebuilds the env from its arguments) and the task.
    def __getstate__(self):
        return {**super().__getstate__(), "task_id": self.task_id}

    def __setstate__(self, state):
        state = dict(state)
        task_id = state.pop("task_id")
        super().__setstate__(state)
        self._set_task(task_id)


# One draw at a time: Meta-World draws its goals from the global np.random, reseeded for the
# draw, so two threads drawing at once (the evaluator's progress bar and its unit limits) would
# interleave one stream and corrupt both tables. Re-entrant, so that one family's draw may read
# another family's table.
_TASK_TABLE_LOCK = threading.RLock()


def libm(fn, values) -> np.ndarray:
    """`fn`, a `math` function of one float, applied to each element of `values` (float64).

    Tasks are computed with it, not with NumPy's ufuncs: NumPy picks a SIMD kernel for power,
    exp, log, sin, ... per CPU, and its AVX-512 kernels differ from the others in the last bit
    (numpy/numpy#23289). A mass that differs in its last bit is another MuJoCo model, whose
    episodes soon part from the pinned datasets'. The C library's functions give one result on
    every x86-64 machine this project has run on."""
    array = np.asarray(values, dtype=np.float64)
    return np.array([fn(float(x)) for x in array.ravel()], dtype=np.float64).reshape(array.shape)


def _task_table(cls) -> dict[str, tuple[Mapping[str, Any], ...]]:
    return _drawn_table(cls, cls.task_seed)


@functools.lru_cache(maxsize=64)
def _drawn_table(cls, seed: int) -> dict[str, tuple[Mapping[str, Any], ...]]:
    drawn = cls.draw_tasks(np.random.default_rng(seed))
    return {split: tuple(_freeze(p) for p in drawn[split]) for split in SPLITS if split in drawn}
