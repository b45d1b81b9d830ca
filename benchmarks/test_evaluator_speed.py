"""Evaluator overhead per env step, with process isolation on (run: pytest benchmarks/).

Target: at most 1.5x the time of stepping the env with the same trivial agent
directly in one process. The worker's start-up (a fresh process importing the stack) is a fixed
cost per unit; it is cancelled out by timing the unit at two lengths and taking the difference.
"""

import time

import gymnasium as gym
import pytest

import bitr_envs  # noqa: F401
from bitr_eval.agents import RandomAgent
from bitr_eval.runner import run_unit
from bitr_eval.suites import Unit

ENV = "bitr/CheetahVel-v0"


def unit(episodes):
    return Unit(ENV, "test", "online", "tiny", context_episodes=0, episodes=episodes, explore_episodes=0)


def direct_steps(episodes):
    env = gym.make(ENV, split="test")
    agent = RandomAgent(ENV, env.observation_space, env.action_space)
    start = time.perf_counter()
    for task in range(len(env.unwrapped.tasks)):
        for _ in range(episodes):
            obs, _ = env.reset(options={"task": task})
            done = False
            while not done:
                obs, _, terminated, truncated, _ = env.step(agent.act(obs))
                done = terminated or truncated
    return time.perf_counter() - start


@pytest.fixture
def reference_dataset(tmp_path, monkeypatch):
    from bitr_envs import datasets

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    datasets.build(unit(1).reference_dataset)


def test_evaluator_overhead_per_step(benchmark, reference_dataset):
    submission = {"agent": "random", "checkpoint": None, "agent_args": {}}

    def isolated(episodes):
        start = time.perf_counter()
        record = run_unit(unit(episodes), (0,), submission, episode_time_limit_s=60)
        assert record["status"] == "ok", record["failure"]
        return time.perf_counter() - start

    short, long = 2, 6
    per_step_isolated = min((isolated(long) - isolated(short)) for _ in range(2)) / ((long - short) * 10 * 200)
    per_step_direct = min(direct_steps(long - short) for _ in range(2)) / ((long - short) * 10 * 200)
    ratio = per_step_isolated / per_step_direct
    benchmark.extra_info["time_ratio_vs_direct"] = round(ratio, 3)
    benchmark.extra_info["worker_startup_s"] = round(isolated(short) - short * 10 * 200 * per_step_isolated, 2)
    benchmark.pedantic(isolated, args=(short,), rounds=1)
    print(f"\nevaluator / direct time per step = {ratio:.3f} ({per_step_isolated * 1e6:.1f} vs {per_step_direct * 1e6:.1f} us)")
    assert ratio < 1.5
