"""Each family's reward matches docs/environments.md, on hand-computed cases and on real steps."""

import gymnasium as gym
import numpy as np
import pytest

import bitr_envs  # noqa: F401
from bitr_envs.locomotion import cheetah_vel_reward, param_sparse_reward
from bitr_envs.point_robot import point_robot_reward


def test_point_robot_reward_cases():
    goal = np.array([0.0, 1.0])
    assert point_robot_reward(np.array([0.0, 0.0]), goal, sparse=False) == pytest.approx(-1.0)
    assert point_robot_reward(np.array([0.3, 1.4]), goal, sparse=False) == pytest.approx(-0.5)
    assert point_robot_reward(np.array([0.0, 0.0]), goal, sparse=True) == 0.0
    assert point_robot_reward(np.array([0.0, 0.85]), goal, sparse=True) == 1.0
    assert point_robot_reward(np.array([0.0, 0.8]), goal, sparse=True) == 1.0  # radius 0.2 is inside
    assert point_robot_reward(np.array([0.0, 0.79]), goal, sparse=True) == 0.0


@pytest.mark.parametrize("sparse", [False, True])
def test_point_robot_moves_by_the_clipped_action(sparse):
    env = gym.make("bitr/PointRobotSparse-v0" if sparse else "bitr/PointRobot-v0", split="test")
    obs, info = env.reset(seed=0, options={"task": 2})
    np.testing.assert_array_equal(obs, [0.0, 0.0])
    goal = info["goal"]
    step = 0.1 * goal  # straight at the goal, 10 steps to arrive
    rewards = []
    for _ in range(10):
        obs, reward, terminated, truncated, _ = env.step(step * 5)  # clipped to [-0.1, 0.1]
        rewards.append(reward)
        assert not terminated
    np.testing.assert_allclose(obs, np.clip(step * 5, -0.1, 0.1) * 10)
    expected = [point_robot_reward(np.clip(step * 5, -0.1, 0.1) * k, goal, sparse) for k in range(1, 11)]
    np.testing.assert_allclose(rewards, expected)


def test_point_robot_sparse_reaches_goal_with_the_scripted_path():
    env = gym.make("bitr/PointRobotSparse-v0")
    obs, info = env.reset(seed=0, options={"task": 0})
    rewards = []
    for _ in range(20):
        obs, reward, _, truncated, _ = env.step(np.clip(info["goal"] - obs, -0.1, 0.1))
        rewards.append(reward)
    assert truncated  # the horizon is 20 steps
    assert rewards[:7] == [0.0] * 7 and rewards[-8:] == [1.0] * 8  # 0 away, 1 once there


def test_cheetah_vel_reward_cases():
    assert cheetah_vel_reward(1.0, 1.5, 0.1, sparse=False) == pytest.approx(-0.6)
    assert cheetah_vel_reward(1.0, 1.2, 0.1, sparse=True) == pytest.approx(2 - 0.2 - 0.1)
    assert cheetah_vel_reward(1.0, 1.5, 0.1, sparse=True) == pytest.approx(2 - 0.5 - 0.1)
    assert cheetah_vel_reward(1.0, 1.6, 0.1, sparse=True) == pytest.approx(-0.1)


def _step_and_measure_x_velocity(env, action):
    data = env.unwrapped.data
    x_before = data.qpos[0]
    obs, reward, terminated, truncated, info = env.step(action)
    return (data.qpos[0] - x_before) / env.unwrapped.dt, reward, terminated, info


@pytest.mark.parametrize("sparse", [False, True])
def test_cheetah_vel_reward_from_qpos(sparse):
    env = gym.make("bitr/CheetahVelSparse-v0" if sparse else "bitr/CheetahVel-v0")
    env.reset(seed=1, options={"task": 4})
    target = env.unwrapped.task["target_velocity"]
    rng = np.random.default_rng(0)
    for _ in range(30):
        action = rng.uniform(-1, 1, 6).astype(np.float32)
        v_x, reward, _, info = _step_and_measure_x_velocity(env, action)
        ctrl = 0.05 * float(np.sum(np.square(action)))
        assert reward == pytest.approx(cheetah_vel_reward(v_x, target, ctrl, sparse), abs=1e-6)
        assert info["target_velocity"] == target


