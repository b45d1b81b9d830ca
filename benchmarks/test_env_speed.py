"""Step rate of the bitr envs against the raw envs they wrap (run: pytest benchmarks/).

Targets: each bitr env is at most 10% slower than the raw env; Point-Robot steps at
least 200k steps/s through its batched vector env.
"""

import gymnasium as gym
import numpy as np
import pytest
from conftest import paired_ratio

import bitr_envs  # noqa: F401

STEPS = 2000


def run_steps(env, actions):
    env.reset(seed=0)
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()


def raw_metaworld(name, seed):
    import metaworld

    ml1 = metaworld.ML1(name, seed=seed)
    env = ml1.train_classes[name]()
    env.set_task(ml1.train_tasks[0])
    return env


PAIRS = {
    "CheetahVel": (lambda: gym.make("bitr/CheetahVel-v0"), lambda: gym.make("HalfCheetah-v5", max_episode_steps=200)),
    "HopperParam": (lambda: gym.make("bitr/HopperParam-v0"), lambda: gym.make("Hopper-v5", max_episode_steps=200)),
    # Meta-World 3.1.1 has no working gym.make entry for ML1 tasks: compare unwrapped envs.
    "Reach": (
        lambda: gym.make("bitr/Reach-v0").unwrapped,
        lambda: raw_metaworld("reach-v3", gym.make("bitr/Reach-v0").unwrapped.task_seed),
    ),
}


@pytest.mark.parametrize("family", list(PAIRS))
def test_step_overhead_against_the_raw_env(benchmark, family):
    make_ours, make_raw = PAIRS[family]
    ours, raw = make_ours(), make_raw()
    steps = STEPS // 4 if family == "Reach" else STEPS
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (steps,) + ours.action_space.shape).astype(np.float32)
    ratio = paired_ratio(lambda: run_steps(ours, actions), lambda: run_steps(raw, actions))
    benchmark.extra_info["time_ratio_vs_raw"] = round(ratio, 3)
    benchmark.extra_info["steps_per_round"] = steps
    benchmark.pedantic(run_steps, args=(ours, actions), rounds=5)
    print(f"\n{family}: bitr / raw step time = {ratio:.3f}")
    assert ratio < 1.10, f"{family}: {100 * (ratio - 1):.1f}% slower than the raw env"


def test_point_robot_vector_throughput(benchmark):
    num_envs, steps = 1024, 200
    vec = gym.make_vec("bitr/PointRobotSparse-v0", num_envs=num_envs)
    actions = np.random.default_rng(0).uniform(-0.1, 0.1, (steps, num_envs, 2))

    def run():
        vec.reset(seed=0, options={"task": "random"})
        for a in actions:
            vec.step(a)

    benchmark.pedantic(run, rounds=5)
    rate = num_envs * steps / benchmark.stats.stats.min
    benchmark.extra_info["steps_per_second"] = int(rate)
    print(f"\nPoint-Robot vector env: {rate:,.0f} steps/s ({num_envs} envs)")
    assert rate >= 200_000
