"""Dataset collection and loading against their raw baselines (run: pytest benchmarks/).

Targets (issue 3): collection runs at least half the raw env's step rate; loading a 1M-transition
dataset into per-task arrays takes at most 1.5x a raw h5py read of the same file.
"""

import gymnasium as gym
import h5py
import numpy as np
import pytest
from conftest import paired_ratio

from bitr_envs import datasets
from bitr_envs.datasets.behaviours import Behaviour, point_robot_goal_seeker
from bitr_envs.datasets.collect import Episode, Job, collect, write_dataset
from bitr_envs.datasets.recipes import all_recipes

CARD = """
envs = ["bitr/CheetahVel-v0"]
seed = 0
expert = "random"
[behaviours]
random = { policy = "random" }
uniform-ood = { policy = "random" }
[pools]
iid = { random = 1.0 }
ood = { uniform-ood = 1.0 }
[profiles]
bench = { episodes_per_task = 167 }
"""
DATASET = "bitr/cheetah-vel/train-iid-bench-v0"


@pytest.fixture(scope="module")
def million_transitions(tmp_path_factory):
    """A CheetahVel-shaped dataset of 30 tasks x 167 episodes x 200 steps (1.002M transitions)."""
    root = tmp_path_factory.mktemp("bench")
    (root / "cards").mkdir()
    (root / "cards" / "bench.toml").write_text(CARD)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BITR_RECIPES", str(root / "cards"))
        mp.setenv("MINARI_DATASETS_PATH", str(root / "minari"))
        recipe = next(r for r in all_recipes() if r.dataset_id == DATASET)
        rng = np.random.default_rng(0)
        episodes = [
            Episode(task=i % 30, behaviour=0, seed=i,
                    observations=rng.standard_normal((201, 17)),
                    actions=rng.uniform(-1, 1, (200, 6)).astype(np.float32),
                    rewards=rng.standard_normal(200),
                    terminations=np.zeros(200, bool),
                    truncations=np.arange(200) == 199)
            for i in range(30 * 167)
        ]
        refs = {"random": [0.0] * 30, "expert": [1.0] * 30}
        behaviours = {"random": None, "uniform-ood": None}
        path = write_dataset(recipe, episodes, refs, behaviours)
        yield path / "data" / "main_data.hdf5"


def raw_h5py_read(path):
    """The floor: every array of every episode, read with h5py and nothing else."""
    arrays = []
    with h5py.File(path, "r") as f:
        for name in f:
            episode = f[name]
            for key in ("observations", "actions", "rewards", "terminations", "truncations"):
                arrays.append(episode[key][()])
            arrays.append(episode["infos"]["task_id"][()])
            arrays.append(episode["infos"]["behaviour"][()])
    return arrays


def test_loading_a_million_transitions_against_raw_h5py(benchmark, million_transitions):
    data = datasets.load(DATASET)
    assert data.num_transitions == 30 * 167 * 200
    ratio = paired_ratio(lambda: datasets.load(DATASET), lambda: raw_h5py_read(million_transitions), rounds=3)
    benchmark.extra_info["time_ratio_vs_raw_h5py"] = round(ratio, 3)
    benchmark.pedantic(datasets.load, args=(DATASET,), rounds=3)
    print(f"\nload / raw h5py read = {ratio:.3f}")
    assert ratio <= 1.5


@pytest.mark.parametrize(
    "env_id, policy, episodes",
    [("bitr/PointRobot-v0", point_robot_goal_seeker, 500), ("bitr/CheetahVel-v0", None, 40)],
)
def test_collection_against_the_raw_env(benchmark, env_id, policy, episodes):
    behaviours = {"b": Behaviour("b", 0, policy, noise=0.1, epsilon=0.1)}
    jobs = [Job(task=i % 30, behaviour="b", seed=i) for i in range(episodes)]
    steps = episodes * gym.spec(env_id).max_episode_steps
    raw = gym.make(env_id)
    actions = np.random.default_rng(0).uniform(raw.action_space.low, raw.action_space.high, (steps,) + raw.action_space.shape).astype(raw.action_space.dtype)

    def raw_steps():
        raw.reset(seed=0)
        for action in actions:
            _, _, terminated, truncated, _ = raw.step(action)
            if terminated or truncated:
                raw.reset()

    ratio = paired_ratio(lambda: collect(env_id, "train", jobs, behaviours), raw_steps, rounds=3)
    benchmark.extra_info["throughput_ratio_vs_raw"] = round(1 / ratio, 3)
    benchmark.pedantic(collect, args=(env_id, "train", jobs, behaviours), rounds=3)
    print(f"\n{env_id}: collection throughput / raw step rate = {1 / ratio:.2f}")
    assert 1 / ratio >= 0.5
