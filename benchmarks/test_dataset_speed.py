"""Dataset collection and loading against their raw baselines (run: pytest benchmarks/).

Targets: collection runs at least half the raw env's step rate; sharded collection on N
workers keeps that rate per worker; loading a 1M-transition dataset into per-task arrays takes
at most 1.5x a raw h5py read of the same file, and loading one task of it at most 2x a raw h5py
read of that task's episodes (and within a memory limit that the whole dataset exceeds).
"""

import os

import gymnasium as gym
import h5py
import numpy as np
import pytest
from conftest import paired_ratio

from bitr_envs import datasets
from bitr_envs.datasets import shards
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
uniform-other = { policy = "random", pursue = "another-task" }
[pools]
iid = { random = 1.0 }
ood = { uniform-ood = 1.0 }
other = { uniform-other = 1.0 }
[profiles]
bench = { episodes_per_task = 167 }
sharded = { episodes_per_task = 20 }
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
            Episode(task=i // 167, behaviour=0, seed=i, pursued=i // 167,  # task-major, as a build writes them
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


@pytest.fixture(scope="module")
def bench_cards(tmp_path_factory):
    root = tmp_path_factory.mktemp("cards")
    (root / "bench.toml").write_text(CARD)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BITR_RECIPES", str(root))
        yield root


def raw_h5py_read(path, episode_ids=None):
    """The floor: every array of every episode (or of `episode_ids`), read with h5py and nothing else."""
    arrays = []
    with h5py.File(path, "r") as f:
        names = list(f) if episode_ids is None else [f"episode_{i}" for i in episode_ids]
        for name in names:
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


def test_loading_one_task_against_raw_h5py_of_its_episodes(benchmark, million_transitions):
    task = 7
    data = datasets.load(DATASET, tasks=[task])
    assert data.task_ids == [task] and data.num_transitions == 167 * 200
    episode_ids = range(task * 167, (task + 1) * 167)
    ratio = paired_ratio(lambda: datasets.load(DATASET, tasks=[task]),
                         lambda: raw_h5py_read(million_transitions, episode_ids), rounds=5)
    benchmark.extra_info["time_ratio_vs_raw_h5py"] = round(ratio, 3)
    benchmark.pedantic(datasets.load, args=(DATASET,), kwargs={"tasks": [task]}, rounds=5)
    print(f"\nload(tasks=[{task}]) / raw h5py read of its 167 episodes = {ratio:.3f}")
    assert ratio <= 2.0


LOAD_UNDER_A_LIMIT = """
import resource, sys
from bitr_envs import datasets
dataset, allowed = sys.argv[1], int(sys.argv[2])
datasets.load(dataset, tasks=[0])  # imports and caches in place before the limit is set
size = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (size + allowed, size + allowed))
print("one task:", datasets.load(dataset, tasks=[7]).num_transitions, flush=True)
try:
    datasets.load(dataset)
    print("whole: loaded")
except MemoryError as err:
    print("whole:", err)
"""


def test_one_task_loads_within_a_memory_limit_that_the_whole_dataset_exceeds(million_transitions):
    """A dataset bigger than the memory a process is allowed: its arrays take about 314 MB, the
    process may grow by 100 MB (address space, RLIMIT_AS). One task's episodes load; the whole
    dataset stops with a MemoryError that says what to do, not a "damaged file"."""
    import subprocess
    import sys

    allowed = 100 * 2**20
    run = subprocess.run([sys.executable, "-c", LOAD_UNDER_A_LIMIT, DATASET, str(allowed)],
                         capture_output=True, text=True, timeout=600)
    print(f"\n{run.stdout}{run.stderr[-2000:]}")
    assert f"one task: {167 * 200}" in run.stdout
    assert "whole: Out of memory while loading" in run.stdout and "tasks=[...]" in run.stdout


@pytest.mark.parametrize("jobs, executor", [(1, "local"), (2, "local"), (2, "ray")])
def test_sharded_collection_per_worker_against_the_raw_env(benchmark, bench_cards, monkeypatch, jobs, executor):
    """Collecting every shard of a Cheetah-Vel dataset (30 tasks x 20 episodes, and the reference
    runs: 168k steps) on `jobs` workers, per worker, against one process stepping the raw env.
    Meaningful only with `jobs` idle cores: run it on a quiet machine."""
    if executor == "ray":
        pytest.importorskip("ray")
    if (os.cpu_count() or 1) < jobs:
        pytest.skip(f"needs {jobs} cores")
    monkeypatch.setattr(shards, "SHARD_STEPS", 10_000)  # 50 episodes a shard: 18 shards
    r = next(r for r in all_recipes() if r.dataset_id == "bitr/cheetah-vel/train-iid-sharded-v0")
    plan = shards.plan(r)
    steps = sum(len(s.jobs) for s in plan) * 200
    raw = gym.make("bitr/CheetahVel-v0")
    actions = np.random.default_rng(0).uniform(-1, 1, (steps // jobs,) + raw.action_space.shape).astype(np.float32)

    def raw_steps():  # one worker's share of the steps, on the raw env
        raw.reset(seed=0)
        for action in actions:
            _, _, terminated, truncated, _ = raw.step(action)
            if terminated or truncated:
                raw.reset()

    with shards.ShardExecutor(jobs, executor) as runner:
        def sharded():
            for _ in runner.run(r, plan, 16, None):
                pass

        sharded()  # start the workers and load the policies once, as a long build does
        ratio = paired_ratio(sharded, raw_steps, rounds=3)
        benchmark.pedantic(sharded, rounds=1)
    if executor == "ray":
        import ray

        ray.shutdown()
    benchmark.extra_info["throughput_per_worker_ratio_vs_raw"] = round(1 / ratio, 3)
    print(f"\n{jobs} x {executor}: sharded collection per worker / raw step rate = {1 / ratio:.2f}")
    assert 1 / ratio >= 0.5


@pytest.mark.parametrize(
    "env_id, policy, episodes",
    [("bitr/PointRobot-v0", point_robot_goal_seeker, 500), ("bitr/CheetahVel-v0", None, 40)],
)
def test_collection_against_the_raw_env(benchmark, env_id, policy, episodes):
    behaviours = {"b": Behaviour("b", 0, policy, noise=0.1, epsilon=0.1)}
    jobs = [Job(task=i % 30, behaviour="b", seed=i, pursued=i % 30) for i in range(episodes)]
    steps = episodes * gym.spec(env_id).max_episode_steps
    raw = gym.make(env_id)
    space = raw.action_space
    actions = np.random.default_rng(0).uniform(space.low, space.high, (steps,) + space.shape).astype(space.dtype)

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
