"""A sealed evaluation's tasks: the public splits' distributions, none of the public list."""

import numpy as np
import pytest

from bitr_envs.registry import ENVS, entry

SEALABLE = [e for e in ENVS if e != "bitr/CheetahDir-v0"]  # Cheetah-Dir has two tasks: nothing to draw


@pytest.mark.parametrize("env_id", SEALABLE)
def test_sealed_tasks_are_drawn_like_the_public_split_but_are_not_in_it(env_id):
    env_class = entry(env_id).env_class

    def features(tasks):
        return [tuple(env_class.task_features(t)) for t in tasks]

    for split in env_class.splits():
        public = features(env_class.split_tasks(split))
        sealed = features(env_class.sealed_tasks(split, 12345))
        assert len(sealed) == len(public)
        assert sealed == features(env_class.sealed_tasks(split, 12345))  # fixed by the draw
        assert sealed != features(env_class.sealed_tasks(split, 54321))
        assert not set(sealed) & set(public)
        assert public == features(env_class.split_tasks(split))  # the public table is untouched


def test_sealed_point_robot_goals_lie_in_the_public_ranges():
    env_class = entry("bitr/PointRobotSparse-v0").env_class
    test = [t["goal_angle"] for t in env_class.sealed_tasks("test", 7)]
    ood = [t["goal_angle"] for t in env_class.sealed_tasks("ood", 7)]
    assert all(0 <= a <= np.pi for a in test) and all(np.pi <= a <= 2 * np.pi for a in ood)


def test_an_env_plays_the_redrawn_tasks():
    import gymnasium as gym

    env = gym.make("bitr/PointRobotSparse-v0", split="test")
    env.unwrapped.redraw_tasks(7)
    _, info = env.reset(seed=0, options={"task": 3})
    sealed = entry("bitr/PointRobotSparse-v0").env_class.sealed_tasks("test", 7)[3]
    assert info["task_id"] == 3 and np.array_equal(env.unwrapped.goal, sealed["goal"])
    with pytest.raises(ValueError, match="Unknown split"):
        env.unwrapped.sealed_tasks("validation", 7)
