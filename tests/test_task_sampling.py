"""`gym.make(id, task="random")`: tools that only call `reset()` see every task of the split."""

import gymnasium as gym
import pytest
from conftest import ALL_IDS
from gymnasium.utils.env_checker import check_env

import bitr_envs  # noqa: F401


def third_party_loop(env, episodes, seed):
    """What Stable-Baselines3 or d3rlpy do: reset(seed) once, then plain resets and steps."""
    visited = []
    obs, info = env.reset(seed=seed)
    for _ in range(episodes):
        visited.append(info["task_id"])
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(env.action_space.sample())
            done = terminated or truncated
        obs, info = env.reset()
    return visited


@pytest.mark.parametrize("split", ["train", "test", "ood"])
def test_plain_resets_visit_every_task_of_the_split(split):
    env = gym.make("bitr/PointRobotSparse-v0", split=split, task="random")
    env.action_space.seed(0)
    visited = third_party_loop(env, 400, seed=0)
    assert set(visited) == set(range(len(env.unwrapped.tasks)))


def test_without_task_random_plain_resets_stay_on_one_task():
    env = gym.make("bitr/PointRobotSparse-v0", split="test")
    env.action_space.seed(0)
    assert set(third_party_loop(env, 20, seed=0)) == {0}


def test_task_draws_follow_the_reset_seed():
    make = lambda: gym.make("bitr/CheetahVel-v0", split="test", task="random")  # noqa: E731
    first = [make().reset(seed=s)[1]["task_id"] for s in range(20)]
    again = [make().reset(seed=s)[1]["task_id"] for s in range(20)]
    assert first == again and len(set(first)) > 1


def test_an_explicit_task_option_still_wins():
    env = gym.make("bitr/PointRobot-v0", split="test", task="random")
    for task in (3, 7):
        assert env.reset(seed=1, options={"task": task})[1]["task_id"] == task


def test_a_fixed_start_task_and_bad_choices():
    env = gym.make("bitr/PointRobot-v0", split="test", task=4)
    assert env.reset(seed=0)[1]["task_id"] == 4 and env.reset()[1]["task_id"] == 4
    with pytest.raises(ValueError, match="task='any'.*integer index 0..9 or 'random'"):
        gym.make("bitr/PointRobot-v0", split="test", task="any")
    with pytest.raises(ValueError, match="out of range"):
        gym.make("bitr/PointRobot-v0", split="test", task=10)


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_check_env_passes_when_tasks_are_drawn(env_id):
    env = gym.make(env_id, split="test", task="random")
    check_env(env.unwrapped, skip_render_check=True)
    assert env.spec.kwargs["task"] == "random"  # a dataset's recovered env keeps the mode
