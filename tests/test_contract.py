"""The task contract every family shares: task switching, info, seeding, restore, bad input."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
from conftest import ALL_IDS

import bitr_envs

FAST_IDS = [i for i in ALL_IDS if "Reach" not in i and "Push" not in i] + ["bitr/Reach-v0"]


def rollout(env, task, seed, steps=15):
    """Observations and rewards of a fixed action sequence on `task`."""
    obs, info = env.reset(seed=seed, options={"task": task})
    assert info["task_id"] == task
    rng = np.random.default_rng(123)
    observations, rewards = [obs], []
    for _ in range(steps):
        action = rng.uniform(env.action_space.low, env.action_space.high).astype(env.action_space.dtype)
        obs, reward, terminated, truncated, info = env.step(action)
        assert info["task_id"] == task
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards)


@pytest.mark.parametrize("env_id", FAST_IDS)
def test_seeding_reproduces_a_rollout(env_id):
    first = rollout(gym.make(env_id), task=1, seed=7)
    second = rollout(gym.make(env_id), task=1, seed=7)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


@pytest.mark.parametrize("env_id", FAST_IDS)
def test_switching_back_to_a_task_is_bit_identical(env_id):
    env = gym.make(env_id)
    before = rollout(env, task=1, seed=3)
    rollout(env, task=0, seed=3)
    after = rollout(env, task=1, seed=3)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])


@pytest.mark.parametrize("env_id", ["bitr/HopperParam-v0", "bitr/WalkerParamSparse-v0"])
def test_param_tasks_rescale_the_model_and_restore_it(env_id):
    env = gym.make(env_id, split="ood")
    model = env.unwrapped.model
    defaults = {n: v.copy() for n, v in env.unwrapped._default_parameters.items()}
    env.reset(options={"task": 4})
    task = env.unwrapped.task
    for name, default in defaults.items():
        np.testing.assert_array_equal(getattr(model, name), default * task[f"{name}_scale"])
    # Derived constants follow the new masses (mj_setConst), so dynamics really change.
    np.testing.assert_allclose(model.body_subtreemass[0], model.body_mass.sum())
    different = rollout(env, task=5, seed=0)[0]
    same_seed_task_4 = rollout(env, task=4, seed=0)[0]
    assert not np.array_equal(different, same_seed_task_4)


@pytest.mark.parametrize("env_id", ["bitr/CheetahVel-v0", "bitr/HopperParam-v0", "bitr/PointRobot-v0"])
def test_the_observation_does_not_contain_the_task(env_id):
    # (Meta-World tasks also move the object, which is observed as in ML1; its goal is hidden:
    # see test_meta_world_goal_is_hidden_and_scripted_expert_succeeds.)
    env = gym.make(env_id)
    first_obs = [env.reset(seed=0, options={"task": t})[0] for t in range(3)]
    assert all(np.array_equal(first_obs[0], o) for o in first_obs[1:])


def test_reset_keeps_the_task_and_random_draws_reproducibly():
    env = gym.make("bitr/CheetahVel-v0", split="test")
    assert env.reset(seed=0)[1]["task_id"] == 0  # task 0 until told otherwise
    env.reset(options={"task": 6})
    assert env.reset()[1]["task_id"] == 6
    assert env.unwrapped.task["target_velocity"] == env.unwrapped.tasks[6]["target_velocity"]

    def draws(seed):
        env.reset(seed=seed, options={"task": "random"})
        return [env.reset(options={"task": "random"})[1]["task_id"] for _ in range(20)]

    assert draws(11) == draws(11)
    assert len(set(draws(11))) > 3


def test_info_has_task_parameters_on_reset_and_step():
    env = gym.make("bitr/PointRobotSparse-v0", split="ood")
    _, info = env.reset(options={"task": 3})
    task = bitr_envs.tasks("bitr/PointRobotSparse-v0", "ood")[3]
    np.testing.assert_array_equal(info["goal"], task["goal"])
    _, _, _, _, info = env.step(np.zeros(2))
    assert info["task_id"] == 3 and info["goal_angle"] == task["goal_angle"]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"task": 10}, r"Task 10 is out of range: the 'test' split .* has tasks 0..9"),
        ({"task": -1}, "out of range"),
        ({"task": "hard"}, "integer index 0..9 or 'random'"),
        ({"task": 1.5}, "must be an integer index"),
        ({"task": True}, "must be an integer index"),
    ],
)
def test_bad_task_option_is_a_clear_error(options, message):
    env = gym.make("bitr/CheetahVel-v0", split="test")
    with pytest.raises(ValueError, match=message):
        env.reset(options=options)


def test_bad_split_is_a_clear_error_at_make():
    with pytest.raises(ValueError, match=r"Unknown split 'val'.*\['train', 'test', 'ood'\]"):
        gym.make("bitr/PointRobot-v0", split="val")
    with pytest.raises(ValueError, match="has no 'ood' split"):
        gym.make("bitr/CheetahDir-v0", split="ood")


@pytest.mark.parametrize("env_id", ["bitr/PointRobot-v0", "bitr/CheetahVel-v0", "bitr/Push-v0"])
@pytest.mark.parametrize(
    "bad_action, message",
    [("wrong_shape", "has shape"), ("nan", "NaN or inf"), ("inf", "NaN or inf"), ("text", "numeric array")],
)
def test_bad_action_is_a_clear_error(env_id, bad_action, message):
    env = gym.make(env_id)
    env.reset(seed=0)
    n = env.action_space.shape[0]
    action = {
        "wrong_shape": np.zeros(n + 1),
        "nan": np.array([np.nan] + [0.0] * (n - 1)),
        "inf": np.array([np.inf] + [0.0] * (n - 1)),
        "text": "forward",
    }[bad_action]
    with pytest.raises(ValueError, match=message):
        env.unwrapped.step(action)


@pytest.mark.parametrize("env_id", ["bitr/PointRobot-v0", "bitr/HopperParamSparse-v0", "bitr/Reach-v0"])
def test_pickling_keeps_split_and_task(env_id):
    env = gym.make(env_id, split="ood")
    env.reset(seed=0, options={"task": 4})
    clone = pickle.loads(pickle.dumps(env.unwrapped))
    assert clone.split == "ood" and clone.task_id == 4
    a = rollout(env, task=4, seed=5)
    b = rollout(clone, task=4, seed=5)
    np.testing.assert_array_equal(a[0], b[0])


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_gymnasium_vector_envs_run(mode):
    envs = gym.make_vec("bitr/CheetahVelSparse-v0", num_envs=2, vectorization_mode=mode, split="test")
    _, info = envs.reset(seed=0, options={"task": 5})
    assert list(info["task_id"]) == [5, 5]
    for _ in range(3):
        _, rewards, _, _, info = envs.step(envs.action_space.sample())
    assert rewards.shape == (2,) and list(info["task_id"]) == [5, 5]
    envs.close()


def test_point_robot_vector_env_matches_single_envs():
    n = 4
    vec = gym.make_vec("bitr/PointRobotSparse-v0", num_envs=n, split="ood")
    assert type(vec).__name__ == "PointRobotVectorEnv"
    singles = [gym.make("bitr/PointRobotSparse-v0", split="ood") for _ in range(n)]
    tasks = np.array([0, 3, 7, 9])
    obs, info = vec.reset(seed=0, options={"task": tasks})
    np.testing.assert_array_equal(info["task_id"], tasks)
    single_obs = [env.reset(options={"task": int(t)})[0] for env, t in zip(singles, tasks)]
    np.testing.assert_array_equal(obs, single_obs)
    rng = np.random.default_rng(0)
    for step in range(45):  # crosses two episode ends (horizon 20) with next-step autoreset
        actions = rng.uniform(-0.15, 0.15, (n, 2))
        obs, rewards, terminated, truncated, info = vec.step(actions)
        for i, env in enumerate(singles):
            if step in (20, 41):  # the autoreset step: reset obs, zero reward
                expected_obs, _ = env.reset()
                expected = (expected_obs, 0.0, False)
            else:
                o, r, _, t, _ = env.step(actions[i])
                expected = (o, r, t)
            np.testing.assert_allclose(obs[i], expected[0])
            assert rewards[i] == expected[1] and truncated[i] == expected[2]
        np.testing.assert_array_equal(info["task_id"], tasks)


def test_point_robot_vector_env_bad_input():
    vec = gym.make_vec("bitr/PointRobot-v0", num_envs=3)
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="expected \\(3, 2\\)"):
        vec.step(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="NaN or inf"):
        vec.step(np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="one per sub-env"):
        vec.reset(options={"task": [1, 2]})
    with pytest.raises(ValueError, match="0..29"):
        vec.reset(options={"task": 30})
    draws = vec.reset(seed=1, options={"task": "random"})[1]["task_id"]
    np.testing.assert_array_equal(draws, vec.reset(seed=1, options={"task": "random"})[1]["task_id"])
