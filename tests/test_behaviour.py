"""Behaviour policies: numpy inference of train_sac.py's actor, and the trainer's snapshots/resume."""

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import bitr_envs  # noqa: F401
from bitr_envs.datasets.behaviours import MLPPolicy

torch = pytest.importorskip("torch")
TRAIN_SAC = Path(__file__).resolve().parents[1] / "datasets" / "train_sac.py"


@pytest.fixture(scope="module")
def train_sac():
    spec = importlib.util.spec_from_file_location("train_sac", TRAIN_SAC)
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_sac"] = module  # dataclasses look their module up while it is built
    spec.loader.exec_module(module)
    return module


def make_actor(train_sac, obs_dim=5, task_dim=2, act_dim=3):
    torch.manual_seed(0)
    scale, bias = np.array([1.0, 0.1, 2.0]), np.array([0.0, 0.0, 1.0])
    return train_sac.Actor(obs_dim + task_dim, act_dim, 16, scale, bias)


def test_numpy_inference_matches_torch_actor(train_sac, tmp_path):
    actor = make_actor(train_sac)
    np.savez(tmp_path / "a.npz", **train_sac.actor_arrays(actor, obs_dim=5))
    policy = MLPPolicy.load(tmp_path / "a.npz")
    rng = np.random.default_rng(0)
    obs, task = rng.normal(size=(64, 5)) * 3, rng.normal(size=(64, 2))
    with torch.no_grad():
        x = torch.as_tensor(np.concatenate([obs, task], 1), dtype=torch.float32)
        expected = (actor.deterministic(x) * actor.action_scale + actor.action_bias).numpy()
    np.testing.assert_allclose(policy.act(obs, task), expected, atol=1e-5)
    # one task vector broadcasts over the batch; a single observation works too
    np.testing.assert_allclose(policy.act(obs, task[0]), policy.act(obs, np.tile(task[0], (64, 1))))
    assert policy.act(obs[0], task[0]).shape == (3,)


def test_wrong_input_shapes_are_refused(train_sac):
    policy = MLPPolicy(train_sac.actor_arrays(make_actor(train_sac), obs_dim=5))
    with pytest.raises(ValueError, match=r"obs \[\.\.\., 5\]"):
        policy.act(np.zeros((2, 4)), np.zeros((2, 2)))


def test_load_refuses_wrong_arrays(train_sac, tmp_path):
    arrays = train_sac.actor_arrays(make_actor(train_sac), obs_dim=5)
    missing = {k: v for k, v in arrays.items() if k != "fc_mean.bias"}
    np.savez(tmp_path / "missing.npz", **missing)
    with pytest.raises(ValueError, match=r"missing arrays \['fc_mean.bias'\]"):
        MLPPolicy.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "shape.npz", **{**arrays, "fc2.weight": np.zeros((16, 8), np.float32)})
    with pytest.raises(ValueError, match="wrong array shapes.*fc2.weight"):
        MLPPolicy.load(tmp_path / "shape.npz")


def run_trainer(out, steps, *extra):
    cmd = [sys.executable, str(TRAIN_SAC), "--env", "bitr/PointRobot-v0", "--steps", str(steps),
           "--out", str(out), "--hidden", "32", "--batch-size", "32", "--num-envs", "4",
           "--learning-starts", "200", "--snapshot-fractions", "0.5", "1.0", "--extra-tasks", "20",
           *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_tiny_run_writes_snapshots_and_resumes(tmp_path):
    out = tmp_path / "point"
    first = run_trainer(out, 600)
    assert first.returncode == 0, first.stderr
    assert (out / "step_300.npz").exists() and (out / "step_600.npz").exists()
    ckpt = torch.load(out / "checkpoint" / "state.pt", weights_only=True)
    assert ckpt["global_step"] == 600 and ckpt["buffer"]["size"] == 600
    first_updates = ckpt["updates"]

    again = run_trainer(out, 600)  # refuses to overwrite a run without --resume
    assert again.returncode != 0 and "--resume" in again.stderr

    resumed = run_trainer(out, 1200, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"at step 600 ({first_updates} updates)" in resumed.stdout
    ckpt = torch.load(out / "checkpoint" / "state.pt", weights_only=True)
    assert ckpt["global_step"] == 1200 and ckpt["updates"] == first_updates + 600
    assert ckpt["buffer"]["size"] == 1200
    with open(out / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [300, 600, 1200]
    assert all(np.isfinite(float(r["test_return_mean"])) for r in rows)

    changed = run_trainer(out, 1800, "--resume", "--critic-layer-norm")  # other networks: refused
    assert changed.returncode != 0 and "critic_layer_norm" in changed.stderr
    fewer = run_trainer(out, 1800, "--resume", "--extra-tasks", "5")  # stored task ids would dangle
    assert fewer.returncode != 0 and "may grow, not shrink" in fewer.stderr
    # a checkpoint written before a setting existed resumes with that setting's default
    del ckpt["args"]["critic_layer_norm"]
    torch.save(ckpt, out / "checkpoint" / "state.pt")
    older = run_trainer(out, 1500, "--resume")
    assert older.returncode == 0, older.stderr

    policy = MLPPolicy.load(out / "step_1200.npz")
    env = gym.make("bitr/PointRobot-v0", split="test")
    obs, info = env.reset(seed=0, options={"task": 2})
    features = env.unwrapped.task_features(env.unwrapped.task)
    assert env.action_space.contains(policy.act(obs, features).astype(env.action_space.dtype))


def test_extra_training_tasks_come_from_the_sampler_and_never_are_test_tasks(train_sac):
    env_class = gym.make("bitr/WalkerParam-v0").unwrapped.__class__
    tasks = train_sac.training_tasks(env_class, 50)
    features = np.stack([env_class.task_features(t) for t in tasks])
    train = np.stack([env_class.task_features(t) for t in env_class.split_tasks("train")])
    test = np.stack([env_class.task_features(t) for t in env_class.split_tasks("test")])
    assert len(tasks) == 80 and np.array_equal(features[:30], train)
    assert len(np.unique(features, axis=0)) == 80  # fresh draws, no repeats
    assert not (features[:, None] == test[None]).all(-1).any()
    # the same pool every time, so a resumed run trains on the same tasks
    again = np.stack([env_class.task_features(t) for t in train_sac.training_tasks(env_class, 50)])
    assert np.array_equal(features, again)