def test_cheetah_dir_reward_from_qpos():
    env = gym.make("bitr/CheetahDir-v0")
    for task, direction in [(0, -1.0), (1, 1.0)]:
        env.reset(seed=0, options={"task": task})
        action = np.full(6, 0.5, dtype=np.float32)
        v_x, reward, _, info = _step_and_measure_x_velocity(env, action)
        assert info["direction"] == direction
        assert reward == pytest.approx(direction * v_x - 0.05 * 6 * 0.25, abs=1e-6)


def test_ant_dir_reward_projects_the_xy_velocity():
    env = gym.make("bitr/AntDir-v0")
    env.reset(seed=0, options={"task": 5})
    angle = env.unwrapped.task["direction_angle"]
    data = env.unwrapped.data
    action = np.full(8, 0.3, dtype=np.float32)
    xy_before = data.body(1).xpos[:2].copy()
    _, reward, terminated, _, _ = env.step(action)
    velocity = (data.body(1).xpos[:2] - xy_before) / env.unwrapped.dt
    projected = velocity @ [np.cos(angle), np.sin(angle)]
    healthy = 1.0
    assert reward == pytest.approx(projected + healthy - 0.5 * 8 * 0.09, abs=1e-6)
    assert env.observation_space.shape == (27,)


def test_param_sparse_reward_cases():
    assert param_sparse_reward(1.5, 0.0) == pytest.approx(0.8)
    assert param_sparse_reward(1.2, 0.01) == pytest.approx(0.8 - 0.3 - 0.01)
    assert param_sparse_reward(2.0, 0.0) == pytest.approx(0.3)
    assert param_sparse_reward(2.1, 0.01) == pytest.approx(-0.01)


@pytest.mark.parametrize("env_id", ["bitr/HopperParam-v0", "bitr/WalkerParamSparse-v0"])
def test_param_rewards_from_qpos(env_id):
    env = gym.make(env_id)
    env.reset(seed=2, options={"task": 7})
    sparse = env.unwrapped.sparse
    rng = np.random.default_rng(0)
    for _ in range(20):
        action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        v_x, reward, terminated, _ = _step_and_measure_x_velocity(env, action)
        ctrl = 1e-3 * float(np.sum(np.square(action)))
        expected = param_sparse_reward(v_x, ctrl) if sparse else v_x + 1.0 - ctrl
        assert reward == pytest.approx(expected, abs=1e-6)
        if terminated:
            break


def test_param_termination_is_the_v5_health_check():
    env = gym.make("bitr/HopperParam-v0")
    env.reset(seed=0)
    terminated = False
    for _ in range(200):  # full throttle one way tips the hopper over
        _, _, terminated, truncated, _ = env.step(np.ones(3, dtype=np.float32))
        if terminated or truncated:
            break
    assert terminated and not env.unwrapped.is_healthy


@pytest.mark.parametrize("sparse", [False, True])
def test_meta_world_reward_is_metaworlds_own(sparse):
    import pickle

    import metaworld

    env = gym.make("bitr/ReachSparse-v0" if sparse else "bitr/Reach-v0", split="test")
    env.reset(options={"task": 1})
    ml1 = metaworld.ML1("reach-v3", seed=env.unwrapped.task_seed)
    raw = ml1.train_classes["reach-v3"]()
    raw.set_task(ml1.train_tasks[31])  # test task 1 is ML1 train task 31
    raw.reset()
    np.testing.assert_array_equal(
        pickle.loads(ml1.train_tasks[31].data)["rand_vec"][3:], env.unwrapped.task["goal"]
    )
    rng = np.random.default_rng(0)
    for _ in range(20):
        action = rng.uniform(-1, 1, 4).astype(np.float32)
        obs, reward, _, _, info = env.step(action)
        raw_obs, raw_reward, _, _, raw_info = raw.step(action)
        np.testing.assert_array_equal(obs, raw_obs)
        assert reward == (float(raw_info["success"]) if sparse else pytest.approx(raw_reward))


def test_meta_world_goal_is_hidden_and_scripted_expert_succeeds():
    from metaworld.policies import SawyerReachV3Policy

    env = gym.make("bitr/ReachSparse-v0")
    obs, info = env.reset(options={"task": 0})
    policy = SawyerReachV3Policy()
    successes = 0.0
    for _ in range(150):
        assert (obs[-3:] == 0).all()  # the goal is not in the observation
        visible = obs.copy()
        visible[-3:] = info["goal"]  # the scripted expert needs it
        obs, reward, _, _, info = env.step(policy.get_action(visible))
        successes += reward
    assert successes > 50
